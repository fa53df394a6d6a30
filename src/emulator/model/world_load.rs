//! Reading a world file: YAML parsed into a [`World`], then its values checked, and a
//! refusal ([`WorldError`]) that keeps the file's text for whoever points at the line.

use std::path::Path;
use std::sync::Arc;

use crate::emulator::model::world::World;
use crate::emulator::model::world_check::{WorldProblem, problems};

/// Why a world file was refused. `Parse` and `Values` keep the file's text so that
/// whoever shows the error can point at the line.
#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    /// The file could not be read.
    #[error("cannot read world file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not YAML of the world's shape: syntax, types, unknown fields.
    #[error("invalid world file {path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// Its text.
        text: Arc<str>,
        /// The cause, with its field path and position.
        #[source]
        source: serde_yaml::Error,
    },
    /// Values of the right type that the emulator cannot use.
    #[error("invalid world file {path}: {}", list_problems(problems))]
    Values {
        /// The file.
        path: String,
        /// Its text.
        text: Arc<str>,
        /// Every such value, in file order.
        problems: Vec<WorldProblem>,
    },
}

fn list_problems(problems: &[WorldProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl World {
    /// Reads, parses and checks a world file; a refusal names the field.
    pub fn load(path: &Path) -> Result<World, WorldError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| WorldError::Read {
            path: name.clone(),
            source,
        })?;
        Self::from_text(&name, Arc::from(text))
    }

    /// Parses and checks world YAML read from the file `name`.
    pub fn from_text(name: &str, text: Arc<str>) -> Result<World, WorldError> {
        let world = match Self::parse(&text) {
            Ok(world) => world,
            Err(source) => {
                return Err(WorldError::Parse {
                    path: name.to_owned(),
                    text,
                    source,
                });
            }
        };
        let problems = problems(&world);
        if problems.is_empty() {
            Ok(world)
        } else {
            Err(WorldError::Values {
                path: name.to_owned(),
                text,
                problems,
            })
        }
    }
}
