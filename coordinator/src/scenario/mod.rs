//! Placeholder: loading and checking scenarios (helper fills this in).
pub mod schema;
