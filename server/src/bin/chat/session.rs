//! The client's local state (its name, its rooms, its pings in flight) and
//! what each command and each server message does to it. No I/O here: the
//! caller performs the returned actions, so every rule is unit-testable.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use protocol::{ChatMessage, MsgType};

use crate::command::{Command, HELP};
use crate::render;

/// Pings older than this without a pong are forgotten, so a server that
/// never answers cannot make the table grow without bound.
const PING_MEMORY: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Send(ChatMessage<'static>),
    /// A line for stdout.
    Print(String),
    /// Local feedback (usage, mistakes) for stderr, kept out of the traffic.
    Note(String),
    Quit,
}

#[derive(Debug)]
pub struct Session {
    username: String,
    /// In join order; the last one is where `/leave` of the current room falls back to.
    rooms: Vec<String>,
    current: Option<String>,
    pings: HashMap<u64, Instant>,
    next_ping_id: u64,
}

impl Session {
    /// `room` is the room the upgrade URL already joined.
    pub fn new(username: String, room: Option<String>) -> Session {
        Session {
            username,
            rooms: room.iter().cloned().collect(),
            current: room,
            pings: HashMap::new(),
            next_ping_id: 1,
        }
    }

    pub fn on_command(&mut self, cmd: Command, now: Instant) -> Vec<Action> {
        match cmd {
            Command::Nothing => vec![],
            Command::Say(text) => match &self.current {
                Some(room) => vec![Action::Send(
                    ChatMessage::new(MsgType::Chat)
                        .with_room(room.clone())
                        .with_payload(text.into_bytes()),
                )],
                None => vec![Action::Note(
                    "you are not in a room: /join ROOM first".into(),
                )],
            },
            Command::Join(room) => {
                if !self.rooms.contains(&room) {
                    self.rooms.push(room.clone());
                }
                self.current = Some(room.clone());
                vec![Action::Send(self.join(room))]
            }
            Command::Leave(room) => {
                let Some(room) = room.or_else(|| self.current.clone()) else {
                    return vec![Action::Note("you are not in a room".into())];
                };
                self.rooms.retain(|r| *r != room);
                if self.current.as_ref() == Some(&room) {
                    self.current = self.rooms.last().cloned();
                }
                vec![Action::Send(
                    ChatMessage::new(MsgType::Leave).with_room(room),
                )]
            }
            Command::Nick(name) => {
                self.username = name;
                match self.current.clone() {
                    Some(room) => vec![Action::Send(self.join(room))],
                    None => vec![Action::Note(format!(
                        "you will be {} from your next /join",
                        self.username
                    ))],
                }
            }
            Command::Ping => {
                self.pings
                    .retain(|_, sent| now.saturating_duration_since(*sent) < PING_MEMORY);
                let id = self.next_ping_id;
                self.next_ping_id += 1;
                self.pings.insert(id, now);
                let mut ping = ChatMessage::new(MsgType::Ping);
                ping.id = id;
                ping.timestamp = protocol::message::now_millis();
                vec![Action::Send(ping)]
            }
            Command::Rooms => vec![Action::Print(self.rooms_line())],
            Command::Help => vec![Action::Note(HELP.into())],
            Command::Quit => vec![Action::Quit],
        }
    }

    /// The line to print for a message from the server.
    pub fn on_message(&mut self, msg: &ChatMessage<'_>, now: Instant) -> String {
        let rtt = if msg.kind() == Some(MsgType::Pong) {
            self.pings
                .remove(&msg.id)
                .map(|sent| now.saturating_duration_since(sent))
        } else {
            None
        };
        render::render(msg, rtt)
    }

    fn join(&self, room: String) -> ChatMessage<'static> {
        ChatMessage::new(MsgType::Join)
            .with_room(room)
            .with_username(self.username.clone())
    }

    fn rooms_line(&self) -> String {
        if self.rooms.is_empty() {
            return "rooms: none".into();
        }
        let names: Vec<String> = self
            .rooms
            .iter()
            .map(|r| {
                if self.current.as_ref() == Some(r) {
                    format!("{} (current)", render::clean(r))
                } else {
                    render::clean(r).into_owned()
                }
            })
            .collect();
        format!("rooms: {}", names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(actions: &[Action]) -> &ChatMessage<'static> {
        match actions {
            [Action::Send(msg)] => msg,
            other => panic!("expected one Send, got {other:?}"),
        }
    }

    fn session() -> Session {
        Session::new("alice".into(), Some("lobby".into()))
    }

    #[test]
    fn chat_goes_to_the_current_room() {
        let mut s = session();
        let actions = s.on_command(Command::Say("hi".into()), Instant::now());
        let msg = sent(&actions);
        assert_eq!(msg.kind(), Some(MsgType::Chat));
        assert_eq!(msg.room, "lobby");
        assert_eq!(&*msg.payload, b"hi");
    }

    #[test]
    fn join_switches_rooms_and_sends_our_name() {
        let mut s = session();
        let actions = s.on_command(Command::Join("dev".into()), Instant::now());
        let msg = sent(&actions);
        assert_eq!(msg.kind(), Some(MsgType::Join));
        assert_eq!((&*msg.room, &*msg.username), ("dev", "alice"));
        let actions = s.on_command(Command::Say("x".into()), Instant::now());
        assert_eq!(sent(&actions).room, "dev");
        assert_eq!(
            s.on_command(Command::Rooms, Instant::now()),
            vec![Action::Print("rooms: lobby, dev (current)".into())]
        );
        // joining again does not list the room twice
        s.on_command(Command::Join("lobby".into()), Instant::now());
        assert_eq!(s.rooms_line(), "rooms: lobby (current), dev");
    }

    #[test]
    fn leaving_the_current_room_falls_back_to_the_last_joined() {
        let mut s = session();
        s.on_command(Command::Join("dev".into()), Instant::now());
        s.on_command(Command::Join("ops".into()), Instant::now());
        let actions = s.on_command(Command::Leave(None), Instant::now());
        let msg = sent(&actions);
        assert_eq!((msg.kind(), &*msg.room), (Some(MsgType::Leave), "ops"));
        assert_eq!(s.current.as_deref(), Some("dev"));

        let actions = s.on_command(Command::Leave(Some("lobby".into())), Instant::now());
        assert_eq!(sent(&actions).room, "lobby");
        assert_eq!(s.current.as_deref(), Some("dev"));

        s.on_command(Command::Leave(None), Instant::now());
        assert_eq!(s.current, None);
        assert_eq!(s.rooms_line(), "rooms: none");
        assert!(matches!(
            s.on_command(Command::Say("x".into()), Instant::now())[..],
            [Action::Note(_)]
        ));
        assert!(matches!(
            s.on_command(Command::Leave(None), Instant::now())[..],
            [Action::Note(_)]
        ));
    }

    #[test]
    fn nick_rejoins_the_current_room_under_the_new_name() {
        let mut s = session();
        let actions = s.on_command(Command::Nick("carol".into()), Instant::now());
        let msg = sent(&actions);
        assert_eq!(msg.kind(), Some(MsgType::Join));
        assert_eq!((&*msg.room, &*msg.username), ("lobby", "carol"));

        let mut roomless = Session::new("a".into(), None);
        let actions = roomless.on_command(Command::Nick("b".into()), Instant::now());
        assert!(matches!(actions[..], [Action::Note(_)]));
        let actions = roomless.on_command(Command::Join("r".into()), Instant::now());
        assert_eq!(sent(&actions).username, "b");
    }

    #[test]
    fn pong_reports_the_round_trip_of_its_ping() {
        let mut s = session();
        let t0 = Instant::now();
        let actions = s.on_command(Command::Ping, t0);
        let ping = sent(&actions).clone();
        assert_eq!(ping.kind(), Some(MsgType::Ping));
        let actions = s.on_command(Command::Ping, t0);
        assert_ne!(sent(&actions).id, ping.id, "ping ids must differ");

        let mut pong = ChatMessage::new(MsgType::Pong);
        pong.id = ping.id;
        let line = s.on_message(&pong, t0 + Duration::from_micros(2500));
        assert_eq!(line, "pong in 2.5 ms");
        // a second pong for the same id is not ours any more
        assert!(s.on_message(&pong, t0).starts_with("pong (id"));
    }

    #[test]
    fn unanswered_pings_are_forgotten() {
        let mut s = session();
        let t0 = Instant::now();
        s.on_command(Command::Ping, t0);
        s.on_command(Command::Ping, t0 + PING_MEMORY + Duration::from_secs(1));
        assert_eq!(s.pings.len(), 1);
    }

    #[test]
    fn help_and_quit() {
        let mut s = session();
        assert!(matches!(
            &s.on_command(Command::Help, Instant::now())[..],
            [Action::Note(text)] if text.contains("/join")
        ));
        assert_eq!(
            s.on_command(Command::Quit, Instant::now()),
            vec![Action::Quit]
        );
        assert!(s.on_command(Command::Nothing, Instant::now()).is_empty());
    }
}
