//! TODO(plan-frontend): span
