//! TODO(plan-frontend): vars
