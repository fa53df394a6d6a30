//! baton's integration tests: the built `baton` binary and the emulator over real HTTP.

mod bad_plans;
mod callback_surface;
mod cli_inspect;
mod conformance;
mod conformance_docs;
mod emulator_api;
mod emulator_clients;
mod emulator_exec;
mod exactly_once;
mod examples;
mod faults;
mod lock_holder;
mod operator_mistakes;
mod plan_props;
mod run;
mod run_control;
mod schema;
mod sdk;
mod secrets;
mod seeds;
mod state;
mod support;
mod walls;
