//! TODO(job-protocol): v3
