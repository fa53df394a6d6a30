//! baton's local BlueKing JOB: the v2, v3 and v4 HTTP APIs over real HTTP, with scripts
//! really executed and files really copied inside per-host sandbox folders.
//!
//! Start one with [`start`] (or [`serve`] on your own listener); the world file format
//! is documented in [`world`], faults in [`faults`], test controls in [`control`].

pub mod answer_holds;
pub mod app;
pub mod auth;
pub mod callback;
pub mod clock;
pub mod control;
pub mod engine;
pub mod envelope;
pub mod exec;
pub mod faults;
pub mod files;
pub mod inventory;
pub mod jobs;
pub mod ops;
pub mod params;
pub mod plans;
pub mod rolling;
pub mod routes;
pub mod routes_v2;
pub mod routes_v3;
pub mod routes_v4;
pub mod sandbox;
pub mod scope;
pub mod server;
pub mod submit;
pub mod views;
pub mod wire;
pub mod world;
pub mod world_check;

pub use sandbox::Isolation;
pub use server::{EmulatorConfig, EmulatorError, EmulatorHandle, build_app, serve, start};
pub use world::World;
