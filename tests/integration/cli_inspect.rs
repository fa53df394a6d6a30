//! Integration tests: cli_inspect.
