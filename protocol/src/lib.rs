//! The wire contract of the lab, shared by the server, the load generator and
//! any client. Everything here is sans-IO: codecs take and return bytes, so
//! each program can own its sockets and buffers (the server's memory budget per
//! connection depends on that).
//!
//! PROTOCOL.md at the repository root describes the same bytes for readers
//! writing a client in another language; the tests keep the two in step.

pub mod binary;
pub mod frame;
pub mod handshake;
pub mod json;
pub mod message;
pub mod name;
pub mod write_queue;

pub use message::{ChatMessage, MsgType, Proto, ERROR_PREFIX};

/// Why a chat message could not be decoded. Carries enough detail for the
/// server to tell the client what was wrong in a System error message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("malformed binary message: {0}")]
    Binary(String),
    #[error("malformed JSON message: {0}")]
    Json(String),
    #[error("unknown message type {0}")]
    UnknownType(String),
}

impl DecodeError {
    /// Malformed input is a 1007 (invalid payload) offence; a well-formed
    /// message of a type we do not speak is a 1003 (unsupported data) one.
    pub fn is_unsupported(&self) -> bool {
        matches!(self, DecodeError::UnknownType(_))
    }
}
