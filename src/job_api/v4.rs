//! TODO(job-protocol): v4
