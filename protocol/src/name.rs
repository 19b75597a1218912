//! What a username or room name may hold (PROTOCOL.md sections 1 and 5):
//! valid UTF-8 (the `&str` type sees to that), no control character, at
//! most a byte limit the server sets. Names are shown to other users, in
//! terminals and logs: a newline in one forges a line of its own, an ESC
//! recolours the screen, a NUL cuts the name short in C code.

/// Which name a check is about, so the error can say so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    Username,
    Room,
}

impl NameKind {
    /// The query parameter and JSON member that carry this name.
    pub fn as_str(self) -> &'static str {
        match self {
            NameKind::Username => "username",
            NameKind::Room => "room",
        }
    }
}

impl std::fmt::Display for NameKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a name was refused. The text is what the client is told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{kind} is {len} bytes, the limit is {max}")]
    TooLong {
        kind: NameKind,
        len: usize,
        max: usize,
    },
    /// Unicode category Cc: U+0000..=U+001F and U+007F..=U+009F, which
    /// include NUL, TAB, LF, CR, ESC and DEL.
    #[error("{kind} holds the control character U+{code:04X} at byte {at}: names may not hold control characters", code = u32::from(*ch))]
    Control { kind: NameKind, ch: char, at: usize },
    /// Only from percent-decoding a query: the escapes spell bytes that are
    /// not UTF-8. Replacing them with U+FFFD would name the user something
    /// they did not ask for.
    #[error("{kind} is not valid UTF-8 once percent-decoded")]
    NotUtf8 { kind: NameKind },
}

/// Checks `name` against the rule; `max` is the byte limit. Emptiness is
/// the caller's business (an empty name means "absent" in most places).
pub fn check(kind: NameKind, name: &str, max: usize) -> Result<(), NameError> {
    if name.len() > max {
        return Err(NameError::TooLong {
            kind,
            len: name.len(),
            max,
        });
    }
    match name.char_indices().find(|(_, c)| c.is_control()) {
        Some((at, ch)) => Err(NameError::Control { kind, ch, at }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_refused_wherever_they_are() {
        for bad in [
            "a\nb",
            "\r",
            "\0",
            "x\x7f",
            "\x1b[2J",
            "tab\there",
            "\u{85}",
            "\u{9f}",
        ] {
            let err = check(NameKind::Username, bad, 64).unwrap_err();
            assert!(matches!(err, NameError::Control { .. }), "{bad:?}: {err}");
        }
        assert_eq!(
            check(NameKind::Room, "ab\ncd", 64).unwrap_err().to_string(),
            "room holds the control character U+000A at byte 2: names may not hold control characters"
        );
    }

    #[test]
    fn other_text_passes_up_to_the_limit() {
        for good in ["alice", "al ice", "zoë", "😀", "\u{fffd}", "a#1", "\u{a0}"] {
            assert_eq!(check(NameKind::Username, good, 64), Ok(()), "{good:?}");
        }
        assert_eq!(check(NameKind::Room, "éééé", 8), Ok(()));
        assert_eq!(
            check(NameKind::Room, "ééééé", 8).unwrap_err().to_string(),
            "room is 10 bytes, the limit is 8"
        );
    }
}
