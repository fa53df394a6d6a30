//! TODO(plan-frontend): graph
