//! The database of record: connections, pool, schema, migrations and queries.

pub mod connection;
pub mod migrations;
pub mod pool;
pub mod schema;
pub mod settings;
pub mod users;
pub mod violation;

pub use connection::{Backend, DbConnection};
pub use pool::{build_pool, DbPool, PooledConnection};
