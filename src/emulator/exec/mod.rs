//! The emulator's execution: creating a job from a new-job description (`submit`), the
//! driver that runs its steps and batches (`engine`), operations on running jobs
//! (`ops`), the callbacks it posts, file copies between host sandboxes (`files`),
//! scripts run under their interpreter (`script`) inside a host sandbox (`sandbox`, with
//! [`sandbox::isolation::Isolation`] saying how). It reads and updates the model; it knows nothing
//! of HTTP requests or envelopes.

pub mod callback;
pub mod engine;
pub mod files;
pub mod ops;
pub mod sandbox;
pub mod script;
pub mod submit;
