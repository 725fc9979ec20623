//! Authentication and authorization: passwords and permission bits.

pub mod api_token;
pub mod identity;
pub mod password;
pub mod permissions;
pub mod session;

pub use permissions::Permissions;
