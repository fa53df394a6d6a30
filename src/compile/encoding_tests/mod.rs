//! Each protocol's encoder fed by compile: plans written as YAML, turned into a
//! request and encoded, checked body by body and error by error.

mod support;
mod v2;
mod v3;
mod v4;
