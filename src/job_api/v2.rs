//! TODO(job-protocol): v2
