//! The database of record: connections, pool, schema, migrations and queries.

pub mod backup;
pub(crate) mod build_numbers;
pub(crate) mod builds;
pub mod connection;
pub(crate) mod editions;
pub(crate) mod history;
pub mod migrations;
pub mod models;
pub(crate) mod operations;
pub mod organization_admins;
pub mod organizations;
pub mod pipelined;
pub mod pool;
pub(crate) mod products;
pub(crate) mod reads;
pub(crate) mod retention;
pub mod rows;
pub mod schema;
pub(crate) mod settings;
pub(crate) mod text_enum;
pub mod tokens;
pub mod users;
pub mod violation;
pub mod webhooks;

pub use connection::{Backend, DbConnection};
pub use pool::{build_pool, DbPool, PooledConnection};
