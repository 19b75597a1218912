//! Placeholder: report.html (helper fills this in).
