//! A job instance's global variable values after it ran
//! ([`decode_global_var_values`]): v2's `job_instance_var_values[]` with `category`, and
//! v3's (gateway and ESB jobv3) `step_instance_var_list[]` with `type`, per step
//! instance.

use serde::Deserialize;

use super::envelope::{RawResponse, unwrap_data};
use super::error::ApiError;
use super::wire::{from_data, nullable};
use crate::job_api::types::Protocol;

/// JOB's password variable type (`type` / `category` 4), whose value is a secret.
pub const PASSWORD_VAR: u8 = 4;

/// One variable's value as a step instance left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalVarValue {
    /// Variable name.
    pub name: String,
    /// JOB's type: 1 string, 2 namespace, 3 host list, 4 password, 5/6 arrays.
    pub kind: u8,
    /// The value (absent for host lists).
    pub value: Option<String>,
}

/// The values a step instance left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepVarValues {
    /// The step instance.
    pub step_instance_id: u64,
    /// Its variables.
    pub vars: Vec<GlobalVarValue>,
}

#[derive(Deserialize)]
struct V3Data {
    #[serde(default, deserialize_with = "nullable")]
    step_instance_var_list: Vec<V3Step>,
}

#[derive(Deserialize)]
struct V3Step {
    step_instance_id: u64,
    #[serde(default, deserialize_with = "nullable")]
    global_var_list: Vec<V3Var>,
}

#[derive(Deserialize)]
struct V3Var {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<u8>,
    #[serde(default)]
    value: Option<String>,
}

#[derive(Deserialize)]
struct V2Data {
    #[serde(default, deserialize_with = "nullable")]
    job_instance_var_values: Vec<V2Step>,
}

#[derive(Deserialize)]
struct V2Step {
    step_instance_id: u64,
    #[serde(default, deserialize_with = "nullable")]
    step_instance_var_values: Vec<V2Var>,
}

#[derive(Deserialize)]
struct V2Var {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    category: Option<u8>,
    #[serde(default)]
    value: Option<String>,
}

/// `get_job_instance_global_var_value`, step instance by step instance in JOB's order.
pub fn decode_global_var_values(
    protocol: Protocol,
    response: &RawResponse<'_>,
) -> Result<Vec<StepVarValues>, ApiError> {
    let data = unwrap_data(response)?;
    const WHAT: &str = "get_job_instance_global_var_value";
    Ok(match protocol {
        Protocol::V2 => from_data::<V2Data>(response.status, data, WHAT)?
            .job_instance_var_values
            .into_iter()
            .map(|step| StepVarValues {
                step_instance_id: step.step_instance_id,
                vars: step
                    .step_instance_var_values
                    .into_iter()
                    .filter_map(|v| {
                        Some(GlobalVarValue {
                            name: v.name?,
                            kind: v.category.unwrap_or(1),
                            value: v.value,
                        })
                    })
                    .collect(),
            })
            .collect(),
        Protocol::V3 | Protocol::V4 => from_data::<V3Data>(response.status, data, WHAT)?
            .step_instance_var_list
            .into_iter()
            .map(|step| StepVarValues {
                step_instance_id: step.step_instance_id,
                vars: step
                    .global_var_list
                    .into_iter()
                    .filter_map(|v| {
                        Some(GlobalVarValue {
                            name: v.name?,
                            kind: v.kind.unwrap_or(1),
                            value: v.value,
                        })
                    })
                    .collect(),
            })
            .collect(),
    })
}

/// Each variable's value as the last step instance that reports it left it.
pub fn final_values(steps: &[StepVarValues]) -> Vec<GlobalVarValue> {
    let mut out: Vec<GlobalVarValue> = Vec::new();
    for step in steps {
        for var in &step.vars {
            match out.iter_mut().find(|v| v.name == var.name) {
                Some(slot) => *slot = var.clone(),
                None => out.push(var.clone()),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job_api::decode::test_support::raw;

    /// The answers of the documentation's examples (gateway v3 and ESB v2).
    #[test]
    fn doc_examples_decode_and_the_last_step_wins() {
        let v3 = r#"{"result": true, "code": 0, "message": "", "data": {"job_instance_id": 100,
            "step_instance_var_list": [
              {"step_instance_id": 292778, "global_var_list": [{"name": "aa", "value": "AA", "type": 1},
                                                               {"name": "password", "value": "mypassword", "type": 4}]},
              {"step_instance_id": 292779, "global_var_list": [{"name": "aa", "value": "AAAA", "type": 1},
                                                               {"name": "password", "value": "mypassword", "type": 4}]}]}}"#;
        let steps = decode_global_var_values(Protocol::V3, &raw(200, v3)).unwrap();
        assert_eq!(steps.len(), 2);
        let last = final_values(&steps);
        assert_eq!(last[0].value.as_deref(), Some("AAAA"));
        assert_eq!(last[1].kind, PASSWORD_VAR);
        let v2 = r#"{"result": true, "code": 0, "message": "", "data": {"job_instance_id": 100,
            "job_instance_var_values": [
              {"step_instance_id": 292778, "step_instance_var_values": [{"name": "aa", "value": "AA", "category": 1},
                                                                       {"name": "password", "value": "mypassword", "category": 4}]}]}}"#;
        let steps = decode_global_var_values(Protocol::V2, &raw(200, v2)).unwrap();
        assert_eq!(steps[0].step_instance_id, 292778);
        assert_eq!(steps[0].vars[1].kind, PASSWORD_VAR);
    }
}
