//! baton's integration tests: the built `baton` binary and the emulator over real HTTP.

mod cli_inspect;
mod emulator_api;
mod emulator_exec;
mod run;
mod run_control;
mod schema;
mod seeds;
