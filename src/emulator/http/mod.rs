//! The emulator's HTTP face: the doors and per-protocol routes (`v2`, `v3`, `v4`, with
//! what two of them share in `shared`), the handler context, JOB's envelopes, request
//! parameters, credentials, reading targets and rolling from the wire, the JSON views of
//! job instances, the `/_emulator/` control endpoints and the holds that pause requests.
//! Its main type is [`context::Ctx`], what every handler gets. It turns the model's
//! [`JobError`](crate::emulator::model::job_error::JobError) into each protocol's
//! envelope and HTTP status; nothing below it knows about HTTP.

pub mod answer_holds;
pub mod auth;
pub mod catalog;
pub mod config_push;
pub mod context;
pub mod control;
pub mod envelope;
pub mod face;
pub mod params;
pub mod router;
pub mod shared;
pub mod v2;
pub mod v3;
pub mod v4;
pub mod var_values;
pub mod views;
pub mod wire;
