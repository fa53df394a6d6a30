//! baton's integration tests: the built `baton` binary and the emulator over real HTTP.
