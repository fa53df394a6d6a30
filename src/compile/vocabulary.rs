//! The plan's YAML words for JOB's vocabulary (`api: v3`, `scope: {type: biz}`)
//! turned into the JOB API's own types, so requests are encoded in terms the plan
//! does not define.

use crate::job_api::types;
use crate::plan::model;

impl From<model::Protocol> for types::Protocol {
    fn from(protocol: model::Protocol) -> Self {
        match protocol {
            model::Protocol::V2 => types::Protocol::V2,
            model::Protocol::V3 => types::Protocol::V3,
            model::Protocol::V4 => types::Protocol::V4,
        }
    }
}

impl From<model::ScopeType> for types::ScopeType {
    fn from(scope_type: model::ScopeType) -> Self {
        match scope_type {
            model::ScopeType::Biz => types::ScopeType::Biz,
            model::ScopeType::BizSet => types::ScopeType::BizSet,
        }
    }
}

impl From<model::Scope> for types::Scope {
    fn from(scope: model::Scope) -> Self {
        types::Scope {
            scope_type: scope.scope_type.into(),
            id: scope.id,
        }
    }
}
