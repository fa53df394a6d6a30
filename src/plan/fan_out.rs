//! Fan-out (`for_each:`): a step declared once that runs once per item of a literal
//! list or of a list variable (a list output of an upstream step is declared and
//! checked here, but not expanded yet). Items are strings or maps of strings; each
//! instance is the step `<id>[<key>]` (the string, or a map's `name` or `id`, else
//! its position). Expansion itself is compile's (`compile/fan_out.rs`).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::model::Scalar;

/// What a step fans out over, and how its instances run.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForEach {
    /// The items, written in place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<FanItem>>,
    /// A variable holding the items: a YAML list (`[sh, gz]`, or maps) or
    /// comma-separated text (`sh,gz`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub var: Option<String>,
    /// An upstream step whose `output` holds the items (a JSON list or comma-separated
    /// text), known only once that step has finished. Checked, then refused: run-time
    /// expansion is not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// With `from`: the output key (declared in that step's `outputs:`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// Most instances running at once (default: no limit beyond `--max-parallel`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel: Option<u32>,
    /// `true` (default): a failed instance stops the run like any failure
    /// (`on_failure: stop`); `false`: the other instances go on (`on_failure: continue`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_fast: Option<bool>,
}

/// One item: a string, or a map of strings read as `{{item.<key>}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FanItem {
    /// `{{item}}`.
    Text(String),
    /// `{{item.<key>}}`.
    Map(BTreeMap<String, String>),
}

impl<'de> Deserialize<'de> for FanItem {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ItemVisitor;
        impl<'de> Visitor<'de> for ItemVisitor {
            type Value = FanItem;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, or a map of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FanItem, E> {
                Ok(FanItem::Text(v.to_owned()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<FanItem, E> {
                Ok(FanItem::Text(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<FanItem, E> {
                Ok(FanItem::Text(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<FanItem, E> {
                Ok(FanItem::Text(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<FanItem, E> {
                Ok(FanItem::Text(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<FanItem, A::Error> {
                BTreeMap::<String, Scalar>::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|m| FanItem::Map(m.into_iter().map(|(k, v)| (k, v.0)).collect()))
            }
        }
        deserializer.deserialize_any(ItemVisitor)
    }
}

impl Serialize for FanItem {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            FanItem::Text(text) => serializer.serialize_str(text),
            FanItem::Map(map) => map.serialize(serializer),
        }
    }
}

impl JsonSchema for FanItem {
    fn schema_name() -> Cow<'static, str> {
        "FanItem".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "An item: a string (`{{item}}`), or a map of strings (`{{item.<key>}}`).",
            "anyOf": [
                { "type": ["string", "number", "integer", "boolean"] },
                { "type": "object", "additionalProperties": { "type": ["string", "number", "integer", "boolean"] } }
            ]
        })
    }
}

impl FanItem {
    /// The readable key of an instance id: the string, a map's `name` or `id`.
    pub fn key(&self) -> Option<&str> {
        match self {
            FanItem::Text(text) => Some(text),
            FanItem::Map(map) => map
                .get("name")
                .or_else(|| map.get("id"))
                .map(String::as_str),
        }
    }
}
