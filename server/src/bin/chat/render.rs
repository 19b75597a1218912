//! How server traffic looks on a terminal: one line per message.
//!
//! Everything shown comes from other users, so control characters are
//! escaped: a payload must not be able to move the cursor, recolour the
//! terminal or split one message over several lines.

use std::borrow::Cow;
use std::time::Duration;

use protocol::{ChatMessage, MsgType};

/// The line for `msg`. `rtt` is the measured round trip when `msg` is the
/// pong of one of our pings.
pub fn render(msg: &ChatMessage<'_>, rtt: Option<Duration>) -> String {
    let room = clean(&msg.room);
    match msg.kind() {
        Some(MsgType::Chat) => format!("[{room}] {}: {}", who(msg), payload(msg)),
        Some(MsgType::Join) => format!("* {} joined {room}", who(msg)),
        Some(MsgType::Leave) => format!("* {} left {room}", who(msg)),
        Some(MsgType::System) => {
            let text = payload(msg);
            if text.starts_with("error:") {
                format!("! {text}")
            } else if text == "welcome" {
                format!("* welcome, your user id is {}", msg.user_id)
            } else {
                format!("* {text}")
            }
        }
        Some(MsgType::Pong) => match rtt {
            Some(rtt) => format!("pong in {}", millis(rtt)),
            None => format!("pong (id {}, not ours)", msg.id),
        },
        Some(MsgType::Ping) => format!("* ping from the server (id {})", msg.id),
        None => format!("? message of unknown type {}", msg.msg_type),
    }
}

/// Milliseconds with one decimal: a loopback round trip is well under 1 ms.
pub fn millis(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// A user's display name: the name and the user id, always, as `bob#17`.
/// Names are not unique (any connection may call itself anything), so the
/// id is what tells two bobs apart; showing it always keeps one user's
/// label the same whether or not a namesake has turned up. The id comes
/// last, so a name that itself ends in `#17` cannot pass for user 17. The
/// id stands alone as `user#17` when the name is empty.
fn who(msg: &ChatMessage<'_>) -> String {
    if msg.username.is_empty() {
        format!("user#{}", msg.user_id)
    } else {
        format!("{}#{}", clean(&msg.username), msg.user_id)
    }
}

fn payload<'m>(msg: &'m ChatMessage<'_>) -> Cow<'m, str> {
    match msg.payload_str() {
        Some(text) => clean(text),
        None => Cow::Owned(clean(&String::from_utf8_lossy(&msg.payload)).into_owned()),
    }
}

/// Escapes control characters (`\n`, ESC, ...) Rust-style.
pub fn clean(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: MsgType, room: &str, user: &str, payload: &str) -> ChatMessage<'static> {
        ChatMessage::new(kind)
            .with_room(room.to_owned())
            .with_username(user.to_owned())
            .with_payload(payload.as_bytes().to_vec())
    }

    #[test]
    fn chat_join_and_leave() {
        let mut chat = msg(MsgType::Chat, "lobby", "alice", "hello");
        chat.user_id = 3;
        assert_eq!(render(&chat, None), "[lobby] alice#3: hello");
        let mut join = msg(MsgType::Join, "lobby", "bob", "");
        join.user_id = 4;
        assert_eq!(render(&join, None), "* bob#4 joined lobby");
        let mut leave = msg(MsgType::Leave, "lobby", "bob", "");
        leave.user_id = 4;
        assert_eq!(render(&leave, None), "* bob#4 left lobby");
    }

    #[test]
    fn namesakes_are_told_apart_by_their_ids() {
        let mut one = msg(MsgType::Chat, "r", "bob", "hi");
        one.user_id = 17;
        let mut two = one.clone();
        two.user_id = 18;
        assert_eq!(render(&one, None), "[r] bob#17: hi");
        assert_eq!(render(&two, None), "[r] bob#18: hi");
        // a name that imitates an id still shows its own
        let mut fake = msg(MsgType::Chat, "r", "bob#17", "hi");
        fake.user_id = 19;
        assert_eq!(render(&fake, None), "[r] bob#17#19: hi");
    }

    #[test]
    fn nameless_users_show_their_id() {
        let mut join = msg(MsgType::Join, "r", "", "");
        join.user_id = 17;
        assert_eq!(render(&join, None), "* user#17 joined r");
    }

    #[test]
    fn system_messages() {
        let err = msg(MsgType::System, "", "", "error: unknown room");
        assert_eq!(render(&err, None), "! error: unknown room");
        let mut welcome = msg(MsgType::System, "", "", "welcome");
        welcome.user_id = 3;
        assert_eq!(render(&welcome, None), "* welcome, your user id is 3");
        let other = msg(MsgType::System, "", "", "server restarting");
        assert_eq!(render(&other, None), "* server restarting");
    }

    #[test]
    fn pongs_show_the_round_trip() {
        let pong = msg(MsgType::Pong, "", "", "");
        assert_eq!(
            render(&pong, Some(Duration::from_micros(1234))),
            "pong in 1.2 ms"
        );
        assert!(render(&pong, None).starts_with("pong (id 0"));
    }

    #[test]
    fn control_characters_cannot_escape_the_line() {
        let evil = msg(MsgType::Chat, "r\n", "m\u{1b}[2J", "a\nb\r\tc");
        let line = render(&evil, None);
        assert_eq!(line, r"[r\n] m\u{1b}[2J#0: a\nb\r\tc");
        assert!(!line.contains('\n') && !line.contains('\u{1b}'));
    }

    #[test]
    fn binary_payloads_are_shown_lossily() {
        let bin = ChatMessage::new(MsgType::Chat)
            .with_room("r")
            .with_username("b")
            .with_payload(vec![b'h', 0xff, b'i']);
        assert_eq!(render(&bin, None), "[r] b#0: h\u{fffd}i");
    }

    #[test]
    fn unicode_passes_unchanged() {
        let chat = msg(MsgType::Chat, "café", "zoë", "héllo 😀");
        assert_eq!(render(&chat, None), "[café] zoë#0: héllo 😀");
    }
}
