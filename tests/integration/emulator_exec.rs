//! Integration tests: emulator_exec.
