//! TODO(plan-frontend): template
