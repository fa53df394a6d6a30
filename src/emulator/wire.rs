//! Field-level readers shared by the v2, v3 and v4 request handlers: base64 script
//! content and parameters with JOB's length limits, timeouts, script languages and
//! stored scripts, rolling configs, callback URLs, task names, and the three shapes of
//! a target list (v2 `ip_list`/`custom_query_id`/`target_server`, v3 `target_server`
//! / `server`, v4 `execute_target`). Each refusal carries JOB's code and field name.

use base64::Engine as _;
use serde_json::Value;

use super::callback;
use super::envelope::{ApiError, code};
use super::inventory::{HostSel, Inventory, TargetSpec};
use super::jobs::RollingMode;
use super::params::{Params, value_i64, value_string};
use super::submit::{RollingBy, RollingSpec};
use super::world::TopoRef;
use crate::job_api::rules::{
    MAX_PARAM_BYTES, MAX_ROLLING_BATCHES, MAX_SCRIPT_CONTENT_BYTES, MAX_SENSITIVE_PARAM_BYTES,
    MAX_TASK_NAME_CHARS, RollingExpr, TIMEOUT_RANGE,
};
use crate::job_api::types::HostAddr;

/// JOB's default timeout, seconds.
pub const DEFAULT_TIMEOUT: u64 = 7200;

/// Decodes a base64 field.
pub fn base64_field(field: &str, text: &str) -> Result<Vec<u8>, ApiError> {
    let cleaned: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(cleaned.as_bytes())
        .map_err(|_| ApiError::illegal(field))
}

/// Decodes `script_param`: base64, newlines become spaces, length limits by
/// sensitivity (decoded bytes).
pub fn script_param(
    field: &str,
    text: Option<String>,
    sensitive: bool,
) -> Result<String, ApiError> {
    let Some(text) = text else {
        return Ok(String::new());
    };
    let bytes = base64_field(field, &text)?;
    let limit = if sensitive {
        MAX_SENSITIVE_PARAM_BYTES
    } else {
        MAX_PARAM_BYTES
    };
    if bytes.len() > limit {
        return Err(ApiError {
            message: format!("Invalid request parameter [{field}]: longer than {limit} bytes"),
            ..ApiError::illegal(field)
        });
    }
    Ok(String::from_utf8_lossy(&bytes).replace(['\r', '\n'], " "))
}

/// A timeout in seconds: default 7200, JOB's range 1..=259200.
pub fn timeout(field: &str, value: Option<i64>) -> Result<u64, ApiError> {
    match value {
        None => Ok(DEFAULT_TIMEOUT),
        Some(v) if v >= 0 && TIMEOUT_RANGE.contains(&(v as u64)) => Ok(v as u64),
        Some(_) => Err(ApiError {
            message: format!(
                "Invalid request parameter [{field}]: must be between {} and {}",
                TIMEOUT_RANGE.start(),
                TIMEOUT_RANGE.end()
            ),
            ..ApiError::illegal(field)
        }),
    }
}

/// A script language code, 1..=6.
pub fn language(field: &str, value: Option<i64>) -> Result<u8, ApiError> {
    match value {
        Some(v @ 1..=6) => Ok(v as u8),
        _ => Err(ApiError::illegal(field)),
    }
}

/// Where a script comes from, by the priority of each protocol.
pub struct ScriptSource<'a> {
    /// Stored version id (v2 `script_id`, v3/v4 `script_version_id`).
    pub version_id: Option<i64>,
    /// v3/v4 `script_id` (online version).
    pub script_id: Option<String>,
    /// Base64 content.
    pub content: Option<String>,
    /// Language code given.
    pub language: Option<i64>,
    /// Field names for errors: (version, script id, content, language).
    pub names: (&'a str, &'a str, &'a str, &'a str),
    /// The missing-source message's parameter list.
    pub missing: &'a str,
}

/// Resolves a script to (language, text).
pub fn script(inventory: &Inventory, source: ScriptSource<'_>) -> Result<(u8, Vec<u8>), ApiError> {
    let (version_name, id_name, content_name, language_name) = source.names;
    if let Some(version) = source.version_id {
        if version < 1 {
            return Err(ApiError::illegal(version_name));
        }
        let def = inventory
            .script_version(version)
            .ok_or_else(|| ApiError::illegal(version_name))?;
        return Ok((def.language, def.content.clone().into_bytes()));
    }
    if let Some(id) = source.script_id {
        let def = inventory
            .script_online(&id)
            .ok_or_else(|| ApiError::illegal(id_name))?;
        return Ok((def.language, def.content.clone().into_bytes()));
    }
    let Some(content) = source.content else {
        return Err(ApiError::missing(source.missing));
    };
    let lang = language(language_name, source.language)?;
    let bytes = base64_field(content_name, &content)?;
    if bytes.len() > MAX_SCRIPT_CONTENT_BYTES {
        return Err(ApiError::illegal(content_name));
    }
    Ok((lang, bytes))
}

/// JOB's paging (`EsbJobReq.adjustPageParam`): `start` from 0, `length` 20 unless
/// given, at most 1000.
pub fn page(params: &Params) -> Result<(usize, usize), ApiError> {
    let start = params.opt_i64("start")?.unwrap_or(0).max(0) as usize;
    let length = params.opt_i64("length")?.unwrap_or(20).clamp(1, 1000) as usize;
    Ok((start, length))
}

/// A callback URL, checked as JOB checks it.
pub fn callback_url(field: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    match value {
        None => Ok(None),
        Some(url) if callback::url_ok(&url) => Ok(Some(url.trim().to_owned())),
        Some(_) => Err(ApiError {
            message: format!("Invalid request parameter [{field}]: invalid callback url"),
            ..ApiError::illegal(field)
        }),
    }
}

/// A task name, or the default `<prefix><epoch ms>`.
pub fn task_name(value: Option<String>, prefix: &str) -> Result<String, ApiError> {
    match value {
        Some(name) if name.chars().count() > MAX_TASK_NAME_CHARS => {
            Err(ApiError::illegal("task_name"))
        }
        Some(name) => Ok(name),
        None => Ok(format!("{prefix}{}", super::jobs::now_ms())),
    }
}

/// `rolling_config`, if present.
pub fn rolling(params: &Params) -> Result<Option<RollingSpec>, ApiError> {
    let Some(config) = params.opt_object("rolling_config")? else {
        return Ok(None);
    };
    let mode = match config.opt_i64("mode")? {
        None => RollingMode::Pause,
        Some(m) => {
            RollingMode::from_code(m).ok_or_else(|| ApiError::illegal("rolling_config.mode"))?
        }
    };
    let kind = config.opt_i64("type")?.unwrap_or(1);
    let by = match kind {
        1 => {
            let expression = config
                .opt_str("expression")?
                .ok_or_else(|| ApiError::missing("rolling_config.expression"))?;
            RollingBy::Targets(RollingExpr::parse(&expression).map_err(|_| invalid_rolling())?)
        }
        2 => {
            let file_source = config.opt_object("file_source")?.unwrap_or_default();
            let limit = |key: &str| -> Result<Option<usize>, ApiError> {
                match file_source.opt_i64(key)? {
                    None => Ok(None),
                    Some(n) if n > 0 => Ok(Some(n as usize)),
                    Some(_) => Err(ApiError::illegal(&format!(
                        "rolling_config.file_source.{key}"
                    ))),
                }
            };
            RollingBy::Sources {
                max_hosts: limit("max_execute_object_num_in_batch")?,
                max_files: limit("max_file_num_of_single_execute_object")?,
            }
        }
        _ => return Err(ApiError::illegal("rolling_config.type")),
    };
    Ok(Some(RollingSpec { mode, by }))
}

/// 1244026.
pub fn invalid_rolling() -> ApiError {
    ApiError::new(code::INVALID_ROLLING_EXPR, "Invalid rolling strategy")
}

/// 1244027.
pub fn too_many_batches() -> ApiError {
    ApiError::new(
        code::EXCEED_MAX_ALLOWED_BATCH_SIZE,
        format!("Rolling batch can not be greater than {MAX_ROLLING_BATCHES}"),
    )
}

/// One `{bk_cloud_id, ip}` object.
pub fn ip_object(field: &str, value: &Value) -> Result<HostAddr, ApiError> {
    let Value::Object(map) = value else {
        return Err(ApiError::illegal(field));
    };
    let cloud = map.get("bk_cloud_id").and_then(value_i64);
    let ip = map.get("ip").and_then(value_string);
    match (cloud, ip) {
        (Some(cloud), Some(ip)) if cloud >= 0 => {
            let ip = ip.trim();
            if ip.parse::<std::net::Ipv4Addr>().is_err() {
                return Err(ApiError::illegal(field));
            }
            Ok(HostAddr {
                cloud_id: cloud as u64,
                ip: ip.to_owned(),
            })
        }
        _ => Err(ApiError::illegal(field)),
    }
}

fn ip_list(params: &Params, key: &str, spec: &mut TargetSpec) -> Result<(), ApiError> {
    for item in params.opt_array(key)?.unwrap_or_default() {
        spec.hosts.push(HostSel::Addr(ip_object(key, &item)?));
    }
    Ok(())
}

fn string_ids(params: &Params, key: &str) -> Result<Vec<String>, ApiError> {
    params
        .opt_array(key)?
        .unwrap_or_default()
        .iter()
        .map(|v| value_string(v).ok_or_else(|| ApiError::illegal(key)))
        .collect()
}

fn object_ids(params: &Params, key: &str) -> Result<Vec<String>, ApiError> {
    params
        .opt_array(key)?
        .unwrap_or_default()
        .iter()
        .map(|v| {
            v.get("id")
                .and_then(value_string)
                .or_else(|| value_string(v))
                .ok_or_else(|| ApiError::illegal(key))
        })
        .collect()
}

fn topo_nodes(params: &Params, key: &str) -> Result<Vec<TopoRef>, ApiError> {
    params
        .opt_array(key)?
        .unwrap_or_default()
        .iter()
        .map(|v| {
            let id = v.get("id").and_then(value_i64);
            let node_type = v.get("node_type").and_then(value_string);
            match (id, node_type) {
                (Some(id), Some(node_type)) => Ok(TopoRef { node_type, id }),
                _ => Err(ApiError::illegal(key)),
            }
        })
        .collect()
}

/// v2 targets: top-level (or per-source) `ip_list` + `custom_query_id`, plus a
/// `target_server` object `{ip_list, dynamic_group_id_list, topo_node_list}`.
pub fn v2_target(params: &Params) -> Result<TargetSpec, ApiError> {
    let mut spec = TargetSpec::default();
    ip_list(params, "ip_list", &mut spec)?;
    spec.groups.extend(string_ids(params, "custom_query_id")?);
    if let Some(server) = params.opt_object("target_server")? {
        ip_list(&server, "ip_list", &mut spec)?;
        spec.groups
            .extend(string_ids(&server, "dynamic_group_id_list")?);
        spec.groups
            .extend(object_ids(&server, "dynamic_group_list")?);
        spec.topo.extend(topo_nodes(&server, "topo_node_list")?);
    }
    Ok(spec)
}

/// Whether a v2 request names any target field at all.
pub fn v2_has_target(params: &Params) -> bool {
    ["ip_list", "custom_query_id", "target_server"]
        .iter()
        .any(|k| params.has(k))
}

/// v3 server object `{host_id_list, ip_list, dynamic_group_list, topo_node_list}`;
/// `ip_list` is ignored when `host_id_list` is given.
pub fn v3_server(server: &Params) -> Result<TargetSpec, ApiError> {
    let mut spec = TargetSpec::default();
    let ids = server.opt_array("host_id_list")?.unwrap_or_default();
    for id in &ids {
        match value_i64(id) {
            Some(id) if id > 0 => spec.hosts.push(HostSel::Id(id as u64)),
            _ => return Err(ApiError::illegal("host_id_list")),
        }
    }
    if ids.is_empty() {
        ip_list(server, "ip_list", &mut spec)?;
    }
    spec.groups
        .extend(object_ids(server, "dynamic_group_list")?);
    spec.topo.extend(topo_nodes(server, "topo_node_list")?);
    if let Some(variable) = server.opt_str("variable")? {
        spec.variable = Some(variable);
    }
    Ok(spec)
}

/// v4 `execute_target {host_list, dynamic_group_list, topo_node_list}`; a host gives
/// `bk_host_id` (wins) or `bk_cloud_id` + `ip`.
pub fn v4_target(target: &Params) -> Result<TargetSpec, ApiError> {
    let mut spec = TargetSpec::default();
    for host in target.opt_array("host_list")?.unwrap_or_default() {
        match host.get("bk_host_id").and_then(value_i64) {
            Some(id) if id > 0 => spec.hosts.push(HostSel::Id(id as u64)),
            Some(_) => return Err(ApiError::illegal("execute_target.host_list")),
            None => spec
                .hosts
                .push(HostSel::Addr(ip_object("execute_target.host_list", &host)?)),
        }
    }
    spec.groups
        .extend(object_ids(target, "dynamic_group_list")?);
    spec.topo.extend(topo_nodes(target, "topo_node_list")?);
    Ok(spec)
}

/// 1244001 `Host is empty`.
pub fn server_empty() -> ApiError {
    ApiError::new(code::SERVER_EMPTY, "Host is empty")
}

/// Checks a file target path.
pub fn target_path(field: &str, value: Option<String>) -> Result<String, ApiError> {
    let path = value
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::missing_or_illegal(field))?;
    crate::job_api::rules::check_target_path(&path)
        .map_err(|_| ApiError::missing_or_illegal(field))?;
    Ok(path)
}

/// Checks source paths.
pub fn source_files(field: &str, values: Option<Vec<Value>>) -> Result<Vec<String>, ApiError> {
    let values = values.ok_or_else(|| ApiError::missing(field))?;
    let mut files = Vec::new();
    for value in values {
        let path = value_string(&value).ok_or_else(|| ApiError::illegal(field))?;
        let path = path.trim().to_owned();
        crate::job_api::rules::check_source_path(&path).map_err(|_| ApiError::illegal(field))?;
        files.push(path);
    }
    if files.is_empty() {
        return Err(ApiError::missing(field));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_decoded_and_limited() {
        assert_eq!(
            script_param("p", Some("aGVsbG8=".into()), false).unwrap(),
            "hello"
        );
        let big = base64::engine::general_purpose::STANDARD.encode(vec![b'a'; 48_129]);
        assert!(script_param("p", Some(big.clone()), false).is_ok());
        assert_eq!(
            script_param("p", Some(big), true).unwrap_err().code,
            1_241_005
        );
        assert_eq!(timeout("timeout", Some(0)).unwrap_err().code, 1_241_005);
        assert_eq!(timeout("timeout", Some(259_200)).unwrap(), 259_200);
    }

    #[test]
    fn rolling_configs_are_checked() {
        let p =
            Params::from_body(br#"{"rolling_config": {"expression": "0", "mode": 1}}"#).unwrap();
        assert_eq!(rolling(&p).err().unwrap().code, 1_244_026);
        let p =
            Params::from_body(br#"{"rolling_config": {"expression": "25%", "mode": 3}}"#).unwrap();
        assert!(rolling(&p).unwrap().is_some());
    }
}
