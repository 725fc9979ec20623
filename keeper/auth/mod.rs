//! Credentials: argon2 passwords (and the original's werkzeug hashes, checked until replaced), session tokens (JWT) and API tokens (hashed). Permissions are
//! domain values (`domain::Permissions`); who is calling is worked out at the HTTP edge
//! (`api::identity`).

pub mod api_token;
pub mod imported;
pub(crate) mod issue;
pub mod login;
pub mod password;
pub mod session;
pub mod werkzeug;
