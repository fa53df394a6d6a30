//! baton's integration tests: the built `baton` binary and the emulator over real HTTP.

mod bad_plans;
mod cli_inspect;
mod emulator_api;
mod emulator_exec;
mod examples;
mod plan_props;
mod run;
mod run_control;
mod schema;
mod seeds;
mod state;
