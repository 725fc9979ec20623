//! Authentication and authorization: passwords and permission bits.

pub mod password;
pub mod permissions;

pub use permissions::Permissions;
