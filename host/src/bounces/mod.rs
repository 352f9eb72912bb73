//! Bounces: mail to `NAME-bounces[+TOKEN]@` parsed (by the `roost-bounce` crate) and matched
//! to the copy and member it is about (`mail`), and every recorded bounce — parsed, a 5xx
//! at delivery, an expiry — handed to the list's `on-bounce` plugins once (`handler`).

pub mod handler;
pub mod mail;

pub use handler::BounceHandler;
