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

/// Joins in flight remembered at most; the oldest is forgotten first.
const MAX_PENDING_JOINS: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Send(ChatMessage<'static>),
    /// A line for stdout.
    Print(String),
    /// Local feedback (usage, mistakes) for stderr, kept out of the traffic.
    Note(String),
    Quit,
}

/// What the client believes about its connection. The server is the
/// authority: a request it refuses changes nothing there, so nothing here
/// changes on sending either. Names and rooms change only when the server
/// confirms them with its own notices about this connection's `user_id`
/// (PROTOCOL.md section 5): a `join` notice confirms a join (and carries
/// the name the server now uses), a `leave` notice a leave, and every
/// notice or chat from us carries our current name.
#[derive(Debug)]
pub struct Session {
    /// Our connection's id, from the welcome; `None` before it, when no
    /// notice can be recognised as ours.
    user_id: Option<u64>,
    /// The name the server last confirmed (the upgrade's until the welcome).
    username: String,
    /// A name `/nick` asked for that the server has neither confirmed nor
    /// refused: joins carry it meanwhile.
    wanted_name: Option<String>,
    /// Confirmed rooms, in join order; the last is where `/leave` of the
    /// current room falls back to.
    rooms: Vec<String>,
    /// The confirmed current room: the one the server last confirmed joining.
    current: Option<String>,
    /// Joins sent and not yet answered, oldest first. Chat goes to the last
    /// one meanwhile, as the server will take it in order: typed right
    /// after `/join dev`, a line is meant for dev (and is refused with the
    /// join if that was refused, rather than landing elsewhere).
    pending_joins: Vec<String>,
    pings: HashMap<u64, Instant>,
    next_ping_id: u64,
}

impl Session {
    /// `room` is the room the upgrade URL asked to join.
    pub fn new(username: String, room: Option<String>) -> Session {
        Session {
            user_id: None,
            username,
            wanted_name: None,
            rooms: Vec::new(),
            current: None,
            pending_joins: room.into_iter().collect(),
            pings: HashMap::new(),
            next_ping_id: 1,
        }
    }

    /// Where chat and a bare `/leave` go: the room of the latest join in
    /// flight, else the confirmed current room.
    fn target(&self) -> Option<&String> {
        self.pending_joins.last().or(self.current.as_ref())
    }

    pub fn on_command(&mut self, cmd: Command, now: Instant) -> Vec<Action> {
        match cmd {
            Command::Nothing => vec![],
            Command::Say(text) => match self.target() {
                Some(room) => vec![Action::Send(
                    ChatMessage::new(MsgType::Chat)
                        .with_room(room.clone())
                        .with_payload(text.into_bytes()),
                )],
                None => vec![Action::Note(
                    "you are not in a room: /join ROOM first".into(),
                )],
            },
            Command::Join(room) => vec![Action::Send(self.join(room))],
            Command::Leave(room) => {
                let Some(room) = room.or_else(|| self.target().cloned()) else {
                    return vec![Action::Note("you are not in a room".into())];
                };
                vec![Action::Send(
                    ChatMessage::new(MsgType::Leave).with_room(room),
                )]
            }
            Command::Nick(name) => {
                self.wanted_name = Some(name);
                match self.target().cloned() {
                    // Re-joining a room we are in renames us, and its notice
                    // is the confirmation.
                    Some(room) => vec![Action::Send(self.join(room))],
                    None => vec![Action::Note(format!(
                        "you will be {} from your next /join",
                        render::clean(self.wanted_name.as_deref().unwrap_or_default())
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

    /// Takes what the server says about us into our state.
    fn learn(&mut self, msg: &ChatMessage<'_>) {
        let kind = msg.kind();
        if kind == Some(MsgType::System) {
            if msg.payload_str() == Some("welcome") {
                self.user_id = Some(msg.user_id);
                if !msg.username.is_empty() {
                    self.username = msg.username.to_string();
                }
            } else if msg.payload_str().is_some_and(|p| p.starts_with("error:")) {
                // Errors do not say which request they answer: whatever is
                // in flight is forgotten, and what did succeed is still
                // confirmed by its notice when that arrives.
                self.pending_joins.clear();
                self.wanted_name = None;
            }
            return;
        }
        if self.user_id != Some(msg.user_id)
            || !matches!(kind, Some(MsgType::Join | MsgType::Leave | MsgType::Chat))
        {
            return;
        }
        if !msg.username.is_empty() {
            self.username = msg.username.to_string();
            if self.wanted_name.as_deref() == Some(&*msg.username) {
                self.wanted_name = None;
            }
        }
        let room = msg.room.to_string();
        match kind {
            Some(MsgType::Join) => {
                if let Some(pos) = self.pending_joins.iter().position(|r| *r == room) {
                    self.pending_joins.remove(pos);
                }
                self.rooms.retain(|r| *r != room);
                self.rooms.push(room.clone());
                self.current = Some(room);
            }
            Some(MsgType::Leave) => {
                self.rooms.retain(|r| *r != room);
                if self.current.as_ref() == Some(&room) {
                    self.current = self.rooms.last().cloned();
                }
            }
            _ => {}
        }
    }

    /// The line to print for a message from the server.
    pub fn on_message(&mut self, msg: &ChatMessage<'_>, now: Instant) -> String {
        self.learn(msg);
        let rtt = if msg.kind() == Some(MsgType::Pong) {
            self.pings
                .remove(&msg.id)
                .map(|sent| now.saturating_duration_since(sent))
        } else {
            None
        };
        render::render(msg, rtt)
    }

    /// A join carrying the name we want: the confirmed one, or the one a
    /// `/nick` asked for while it is in flight.
    fn join(&mut self, room: String) -> ChatMessage<'static> {
        // Bounded: a server that answers nothing must not make it grow.
        if self.pending_joins.len() >= MAX_PENDING_JOINS {
            self.pending_joins.remove(0);
        }
        self.pending_joins.push(room.clone());
        let name = self.wanted_name.as_ref().unwrap_or(&self.username);
        ChatMessage::new(MsgType::Join)
            .with_room(room)
            .with_username(name.clone())
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

    const ME: u64 = 7;

    /// The server's side of things: a message from it to us.
    fn from_server(kind: MsgType, user_id: u64, name: &str, room: &str) -> ChatMessage<'static> {
        let mut msg = ChatMessage::new(kind)
            .with_username(name.to_owned())
            .with_room(room.to_owned());
        msg.user_id = user_id;
        msg
    }

    fn error(s: &mut Session, why: &str) {
        let mut err = ChatMessage::error(why);
        err.user_id = ME;
        s.on_message(&err, Instant::now());
    }

    fn confirm(s: &mut Session, kind: MsgType, name: &str, room: &str) {
        s.on_message(&from_server(kind, ME, name, room), Instant::now());
    }

    /// Alice, welcomed as user ME and confirmed in lobby.
    fn session() -> Session {
        let mut s = Session::new("alice".into(), Some("lobby".into()));
        let welcome = from_server(MsgType::System, ME, "alice", "").with_payload(&b"welcome"[..]);
        s.on_message(&welcome, Instant::now());
        confirm(&mut s, MsgType::Join, "alice", "lobby");
        s
    }

    fn say(s: &mut Session) -> String {
        let actions = s.on_command(Command::Say("x".into()), Instant::now());
        sent(&actions).room.to_string()
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
    fn a_join_counts_once_the_server_confirms_it() {
        let mut s = session();
        let actions = s.on_command(Command::Join("dev".into()), Instant::now());
        let msg = sent(&actions);
        assert_eq!(msg.kind(), Some(MsgType::Join));
        assert_eq!((&*msg.room, &*msg.username), ("dev", "alice"));
        // In flight: chat typed now is meant for dev, but dev is not ours yet.
        assert_eq!(say(&mut s), "dev");
        assert_eq!(s.rooms_line(), "rooms: lobby (current)");
        // Someone else's join notice confirms nothing.
        s.on_message(
            &from_server(MsgType::Join, ME + 1, "alice", "dev"),
            Instant::now(),
        );
        assert_eq!(s.rooms_line(), "rooms: lobby (current)");
        confirm(&mut s, MsgType::Join, "alice", "dev");
        assert_eq!(s.rooms_line(), "rooms: lobby, dev (current)");
        assert_eq!(say(&mut s), "dev");
        // joining again does not list the room twice
        s.on_command(Command::Join("lobby".into()), Instant::now());
        confirm(&mut s, MsgType::Join, "alice", "lobby");
        assert_eq!(s.rooms_line(), "rooms: dev, lobby (current)");
    }

    #[test]
    fn a_refused_join_changes_nothing() {
        let mut s = session();
        s.on_command(Command::Join("way too long".into()), Instant::now());
        error(&mut s, "room is 12 bytes, the limit is 8");
        assert_eq!(s.rooms_line(), "rooms: lobby (current)");
        assert_eq!(say(&mut s), "lobby");
    }

    #[test]
    fn a_refused_nick_is_dropped_and_later_joins_carry_the_old_name() {
        let mut s = session();
        let actions = s.on_command(Command::Nick("x".repeat(65)), Instant::now());
        let msg = sent(&actions);
        assert_eq!((msg.kind(), &*msg.room), (Some(MsgType::Join), "lobby"));
        assert_eq!(msg.username.len(), 65);
        error(&mut s, "username is 65 bytes, the limit is 64");
        let actions = s.on_command(Command::Join("dev".into()), Instant::now());
        assert_eq!(sent(&actions).username, "alice");
    }

    #[test]
    fn a_nick_counts_once_the_server_echoes_the_name() {
        let mut s = session();
        let actions = s.on_command(Command::Nick("carol".into()), Instant::now());
        let msg = sent(&actions);
        assert_eq!(msg.kind(), Some(MsgType::Join));
        assert_eq!((&*msg.room, &*msg.username), ("lobby", "carol"));
        // Until confirmed, joins carry the wanted name.
        let actions = s.on_command(Command::Join("dev".into()), Instant::now());
        assert_eq!(sent(&actions).username, "carol");
        confirm(&mut s, MsgType::Join, "carol", "lobby");
        assert_eq!(s.username, "carol");
        assert_eq!(s.wanted_name, None);

        let mut roomless = Session::new("a".into(), None);
        let actions = roomless.on_command(Command::Nick("b".into()), Instant::now());
        assert!(matches!(actions[..], [Action::Note(_)]));
        let actions = roomless.on_command(Command::Join("r".into()), Instant::now());
        assert_eq!(sent(&actions).username, "b");
    }

    #[test]
    fn leaving_the_current_room_falls_back_to_the_last_joined() {
        let mut s = session();
        for room in ["dev", "ops"] {
            s.on_command(Command::Join(room.into()), Instant::now());
            confirm(&mut s, MsgType::Join, "alice", room);
        }
        let actions = s.on_command(Command::Leave(None), Instant::now());
        let msg = sent(&actions);
        assert_eq!((msg.kind(), &*msg.room), (Some(MsgType::Leave), "ops"));
        // Not gone until the server says so.
        assert_eq!(s.current.as_deref(), Some("ops"));
        confirm(&mut s, MsgType::Leave, "alice", "ops");
        assert_eq!(s.current.as_deref(), Some("dev"));

        let actions = s.on_command(Command::Leave(Some("lobby".into())), Instant::now());
        assert_eq!(sent(&actions).room, "lobby");
        confirm(&mut s, MsgType::Leave, "alice", "lobby");
        assert_eq!(s.current.as_deref(), Some("dev"));

        s.on_command(Command::Leave(None), Instant::now());
        confirm(&mut s, MsgType::Leave, "alice", "dev");
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
