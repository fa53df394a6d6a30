//! The JOB HTTP API: shared vocabulary and rules, request building and the three
//! protocol generations (v2 ESB, v3 and v4 gateway), and the HTTP client.

pub mod auth;
pub mod build;
pub mod calls;
pub mod client;
pub mod config_push;
pub mod credentials;
pub mod decode;
pub mod hosts;
pub mod lookups;
pub mod request;
pub mod rules;
pub mod types;
pub mod v2;
pub mod v3;
pub mod v4;
