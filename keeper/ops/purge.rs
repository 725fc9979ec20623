//! `purge`: a CDN purge by surrogate key, retried on its own; and the purge step of the other
//! kinds. A failed purge fails the operation (it is retried like any other failure).

use diesel::QueryResult;
use serde::{Deserialize, Serialize};

use crate::db::models::Operation;
use crate::db::DbConnection;
use crate::domain::{OperationKind, SurrogateKey};
use crate::ops::{enqueue_kind, read_payload, OpError, Outcome, Services, Targets};

/// The surrogate keys to purge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    pub keys: Vec<SurrogateKey>,
}

/// Records a purge of `keys` on behalf of `product`.
pub fn enqueue(
    conn: &mut DbConnection,
    product: Option<i64>,
    keys: Vec<SurrogateKey>,
) -> QueryResult<Operation> {
    let targets = Targets {
        product,
        ..Targets::default()
    };
    enqueue_kind(conn, OperationKind::Purge, targets, &Payload { keys })
}

pub async fn run(services: &Services, operation: &Operation) -> Result<Outcome, OpError> {
    let payload: Payload = read_payload(operation)?;
    let keys: Vec<String> = payload
        .keys
        .iter()
        .map(|key| key.as_str().to_owned())
        .collect();
    purge_keys(services, &keys).await?;
    Ok(Outcome::done())
}

/// Purges `keys` through the process's CDN. Rate limits, server errors and network failures are
/// transient; anything else (a refused API key, an invalid key) needs an operator.
pub async fn purge_keys(services: &Services, keys: &[String]) -> Result<(), OpError> {
    services.purger.purge(keys).await.map_err(|err| {
        if err.is_transient() {
            OpError::Transient(anyhow::Error::new(err).context("purging the CDN"))
        } else {
            OpError::Permanent(format!(
                "purging the CDN failed: {err}; check the CDN settings (KEEPER_CDN, the Fastly \
                 service and API key), then retry the operation"
            ))
        }
    })
}
