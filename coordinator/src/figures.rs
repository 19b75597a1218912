//! Placeholder: named figures of merged totals (helper fills this in).
