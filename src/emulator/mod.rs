//! baton's local BlueKing JOB: the v2, v3 and v4 HTTP APIs over real HTTP, with scripts
//! really executed and files really copied inside per-host sandbox folders.
//!
//! Start one with [`start`] (or [`serve`] on your own listener); the world file format
//! is documented in [`model::world`], faults in [`model::faults`], test controls in
//! [`http::control`]. Three wings, used in one direction only: [`http`] (the face JOB's
//! clients see) may use [`exec`] and [`model`]; [`exec`] (what runs a job) may use
//! [`model`]; [`model`] (what the emulated JOB knows) uses neither. [`app`] wires their
//! state together and [`server`] starts and stops it; [`EmulatorError`] is why that can
//! fail. Outside this module the emulator uses only `job_api::{types, rules}`.

pub mod app;
pub mod error;
pub mod exec;
pub mod http;
pub mod model;
pub mod server;

#[cfg(test)]
mod walls;

pub use error::EmulatorError;
pub use exec::sandbox::isolation::Isolation;
pub use model::world::World;
pub use server::{EmulatorConfig, EmulatorHandle, build_app, serve, start};
