//! The emulator's model: what the emulated JOB knows, without HTTP or execution. The
//! world file and its checks, the inventory built from it (hosts, groups, accounts,
//! plans, scripts, credentials), job instances and their store, scopes and who may see
//! them, job plans turned into new jobs, rolling batches, the clock and its gates, and
//! faults. JOB's error codes live here too ([`job_error::JobError`]): they are JOB's
//! answer to a bad value or a missing object whatever the protocol, so the model raises
//! them and the HTTP face only chooses the envelope. The rules on field values that
//! both the routes and the job plans apply (timeouts, script sources, paths, callback
//! URLs) live in [`values`] for the same reason.

pub mod caller;
pub mod clock;
pub mod faults;
pub mod host_result;
pub mod inventory;
pub mod job_error;
pub mod job_vars;
pub mod jobs;
pub mod new_job;
pub mod plans;
pub mod protocol;
pub mod rolling;
pub mod scope;
pub mod values;
pub mod world;
pub mod world_check;
pub mod world_load;
pub mod world_objects;
