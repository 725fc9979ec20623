//! Pure domain rules, without I/O.

pub mod username;

pub use username::Username;
