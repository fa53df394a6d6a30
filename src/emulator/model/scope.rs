//! The resource scope a job lives in (a business or business set, [`Scope`]) and the
//! IAM check "may this user access this business", answered with
//! JOB's 9900403 and its `permission` object when not.

use serde_json::{Value, json};

use crate::emulator::model::caller::Caller;
use crate::emulator::model::inventory::Inventory;
use crate::emulator::model::job_error::{JobError, code};

/// A business or business set.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Scope {
    /// `biz` or `biz_set`.
    pub kind: String,
    /// The id, as a string.
    pub id: String,
}

impl Scope {
    /// A `biz` scope.
    pub fn biz(id: impl Into<String>) -> Self {
        Scope {
            kind: "biz".into(),
            id: id.into(),
        }
    }

    /// The scope of a deprecated `bk_biz_id` (ids in 8,000,000..=9,999,999 are sets).
    pub fn from_biz_id(id: i64) -> Self {
        let kind = if (8_000_000..=9_999_999).contains(&id) {
            "biz_set"
        } else {
            "biz"
        };
        Scope {
            kind: kind.into(),
            id: id.to_string(),
        }
    }

    /// The numeric id, for v2's `bk_biz_id`.
    pub fn biz_id(&self) -> Value {
        self.id
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or(Value::Null)
    }
}

/// Whether `caller` may use `scope`: open unless the world lists scopes (then the scope
/// must be listed, and its `users`, when given, must name the caller).
pub fn check_access(inventory: &Inventory, caller: &Caller, scope: &Scope) -> Result<(), JobError> {
    let scopes = &inventory.world().scopes;
    if scopes.is_empty() {
        return Ok(());
    }
    let def = scopes
        .iter()
        .find(|s| s.kind == scope.kind && s.id == scope.id);
    let allowed = match def {
        None => false,
        Some(def) => def
            .users
            .as_ref()
            .is_none_or(|users| users.iter().any(|u| u == &caller.user)),
    };
    if allowed {
        return Ok(());
    }
    let name = def
        .and_then(|d| d.name.clone())
        .unwrap_or_else(|| scope.id.clone());
    Err(denied(&caller.user, scope, &name))
}

/// 9900403 with the IAM apply-permission object for `access_business`.
pub fn denied(user: &str, scope: &Scope, name: &str) -> JobError {
    let (type_name, inst_type) = if scope.kind == "biz_set" {
        ("业务集", "business_set")
    } else {
        ("业务", "business")
    };
    let permission = json!({
        "system_id": "bk_job",
        "system_name": "作业平台",
        "actions": [{
            "id": "access_business",
            "name": "业务访问",
            "related_resource_types": [{
                "type": scope.kind,
                "system_id": "bk_cmdb",
                "system_name": "配置平台",
                "type_name": type_name,
                "instances": [[{
                    "id": scope.id, "type": inst_type, "name": name, "type_name": type_name,
                }]],
            }],
        }],
    });
    JobError {
        permission: Some(permission),
        ..JobError::new(
            code::BK_PERMISSION_DENIED,
            format!(
                "User ({user}) permission not allowed, please confirm and apply permission in IAM and try again"
            ),
        )
    }
}
