//! TODO(runner): client
