//! Integration tests: emulator_api.
