//! The database of record: connections, pool, schema, migrations and queries.

pub mod builds;
pub mod connection;
pub mod editions;
pub mod migrations;
pub mod models;
pub mod operations;
pub mod organizations;
pub mod pool;
pub mod products;
pub mod schema;
pub mod settings;
pub mod text_enum;
pub mod tokens;
pub mod users;
pub mod violation;

pub use connection::{Backend, DbConnection};
pub use pool::{build_pool, DbPool, PooledConnection};
