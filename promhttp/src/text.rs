//! The parts of the text exposition format (version 0.0.4) that callers
//! writing it by hand get wrong.

use std::borrow::Cow;

/// The `Content-Type` of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A label value as it goes between the quotes: backslash, double quote
/// and line feed are the three characters the format escapes; anything else
/// (spaces, colons, parentheses, any UTF-8) stays as it is.
pub fn escape_label_value(value: &str) -> Cow<'_, str> {
    if !value.contains(['\\', '"', '\n']) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 4);
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_exactly_backslash_quote_and_newline() {
        assert!(matches!(
            escape_label_value("connect: Connection refused (os error 111)"),
            Cow::Borrowed("connect: Connection refused (os error 111)")
        ));
        assert_eq!(
            escape_label_value("a\\b\"c\nd\te é"),
            "a\\\\b\\\"c\\nd\te é"
        );
        assert_eq!(escape_label_value(""), "");
        assert_eq!(escape_label_value("\\\\"), "\\\\\\\\");
    }
}
