//! TODO(plan-frontend): schema
