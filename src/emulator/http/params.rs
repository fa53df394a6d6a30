//! Request parameters as JOB receives them: a JSON body or a GET query string, read
//! field by field with JOB's errors for wrong types. Numbers may come as strings (query
//! strings have no types), as Spring's binding allows.

use serde_json::{Map, Value};

use crate::emulator::model::job_error::{JobError, code};

/// One request's parameters (or a nested object of them).
#[derive(Debug, Clone, Default)]
pub struct Params {
    map: Map<String, Value>,
}

impl Params {
    /// Parameters from a JSON object.
    pub fn from_map(map: Map<String, Value>) -> Self {
        Params { map }
    }

    /// Parses a request body. An empty body is an empty object; anything but a JSON
    /// object is JOB's 1241022.
    pub fn from_body(body: &[u8]) -> Result<Self, JobError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Params::default());
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => Ok(Params { map }),
            _ => Err(JobError::new(
                code::BODY_FORMAT_ERROR,
                "The format of the HTTP request body is incorrect",
            )),
        }
    }

    /// Parses a query string; repeated keys (`host_id_list=1&host_id_list=2`) and
    /// `key[]=` forms become arrays.
    pub fn from_query(query: Option<&str>) -> Self {
        let mut map = Map::new();
        let Some(query) = query else {
            return Params { map };
        };
        // axum's own query decoder, so no extra dependency; undecodable input is empty.
        let pairs: Vec<(String, String)> = format!("/?{query}")
            .parse::<axum::http::Uri>()
            .ok()
            .and_then(|uri| axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&uri).ok())
            .map(|q| q.0)
            .unwrap_or_default();
        for (key, value) in pairs {
            let key = key.trim_end_matches("[]").to_owned();
            let value = Value::String(value);
            match map.get_mut(&key) {
                Some(Value::Array(items)) => items.push(value),
                Some(existing) => {
                    let first = existing.take();
                    *existing = Value::Array(vec![first, value]);
                }
                None => {
                    map.insert(key, value);
                }
            }
        }
        Params { map }
    }

    /// The whole object.
    pub fn as_value(&self) -> Value {
        Value::Object(self.map.clone())
    }

    /// A field, treating `null` as absent.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// Whether a field is present and not null.
    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// An integer field (a number or a numeric string).
    pub fn opt_i64(&self, key: &str) -> Result<Option<i64>, JobError> {
        match self.get(key) {
            None => Ok(None),
            Some(value) => value_i64(value)
                .map(Some)
                .ok_or_else(|| JobError::illegal(key)),
        }
    }

    /// A required integer field.
    pub fn req_i64(&self, key: &str) -> Result<i64, JobError> {
        self.opt_i64(key)?.ok_or_else(|| JobError::missing(key))
    }

    /// A string field; numbers are accepted and rendered as text. Blank is absent.
    pub fn opt_str(&self, key: &str) -> Result<Option<String>, JobError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(JobError::illegal(key)),
        }
    }

    /// A boolean field: `true`, `1`, or the strings Spring's binding takes in any case
    /// (`true`/`false`, `on`/`off`, `yes`/`no`, `1`/`0`), so that `True` from a Python
    /// client's query string reads as JOB reads it.
    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>, JobError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::Number(n)) => Ok(Some(n.as_i64() == Some(1))),
            Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "on" | "yes" => Ok(Some(true)),
                "false" | "0" | "off" | "no" | "" => Ok(Some(false)),
                _ => Err(JobError::illegal(key)),
            },
            Some(_) => Err(JobError::illegal(key)),
        }
    }

    /// An array field; a single scalar (from a query string) counts as one element.
    pub fn opt_array(&self, key: &str) -> Result<Option<Vec<Value>>, JobError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items.clone())),
            Some(Value::String(s)) if s.contains(',') => Ok(Some(
                s.split(',')
                    .map(|p| Value::String(p.trim().to_owned()))
                    .collect(),
            )),
            Some(scalar @ (Value::String(_) | Value::Number(_))) => Ok(Some(vec![scalar.clone()])),
            Some(_) => Err(JobError::illegal(key)),
        }
    }

    /// An array of objects.
    pub fn opt_objects(&self, key: &str) -> Result<Option<Vec<Params>>, JobError> {
        let Some(items) = self.opt_array(key)? else {
            return Ok(None);
        };
        items
            .into_iter()
            .map(|item| match item {
                Value::Object(map) => Ok(Params { map }),
                _ => Err(JobError::illegal(key)),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// A nested object.
    pub fn opt_object(&self, key: &str) -> Result<Option<Params>, JobError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(Params { map: map.clone() })),
            Some(_) => Err(JobError::illegal(key)),
        }
    }
}

/// An integer from a JSON number or numeric string.
pub fn value_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A string from a JSON string or number.
pub fn value_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_become_typed_fields() {
        let p = Params::from_query(Some(
            "job_instance_id=12&return_ip_result=true&host_id_list=1&host_id_list=2",
        ));
        assert_eq!(p.opt_i64("job_instance_id").unwrap(), Some(12));
        assert_eq!(p.opt_bool("return_ip_result").unwrap(), Some(true));
        assert_eq!(p.opt_array("host_id_list").unwrap().unwrap().len(), 2);
        let p = Params::from_query(Some("a=True&b=False&c=maybe"));
        assert_eq!(p.opt_bool("a").unwrap(), Some(true));
        assert_eq!(p.opt_bool("b").unwrap(), Some(false));
        assert_eq!(p.opt_bool("c").unwrap_err().code, 1_241_005);
    }

    #[test]
    fn bad_types_are_job_errors_not_panics() {
        let p = Params::from_body(br#"{"job_instance_id": {"x": 1}}"#).unwrap();
        assert_eq!(p.opt_i64("job_instance_id").unwrap_err().code, 1_241_005);
        assert_eq!(Params::from_body(b"[1,2").unwrap_err().code, 1_241_022);
    }
}
