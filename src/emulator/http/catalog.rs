//! What the gateway v3 (and ESB jobv3) answers about a scope's resources:
//! `get_account_list` (the world's accounts; a world without accounts accepts any
//! alias, so an alias filter finds one) and `get_script_version_detail` (the world's
//! scripts by version id, or by script id and version), in the docs' shapes.

use serde_json::{Value, json};

use crate::emulator::http::context::Ctx;
use crate::emulator::http::params::Params;
use crate::emulator::http::wire;
use crate::emulator::model::job_error::JobError;
use crate::emulator::model::world::AccountDef;

/// JOB's "script version does not exist".
const SCRIPT_VERSION_NOT_EXIST: i64 = 1_243_047;

fn account_json(ctx: &Ctx, kind: &str, scope_id: &str, account: &AccountDef) -> Value {
    let time = ctx.app.started_ms;
    json!({
        "id": account.id, "account": system_name(account), "alias": account.alias,
        "category": 1, "type": 1, "os": "Linux", "creator": "admin",
        "bk_scope_type": kind, "bk_scope_id": scope_id,
        "create_time": time, "last_modify_user": "admin", "last_modify_time": time,
    })
}

/// The account's name on the host: the world's `name`, else its alias.
fn system_name(account: &AccountDef) -> &str {
    account.name.as_deref().unwrap_or(&account.alias)
}

/// `get_account_list`: system accounts (category 1) filtered by `account` / `alias`.
pub fn account_list(ctx: &Ctx, p: &Params) -> Result<Value, JobError> {
    let scope = ctx.scope(p)?;
    let category = p.opt_i64("category")?;
    let name = p.opt_str("account")?;
    let alias = p.opt_str("alias")?;
    let (start, length) = wire::page(p)?;
    let world = ctx.app.inventory.world();
    let accounts: Vec<AccountDef> = if world.accounts.is_empty() {
        // Any alias is accepted, so the one asked for exists.
        alias
            .clone()
            .or(name.clone())
            .map(|a| {
                vec![AccountDef {
                    id: 1,
                    alias: a,
                    name: None,
                }]
            })
            .unwrap_or_default()
    } else {
        world.accounts.clone()
    };
    let rows: Vec<Value> = accounts
        .iter()
        .filter(|_| category.is_none_or(|c| c == 1))
        .filter(|a| alias.as_ref().is_none_or(|x| &a.alias == x))
        .filter(|a| name.as_ref().is_none_or(|x| system_name(a) == x))
        .map(|a| account_json(ctx, &scope.kind, &scope.id, a))
        .collect();
    let total = rows.len();
    let page: Vec<Value> = rows.into_iter().skip(start).take(length).collect();
    Ok(json!({"start": start, "total": total, "data": page, "length": length}))
}

/// `get_script_version_detail`: by `id`, else by `script_id` and `version`.
pub fn script_version_detail(ctx: &Ctx, p: &Params) -> Result<Value, JobError> {
    let scope = ctx.scope(p)?;
    let world = ctx.app.inventory.world();
    let id = p.opt_i64("id")?;
    let script_id = p.opt_str("script_id")?;
    let version = p.opt_str("version")?;
    let found = match (id, &script_id) {
        (Some(id), _) => world.scripts.iter().find(|s| s.version_id == id),
        (None, Some(script)) => world.scripts.iter().find(|s| {
            s.script_id.as_deref() == Some(script.as_str())
                && version
                    .as_ref()
                    .is_none_or(|v| *v == format!("V{}", s.version_id))
        }),
        (None, None) => return Err(JobError::missing("id")),
    };
    let script = found
        .ok_or_else(|| JobError::new(SCRIPT_VERSION_NOT_EXIST, "Script version does not exist"))?;
    let time = ctx.app.started_ms;
    Ok(json!({
        "id": script.version_id, "bk_scope_type": scope.kind, "bk_scope_id": scope.id,
        "script_id": script.script_id.clone().unwrap_or_else(|| script.version_id.to_string()),
        "version": format!("V{}", script.version_id), "content": script.content,
        "status": if script.online { 1 } else { 0 }, "version_desc": "",
        "creator": "admin", "create_time": time, "last_modify_user": "admin",
        "last_modify_time": time, "script_language": script.language,
        "public_script": false, "description": "",
    }))
}
