//! `purge`: a CDN purge by surrogate key, retried on its own; and the purge step of the other
//! kinds. A failed purge fails the operation (it is retried like any other failure).

use serde::Deserialize;

use crate::db::models::Operation;
use crate::ops::{OpError, Outcome, Services};

#[derive(Debug, Deserialize)]
struct Payload {
    keys: Vec<String>,
}

pub async fn run(services: &Services, operation: &Operation) -> Result<Outcome, OpError> {
    let payload: Payload = serde_json::from_str(&operation.payload)
        .map_err(|err| OpError::Permanent(format!("unreadable purge payload: {err}")))?;
    purge_keys(services, &payload.keys).await?;
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
