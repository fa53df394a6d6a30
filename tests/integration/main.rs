//! baton's integration tests: the built `baton` binary and the emulator over real HTTP.

mod bad_plans;
mod callback_surface;
mod cli_inspect;
mod config_push;
mod emulator_api;
mod emulator_exec;
mod exactly_once;
mod examples;
mod fan_out;
mod faults;
mod job_outputs;
mod lock_holder;
mod operator_mistakes;
mod plan_props;
mod preflight;
mod run;
mod run_control;
mod schema;
mod secrets;
mod seeds;
mod state;
mod support;
mod walls;
