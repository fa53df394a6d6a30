//! TODO(plan-frontend): load
