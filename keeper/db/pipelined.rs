//! PostgreSQL reads without the blocking pool: each HTTP worker thread keeps one asynchronous
//! connection (tokio-postgres, through diesel-async), and the reads of all its requests in
//! flight share it, pipelined: their statements go out back to back and the server answers them
//! in order, so neither side sleeps between two of them.
//!
//! On the blocking pool each read costs two thread hand-offs (to a blocking thread and back) and
//! a sleep in the server per statement; on 2 cores that made keeper's CPU per read on PostgreSQL
//! about 1.6 times SQLite's (bench/api). Here the statement leaves from the worker's own thread
//! and its answer wakes that thread's runtime, which drives the connection too.
//!
//! A thread keeps its connection (in a thread-local map, by `PipelinedReads` instance) until the
//! thread ends, as actix's worker threads do when the server stops.
//!
//! What it keeps from the pool:
//! - a dead connection (a restart, a terminated backend) fails only the statements in flight on
//!   it: the read runs once more on a new connection, as `run_db_read` does;
//! - the connection is opened as libpq opens it, but without TLS, so keeper uses this only when
//!   libpq's own connection does not use TLS either ([`plan`]); otherwise every read stays on
//!   the pool and the log says why;
//! - when no connection can be opened, the read goes to the pool, which answers as it always
//!   did (a 503 while the database is down); another attempt waits [`RECONNECT_PAUSE`].

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::result::DatabaseErrorKind;
use diesel::sql_types::Bool;
use diesel::{QueryResult, RunQueryDsl};
use diesel_async::AsyncPgConnection;
use secrecy::{ExposeSecret, SecretString};

use crate::config::{DatabaseConfig, DatabaseUrl};
use crate::db::{DbConnection, DbPool};

/// After a connection could not be opened, reads go to the pool for this long before this
/// thread tries again.
pub const RECONNECT_PAUSE: Duration = Duration::from_secs(1);

/// What the pipelined connections call themselves to the server, unless the URL names one.
pub const APPLICATION_NAME: &str = "keeper pipelined reads";

/// The pipelined reads of one `AppState` (cheap to clone; every clone shares the connections of
/// a thread).
#[derive(Clone)]
pub struct PipelinedReads {
    shared: Arc<Shared>,
}

struct Shared {
    /// Tells this instance's connections apart from another's in a thread's map.
    id: u64,
    config: tokio_postgres::Config,
}

/// One open connection and whether its driver is still running.
pub struct Live {
    conn: AsyncPgConnection,
    alive: Arc<AtomicBool>,
}

impl Live {
    /// The connection, for diesel-async's `RunQueryDsl` (which runs on `&mut &AsyncPgConnection`,
    /// so that reads sharing it are pipelined).
    pub fn conn(&self) -> &AsyncPgConnection {
        &self.conn
    }

    fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }
}

/// A worker thread's connection for one `PipelinedReads`.
#[derive(Default)]
struct Slot {
    live: RefCell<Option<Rc<Live>>>,
    /// One opening at a time per thread; the others wait for it.
    opening: tokio::sync::Mutex<()>,
    /// When the last attempt to open failed.
    failed_at: Cell<Option<Instant>>,
}

thread_local! {
    static SLOTS: RefCell<HashMap<u64, Rc<Slot>>> = RefCell::new(HashMap::new());
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Whether the API's reads on `config`'s database can be pipelined, and how; `None`, with the
/// reason logged, when they stay on `pool`. Asked once by the HTTP server's start-up.
pub fn plan(pool: &DbPool, config: &DatabaseConfig) -> Option<PipelinedReads> {
    let DatabaseUrl::Postgres(url) = &config.url else {
        return None;
    };
    if !config.pipelined_reads {
        tracing::info!("reads use the connection pool (KEEPER_DATABASE_PIPELINED_READS=false)");
        return None;
    }
    let mut conn = match pool.get() {
        Ok(conn) => conn,
        Err(err) => {
            tracing::info!(error = %err, "reads use the connection pool: no connection to \
                check the database's with");
            return None;
        }
    };
    let DbConnection::Postgres(pg) = &mut **conn else {
        return None;
    };
    #[derive(diesel::QueryableByName)]
    struct Ssl {
        #[diesel(sql_type = Bool)]
        ssl: bool,
    }
    let ssl = diesel::sql_query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .get_result::<Ssl>(pg);
    match ssl {
        Ok(Ssl { ssl: false }) => {}
        Ok(Ssl { ssl: true }) => {
            tracing::info!(
                "reads use the connection pool: the database connection uses TLS, which \
                 pipelined reads do not implement"
            );
            return None;
        }
        Err(err) => {
            tracing::info!(error = %err, "reads use the connection pool: could not tell whether \
                the database connection uses TLS");
            return None;
        }
    }
    let reads = match PipelinedReads::new(url, config.checkout_timeout) {
        Ok(reads) => reads,
        Err(err) => {
            tracing::info!(error = %err, "reads use the connection pool: the database URL is \
                not one tokio-postgres reads");
            return None;
        }
    };
    // Once now, so that what libpq finds and tokio-postgres does not (a password in
    // ~/.pgpass, say) turns pipelining off at start instead of failing every attempt later. On
    // a thread of its own: start-up may run inside a runtime, which cannot block on another.
    let opened = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|err| err.to_string())?;
                runtime
                    .block_on(open(&reads.shared.config))
                    .map(drop)
                    .map_err(|err| err.to_string())
            })
            .join()
            .unwrap_or_else(|_| Err("the check panicked".into()))
    });
    match opened {
        Ok(()) => {
            tracing::info!("reads are pipelined on one connection per HTTP worker thread");
            Some(reads)
        }
        Err(err) => {
            tracing::info!(error = %err, "reads use the connection pool: a pipelined connection \
                could not be opened");
            None
        }
    }
}

impl PipelinedReads {
    /// Reads on `url`, opening each connection within `connect_timeout`.
    pub fn new(
        url: &SecretString,
        connect_timeout: Duration,
    ) -> Result<Self, tokio_postgres::Error> {
        let mut config = url.expose_secret().parse::<tokio_postgres::Config>()?;
        config.connect_timeout(connect_timeout);
        if config.get_application_name().is_none() {
            // So that `pg_stat_activity` tells them from the pool's connections.
            config.application_name(APPLICATION_NAME);
        }
        Ok(Self {
            shared: Arc::new(Shared {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                config,
            }),
        })
    }

    /// Runs `work`, which only reads, on this thread's connection. A statement that fails on a
    /// connection found dead runs once more on a new one. `None`: no connection could be
    /// opened (the caller reads through the pool instead).
    pub async fn run<T, F, Fut>(&self, work: F) -> Option<QueryResult<T>>
    where
        F: Fn(Rc<Live>) -> Fut,
        Fut: Future<Output = QueryResult<T>>,
    {
        let slot = self.slot();
        let live = self.connection(&slot).await?;
        let done = work(live.clone()).await;
        let lost = match &done {
            Ok(_) => false,
            Err(err) if is_connection_lost(err) || !live.is_alive() => true,
            Err(_) => {
                // The driver may not have seen the end of the connection yet.
                tokio::task::yield_now().await;
                !live.is_alive()
            }
        };
        if !lost {
            return Some(done);
        }
        discard(&slot, &live);
        let live = self.connection(&slot).await?;
        Some(work(live).await)
    }

    fn slot(&self) -> Rc<Slot> {
        SLOTS.with(|slots| {
            slots
                .borrow_mut()
                .entry(self.shared.id)
                .or_default()
                .clone()
        })
    }

    /// The thread's live connection, opened if need be; `None` when opening failed, now or
    /// less than [`RECONNECT_PAUSE`] ago.
    async fn connection(&self, slot: &Slot) -> Option<Rc<Live>> {
        if let Some(live) = current(slot) {
            return Some(live);
        }
        let asked = Instant::now();
        let _opening = slot.opening.lock().await;
        if let Some(live) = current(slot) {
            return Some(live);
        }
        if let Some(failed) = slot.failed_at.get() {
            // Another request of this thread just tried, while this one waited, or lately.
            if failed >= asked || failed.elapsed() < RECONNECT_PAUSE {
                return None;
            }
        }
        match open(&self.shared.config).await {
            Ok(live) => {
                let live = Rc::new(live);
                slot.failed_at.set(None);
                *slot.live.borrow_mut() = Some(live.clone());
                Some(live)
            }
            Err(err) => {
                tracing::warn!(error = %err, "could not open a pipelined database connection; \
                    reads use the pool");
                slot.failed_at.set(Some(Instant::now()));
                None
            }
        }
    }
}

/// Nothing was run: the statement could not be sent, or the connection closed under it.
fn is_connection_lost(err: &diesel::result::Error) -> bool {
    matches!(
        err,
        diesel::result::Error::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            _,
        )
    )
}

fn current(slot: &Slot) -> Option<Rc<Live>> {
    slot.live
        .borrow()
        .as_ref()
        .filter(|live| live.is_alive())
        .cloned()
}

/// Forgets `live` (unless another request already replaced it); requests still running on it
/// keep it until they finish.
fn discard(slot: &Slot, live: &Rc<Live>) {
    let mut held = slot.live.borrow_mut();
    if held.as_ref().is_some_and(|held| Rc::ptr_eq(held, live)) {
        *held = None;
    }
}

#[derive(Debug, thiserror::Error)]
enum OpenError {
    #[error(transparent)]
    Connect(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Setup(#[from] diesel::ConnectionError),
}

/// Opens a connection and drives it on this thread's runtime until the server or keeper closes
/// it.
async fn open(config: &tokio_postgres::Config) -> Result<Live, OpenError> {
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    let alive = Arc::new(AtomicBool::new(true));
    let driving = alive.clone();
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!(error = %err, "pipelined database connection closed");
        }
        driving.store(false, Ordering::Release);
    });
    let conn = AsyncPgConnection::try_from(client).await?;
    Ok(Live { conn, alive })
}
