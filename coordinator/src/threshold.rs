//! Placeholder: threshold expressions (helper fills this in).
