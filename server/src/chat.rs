//! What the chat protocol means: joins, leaves, chat relay, pings and the
//! answers to bad input. Synchronous on purpose: it runs inside the read
//! path, on bytes borrowed from the worker's scratch buffer.

use std::borrow::Cow;
use std::sync::Arc;

use protocol::frame::{encode_frame, Flow, Message, OpCode};
use protocol::message::now_millis;
use protocol::name::{self, NameKind};
use protocol::{binary, json, ChatMessage, DecodeError, MsgType, Proto};

use crate::broadcast;
use crate::conn::{Conn, Push};
use crate::metrics::CloseReason;
use crate::shared::Shared;

/// One connection's chat state, owned by its task.
pub struct Session {
    pub conn: Arc<Conn>,
    shared: Arc<Shared>,
    /// `None` until set or first needed: idle connections store no name.
    username: Option<Box<str>>,
    /// Rooms joined, oldest first; the last is the default for chat.
    rooms: Vec<Arc<str>>,
    bad_messages: u32,
    /// Set when the connection must close, with the code to send.
    pub close: Option<(CloseReason, u16)>,
}

impl Session {
    pub fn new(conn: Arc<Conn>, shared: Arc<Shared>) -> Session {
        Session {
            conn,
            shared,
            username: None,
            rooms: Vec::new(),
            bad_messages: 0,
            close: None,
        }
    }

    fn username(&mut self) -> &str {
        let id = self.conn.id;
        self.username
            .get_or_insert_with(|| format!("user-{id}").into_boxed_str())
    }

    /// The System welcome carrying the connection's id, then the joins the
    /// upgrade URL asked for.
    pub fn start(&mut self, username: Option<&str>, room: Option<&str>) {
        let mut welcome = ChatMessage::new(MsgType::System).with_payload(&b"welcome"[..]);
        welcome.user_id = self.conn.id;
        welcome.timestamp = now_millis();
        if let Some(name) = username {
            self.set_username(name);
        }
        welcome.username = Cow::Owned(self.username().to_owned());
        broadcast::to_conn(&self.shared, &self.conn, &welcome);
        if let Some(room) = room {
            self.join(room, None);
        }
    }

    /// Handles one message from the frame reader.
    pub fn on_message(&mut self, message: Message<'_>) -> Flow {
        match message {
            Message::Text(text) => {
                self.conn.set_proto(Proto::Json);
                match json::decode(text) {
                    Ok(msg) => self.on_chat_message(msg, Proto::Json),
                    Err(e) => self.bad_message(e, Proto::Json),
                }
            }
            Message::Binary(bytes) => {
                self.conn.set_proto(Proto::Binary);
                match binary::decode(bytes) {
                    Ok(msg) => self.on_chat_message(msg, Proto::Binary),
                    Err(e) => self.bad_message(e, Proto::Binary),
                }
            }
            Message::Ping(payload) => {
                // Control answers bypass nothing: a client that pings without
                // reading fills its queue like any other slow consumer.
                self.push_own(encode_frame(OpCode::Pong, payload, None));
            }
            Message::Pong(_) => {}
            Message::Close(code) => {
                let echo = code.map_or(protocol::frame::close_code::NORMAL, |(c, _)| c);
                self.close = Some((CloseReason::ClientClose, echo));
            }
        }
        if self.close.is_some() {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    fn push_own(&mut self, frame: bytes::Bytes) {
        match self.conn.push(&frame, self.shared.limits.queue) {
            Push::Dropped | Push::DroppedAndClosed => self.shared.metrics.dropped.increment(1),
            Push::Queued | Push::Closing => {}
        }
    }

    fn on_chat_message(&mut self, msg: ChatMessage<'_>, proto: Proto) {
        // Decoders only return known types.
        let Some(kind) = msg.kind() else { return };
        self.shared.metrics.received(kind, proto).increment(1);
        // A name rides along with a join, leave or chat, and is taken only
        // when the server carries that request out: a refused or
        // unsupported message changes nothing (PROTOCOL.md section 5).
        let rename = match kind {
            MsgType::Join | MsgType::Leave | MsgType::Chat if !msg.username.is_empty() => {
                Some(&*msg.username)
            }
            _ => None,
        };
        if let Some(name) = rename {
            let max = self.shared.limits.max_username_len;
            if let Err(e) = name::check(NameKind::Username, name, max) {
                return self.refuse(e.to_string());
            }
        }
        match kind {
            MsgType::Join => match self.room_arg(&msg.room, true) {
                Ok(room) => self.join(&room, rename),
                Err(e) => self.refuse(e),
            },
            MsgType::Leave => match self.room_arg(&msg.room, false) {
                Ok(room) => {
                    // A member: the leave cannot be refused now.
                    self.rename(rename);
                    self.leave(&room, true);
                }
                Err(e) => self.refuse(e),
            },
            MsgType::Chat => match self.room_arg(&msg.room, false) {
                Ok(room) => {
                    self.rename(rename);
                    self.chat(room, &msg.payload);
                }
                Err(e) => self.refuse(e),
            },
            MsgType::Ping => {
                let mut pong = ChatMessage::new(MsgType::Pong).with_payload(&msg.payload[..]);
                pong.id = msg.id;
                pong.user_id = self.conn.id;
                pong.timestamp = now_millis();
                broadcast::to_conn(&self.shared, &self.conn, &pong);
            }
            MsgType::System | MsgType::Pong => self.bad_message(
                DecodeError::UnknownType(format!("{} (server-to-client only)", kind.as_str())),
                proto,
            ),
        }
    }

    /// Takes the name a carried-out request brought, if any.
    fn rename(&mut self, name: Option<&str>) {
        if let Some(name) = name {
            self.set_username(name);
        }
    }

    fn set_username(&mut self, name: &str) {
        if self.username.as_deref() != Some(name) {
            let max = self.shared.limits.max_username_len;
            let mut cut = name.len().min(max);
            while !name.is_char_boundary(cut) {
                cut -= 1;
            }
            self.username = Some(name[..cut].into());
        }
    }

    /// The room a message names, or the last joined one. Joining needs a
    /// name; the others need membership.
    fn room_arg(&self, room: &str, joining: bool) -> Result<Arc<str>, String> {
        // Checked for leave and chat too: such a room cannot exist, and
        // saying why beats "not in room".
        name::check(NameKind::Room, room, self.shared.limits.max_room_len)
            .map_err(|e| e.to_string())?;
        if room.is_empty() {
            if joining {
                return Err("join needs a room".into());
            }
            return self
                .rooms
                .last()
                .cloned()
                .ok_or_else(|| "not in any room: join one first".into());
        }
        if let Some(r) = self.rooms.iter().find(|r| ***r == *room) {
            return Ok(r.clone());
        }
        if joining {
            Ok(Arc::from(room))
        } else {
            Err(format!("not in room {room:?}"))
        }
    }

    fn notice(&mut self, kind: MsgType, room: &str) -> ChatMessage<'static> {
        let mut msg = ChatMessage::new(kind)
            .with_room(room.to_owned())
            .with_username(self.username().to_owned());
        msg.id = self.shared.next_msg_id();
        msg.user_id = self.conn.id;
        msg.timestamp = now_millis();
        msg
    }

    /// Joins `room`, taking the name `rename` once the join is sure to
    /// happen, so that its notice carries it.
    fn join(&mut self, room: &str, rename: Option<&str>) {
        if room.is_empty() || room.len() > self.shared.limits.max_room_len {
            return self.refuse(format!(
                "room name must be 1 to {} bytes",
                self.shared.limits.max_room_len
            ));
        }
        let member = self.rooms.iter().any(|r| &**r == room);
        if !member && self.rooms.len() >= self.shared.limits.max_rooms_per_connection {
            return self.refuse(format!("already in {} rooms, the limit", self.rooms.len()));
        }
        self.rename(rename);
        if !member {
            let (name, created) = self.shared.rooms.join(room, &self.conn);
            if created {
                self.shared.metrics.rooms.increment(1.0);
            }
            self.rooms.push(name);
        } else if let Some(pos) = self.rooms.iter().position(|r| &**r == room) {
            // A repeated join makes the room the default again.
            let name = self.rooms.remove(pos);
            self.rooms.push(name);
        }
        let notice = self.notice(MsgType::Join, room);
        broadcast::to_room(&self.shared, room, &notice);
    }

    /// Leaves `room`; members are told, the leaver too when it asked.
    fn leave(&mut self, room: &str, explicit: bool) {
        let Some(pos) = self.rooms.iter().position(|r| &**r == room) else {
            return;
        };
        let notice = self.notice(MsgType::Leave, room);
        if explicit {
            broadcast::to_conn(&self.shared, &self.conn, &notice);
        }
        if self.shared.rooms.leave(room, self.conn.id) {
            self.shared.metrics.rooms.decrement(1.0);
        }
        self.rooms.remove(pos);
        broadcast::to_room(&self.shared, room, &notice);
    }

    fn chat(&mut self, room: Arc<str>, payload: &[u8]) {
        self.username();
        let msg = ChatMessage {
            id: self.shared.next_msg_id(),
            msg_type: MsgType::Chat as u8,
            user_id: self.conn.id,
            username: Cow::Borrowed(self.username.as_deref().unwrap_or_default()),
            payload: Cow::Borrowed(payload),
            timestamp: now_millis(),
            room: Cow::Borrowed(&room),
        };
        broadcast::to_room(&self.shared, &room, &msg);
    }

    /// A well-formed request the server will not carry out: the client is
    /// told why; it does not count toward closing the connection.
    fn refuse(&mut self, why: String) {
        let mut msg = ChatMessage::error(&why);
        msg.user_id = self.conn.id;
        msg.timestamp = now_millis();
        broadcast::to_conn(&self.shared, &self.conn, &msg);
    }

    /// Undecodable or unsupported input: told, counted, and after
    /// `max_bad_messages` of them the connection is closed.
    fn bad_message(&mut self, err: DecodeError, proto: Proto) {
        self.shared.metrics.bad_message(proto).increment(1);
        self.bad_messages += 1;
        let unsupported = err.is_unsupported();
        self.refuse(err.to_string());
        if self.bad_messages >= self.shared.limits.max_bad_messages {
            let reason = if unsupported {
                CloseReason::Unsupported
            } else {
                CloseReason::InvalidPayload
            };
            self.close = Some((reason, reason.code()));
        }
    }

    /// Leaves every room, telling the remaining members.
    pub fn leave_all(&mut self) {
        while let Some(room) = self.rooms.last().cloned() {
            self.leave(&room, false);
        }
    }
}
