//! Integration tests: seeds.
