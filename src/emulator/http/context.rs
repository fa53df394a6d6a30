//! What every API handler gets ([`Ctx`]: the shared state, the checked caller and the
//! protocol), how an API is called ([`ApiKind`]), and reading the request's scope
//! (`bk_scope_type` + `bk_scope_id`, or the deprecated `bk_biz_id`) with the IAM check.

use std::sync::Arc;

use crate::emulator::app::App;
use crate::emulator::http::params::Params;
use crate::emulator::model::caller::Caller;
use crate::emulator::model::job_error::JobError;
use crate::emulator::model::jobs::JobInstance;
use crate::emulator::model::protocol::Protocol;
use crate::emulator::model::scope::{self, Scope};

/// How an API is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiKind {
    /// A query: GET on the gateway (POST accepted too).
    Query,
    /// An action: POST only on the gateway.
    Action,
    /// Needs no credentials (`callback_protocol`).
    Open,
}

/// What a handler gets.
pub struct Ctx {
    /// Shared state.
    pub app: Arc<App>,
    /// Who calls (empty for open APIs).
    pub caller: Caller,
    /// The wire generation.
    pub protocol: Protocol,
}

impl Ctx {
    /// The request's scope, after the IAM check.
    pub fn scope(&self, params: &Params) -> Result<Scope, JobError> {
        let scope = parse_scope(params, self.protocol)?;
        scope::check_access(&self.app.inventory, &self.caller, &scope)?;
        Ok(scope)
    }

    /// The job instance named by `job_instance_id`, visible in `scope`.
    pub fn job(&self, params: &Params, scope: &Scope) -> Result<Arc<JobInstance>, JobError> {
        let id = match params.opt_i64("job_instance_id") {
            Ok(Some(id)) if id > 0 => id as u64,
            Ok(None) if self.protocol != Protocol::V2 => {
                return Err(JobError::missing("job_instance_id"));
            }
            _ => return Err(JobError::missing_or_illegal("job_instance_id")),
        };
        self.app
            .store
            .get(id)
            .filter(|job| job.visible_in(scope))
            .ok_or_else(JobError::job_not_found)
    }
}

/// Reads the scope from request parameters. Scope fields win over `bk_biz_id`; v4 has
/// no `bk_biz_id`.
pub fn parse_scope(params: &Params, protocol: Protocol) -> Result<Scope, JobError> {
    let kind = params.opt_str("bk_scope_type")?;
    let id = params.opt_str("bk_scope_id")?;
    if kind.is_some() || id.is_some() {
        let kind = kind.ok_or_else(|| JobError::missing("bk_scope_type"))?;
        if kind != "biz" && kind != "biz_set" {
            return Err(JobError::illegal("bk_scope_type"));
        }
        let id = id.ok_or_else(|| JobError::missing("bk_scope_id"))?;
        return Ok(Scope { kind, id });
    }
    if protocol == Protocol::V4 {
        return Err(JobError::illegal("bk_scope_type"));
    }
    match params.opt_i64("bk_biz_id") {
        Ok(Some(id)) if id > 0 => Ok(Scope::from_biz_id(id)),
        Ok(Some(_)) | Err(_) => Err(JobError::illegal("bk_biz_id")),
        Ok(None) if protocol == Protocol::V2 => Err(JobError::missing("bk_biz_id")),
        Ok(None) => Err(JobError::missing("bk_scope_type")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_fields_win_and_biz_sets_are_recognised() {
        let p = Params::from_body(br#"{"bk_biz_id": 8000001}"#).unwrap();
        assert_eq!(parse_scope(&p, Protocol::V2).unwrap().kind, "biz_set");
        let p =
            Params::from_body(br#"{"bk_biz_id": 3, "bk_scope_type": "biz", "bk_scope_id": "9"}"#)
                .unwrap();
        assert_eq!(parse_scope(&p, Protocol::V3).unwrap().id, "9");
        let p = Params::from_body(br#"{"bk_scope_type": "team", "bk_scope_id": "9"}"#).unwrap();
        assert_eq!(parse_scope(&p, Protocol::V4).unwrap_err().code, 1_241_005);
        assert_eq!(
            parse_scope(&Params::default(), Protocol::V3)
                .unwrap_err()
                .code,
            1_241_004
        );
    }
}
