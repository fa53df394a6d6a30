//! The global variables a job-plan step reads back from JOB once the job has finished
//! (`job.exports`), which later steps use as `{{steps.<id>.vars.<name>}}`.
//!
//! An entry is a name (`schema_version`) or `{name: db_token, secret: true}`; a value
//! is masked when declared secret or when JOB types the variable as a password (4).
//! Like the other choice-of-shape types, the visitor hands the live deserializer on so
//! errors keep their location.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// One global variable read back after a job plan ran.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobExport {
    /// The job plan's global variable name.
    pub name: String,
    /// Mask the value wherever baton writes it.
    pub secret: bool,
}

/// The mapping form of an export.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ExportObject {
    /// The job plan's global variable name.
    name: String,
    /// Mask the value wherever baton writes it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    secret: bool,
}

impl<'de> Deserialize<'de> for JobExport {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ExportVisitor;
        impl<'de> Visitor<'de> for ExportVisitor {
            type Value = JobExport;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a global variable name, or `{name: ..., secret: true}`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<JobExport, E> {
                Ok(JobExport {
                    name: v.to_owned(),
                    secret: false,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<JobExport, A::Error> {
                let object = ExportObject::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(JobExport {
                    name: object.name,
                    secret: object.secret,
                })
            }
        }
        deserializer.deserialize_any(ExportVisitor)
    }
}

impl Serialize for JobExport {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.secret {
            ExportObject {
                name: self.name.clone(),
                secret: true,
            }
            .serialize(serializer)
        } else {
            serializer.serialize_str(&self.name)
        }
    }
}

impl JsonSchema for JobExport {
    fn schema_name() -> Cow<'static, str> {
        "JobExport".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let object = generator.subschema_for::<ExportObject>();
        json_schema!({
            "description": "A global variable read back after the job: its name, or `{name, secret: true}`.",
            "anyOf": [ { "type": "string" }, object ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_secret_maps() {
        let parsed: Vec<JobExport> =
            serde_yaml::from_str("[schema_version, {name: token, secret: true}]").unwrap();
        assert_eq!(
            parsed,
            vec![
                JobExport {
                    name: "schema_version".into(),
                    secret: false
                },
                JobExport {
                    name: "token".into(),
                    secret: true
                }
            ]
        );
        assert!(serde_yaml::from_str::<JobExport>("{name: a, nope: 1}").is_err());
    }
}
