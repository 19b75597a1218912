//! What a line typed by the user asks for. Parsing is separate from acting so
//! the grammar can be tested without a socket.

/// One line of user input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Chat to the current room.
    Say(String),
    Join(String),
    /// `None` = the current room.
    Leave(Option<String>),
    Nick(String),
    Ping,
    Rooms,
    Help,
    Quit,
    /// A blank line: sending an empty chat message is never what was meant.
    Nothing,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// The command needs an argument; holds its usage line.
    Usage(&'static str),
    Unknown(String),
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::Usage(usage) => write!(f, "usage: {usage}"),
            ParseError::Unknown(name) => {
                write!(f, "unknown command /{name} (type /help for the list)")
            }
        }
    }
}

pub const HELP: &str = "\
commands:
  TEXT          chat to the current room (start with // to send a line beginning with /)
  /join ROOM    join ROOM and make it the current room
  /leave [ROOM] leave ROOM (default: the current room)
  /nick NAME    change your username (re-joins the current room under NAME)
  /ping         measure the round trip to the server
  /rooms        list the rooms you joined
  /quit         close the connection and exit (so does end of input, Ctrl-D)";

/// Parses one line; the trailing newline, if any, is ignored.
pub fn parse(line: &str) -> Result<Command, ParseError> {
    let line = line.trim_end_matches(['\n', '\r']);
    if line.trim().is_empty() {
        return Ok(Command::Nothing);
    }
    let Some(rest) = line.strip_prefix('/') else {
        return Ok(Command::Say(line.to_owned()));
    };
    if rest.starts_with('/') {
        return Ok(Command::Say(rest.to_owned()));
    }
    let (name, arg) = match rest.split_once(char::is_whitespace) {
        Some((name, arg)) => (name, arg.trim()),
        None => (rest, ""),
    };
    let arg = (!arg.is_empty()).then(|| arg.to_owned());
    let name_lower = name.to_ascii_lowercase();
    match name_lower.as_str() {
        "join" | "j" => arg
            .map(Command::Join)
            .ok_or(ParseError::Usage("/join ROOM")),
        "leave" | "part" => Ok(Command::Leave(arg)),
        "nick" => arg
            .map(Command::Nick)
            .ok_or(ParseError::Usage("/nick NAME")),
        "ping" => Ok(Command::Ping),
        "rooms" => Ok(Command::Rooms),
        "help" | "?" => Ok(Command::Help),
        "quit" | "exit" => Ok(Command::Quit),
        _ => Err(ParseError::Unknown(name.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_are_chat_and_keep_their_spacing() {
        assert_eq!(parse("hello\n"), Ok(Command::Say("hello".into())));
        assert_eq!(
            parse("  two  spaces \r\n"),
            Ok(Command::Say("  two  spaces ".into()))
        );
        assert_eq!(parse("a/b"), Ok(Command::Say("a/b".into())));
    }

    #[test]
    fn double_slash_escapes_a_leading_slash() {
        assert_eq!(parse("//join x"), Ok(Command::Say("/join x".into())));
    }

    #[test]
    fn blank_lines_do_nothing() {
        assert_eq!(parse(""), Ok(Command::Nothing));
        assert_eq!(parse("\n"), Ok(Command::Nothing));
        assert_eq!(parse("   \t\r\n"), Ok(Command::Nothing));
    }

    #[test]
    fn commands_with_arguments() {
        assert_eq!(parse("/join dev\n"), Ok(Command::Join("dev".into())));
        assert_eq!(parse("/JOIN   dev  "), Ok(Command::Join("dev".into())));
        assert_eq!(parse("/leave"), Ok(Command::Leave(None)));
        assert_eq!(parse("/leave dev"), Ok(Command::Leave(Some("dev".into()))));
        assert_eq!(parse("/nick bob"), Ok(Command::Nick("bob".into())));
        assert_eq!(
            parse("/nick Bob Smith"),
            Ok(Command::Nick("Bob Smith".into()))
        );
    }

    #[test]
    fn commands_without_arguments() {
        assert_eq!(parse("/ping"), Ok(Command::Ping));
        assert_eq!(parse("/rooms"), Ok(Command::Rooms));
        assert_eq!(parse("/help"), Ok(Command::Help));
        assert_eq!(parse("/quit\n"), Ok(Command::Quit));
    }

    #[test]
    fn missing_arguments_and_unknown_commands_are_errors() {
        assert_eq!(parse("/join"), Err(ParseError::Usage("/join ROOM")));
        assert_eq!(parse("/join   "), Err(ParseError::Usage("/join ROOM")));
        assert_eq!(parse("/nick"), Err(ParseError::Usage("/nick NAME")));
        assert_eq!(
            parse("/dance now"),
            Err(ParseError::Unknown("dance".into()))
        );
        assert_eq!(parse("/"), Err(ParseError::Unknown(String::new())));
        assert!(parse("/dance").unwrap_err().to_string().contains("/help"));
    }
}
