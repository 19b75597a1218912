//! The TLS client side that loadgen and the chat client share, so that a
//! `wss://` target is trusted, refused and explained the same way by both:
//! the client configuration (Mozilla's roots, a private CA's, or none with
//! `--insecure`), the certificates of a `--ca-file`, and a refused
//! certificate in words that name the way out.

mod config;
mod refusal;
mod roots;

pub use config::client_config;
pub use refusal::describe;
pub use roots::{parse_ca_pem, CaError};
