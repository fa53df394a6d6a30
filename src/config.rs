//! TODO(runner): configuration
