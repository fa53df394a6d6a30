//! TODO(plan-frontend): validate
