//! baton's integration tests: the built `baton` binary and the emulator over real HTTP.

mod cli_inspect;
mod emulator_api;
mod emulator_exec;
mod run;
mod schema;
mod seeds;
mod state;
