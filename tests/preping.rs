//! After PostgreSQL terminates every backend of keeper's database (as a restart or failover
//! would), requests keep succeeding with zero failures: writes because the pool checks
//! connections on checkout, reads (which skip that round trip) because they run again on a
//! checked connection when their first statement finds the connection dead, and the hot reads
//! on their pipelined connections because they run again on a new one.

mod common;

use common::{client, postgres_admin_url, TestBackend, TestDatabase, TestServer};
use diesel::sql_types::BigInt;
use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl};

/// Terminates every connection to `database`; returns how many were terminated.
fn terminate_backends(database: &str) -> i64 {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let mut admin = PgConnection::establish(&postgres_admin_url()).unwrap();
    let terminated: Count = diesel::sql_query(format!(
        "SELECT COUNT(pg_terminate_backend(pid)) AS n FROM pg_stat_activity
          WHERE datname = '{database}' AND pid <> pg_backend_pid()"
    ))
    .get_result(&mut admin)
    .unwrap();
    // pg_terminate_backend signals; wait until the server has really closed them.
    let mut remaining: Count;
    loop {
        remaining = diesel::sql_query(format!(
            "SELECT COUNT(*) AS n FROM pg_stat_activity WHERE datname = '{database}' AND pid <> pg_backend_pid()"
        ))
        .get_result(&mut admin)
        .unwrap();
        if remaining.n == 0 {
            break;
        }
        std::thread::yield_now();
    }
    terminated.n
}

/// How many backends of `database` call themselves `application_name`.
fn backends_named(database: &str, application_name: &str) -> i64 {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let mut admin = PgConnection::establish(&postgres_admin_url()).unwrap();
    diesel::sql_query(
        "SELECT COUNT(*) AS n FROM pg_stat_activity WHERE datname = $1 AND application_name = $2",
    )
    .bind::<diesel::sql_types::Text, _>(database)
    .bind::<diesel::sql_types::Text, _>(application_name)
    .get_result::<Count>(&mut admin)
    .unwrap()
    .n
}

/// Read routes and readiness: a 404 is an answer, a 5xx or no answer a failure.
const PATHS: [&str; 6] = [
    "/health/ready",
    "/products/",
    "/products/missing",
    "/products/missing/editions/",
    "/editions/1",
    "/builds/1",
];

/// Warms the pool, kills its connections, then sends [`failed_requests`]'s 24 requests;
/// returns the failed ones.
fn failures_after_terminating_connections(pre_ping: bool) -> Vec<String> {
    let db = TestDatabase::new(TestBackend::Postgres);
    let config = db.config(&[("KEEPER_DATABASE_POOL_SIZE", "2")]);
    keeper::startup::prepare(&config).unwrap();
    let pool = keeper::db::pool::build_pool_with(&config.database, pre_ping);
    let state = keeper::api::app::AppState::new(
        pool.clone(),
        &config.http.public_url_for(config.http.bind),
        common::test_sessions(),
    );
    let server = TestServer::serve(&config, move |max| {
        keeper::api::app::app(state.clone(), max)
    });
    // Two connections in the pool, both idle.
    let (a, b) = (pool.get().unwrap(), pool.get().unwrap());
    drop((a, b));
    assert_eq!(pool.state().idle_connections, 2);
    assert!(terminate_backends(db.postgres_name()) >= 2);

    failed_requests(&server)
}

/// Sends 24 requests (each of [`PATHS`] four times); returns the failed ones.
fn failed_requests(server: &TestServer) -> Vec<String> {
    let http = client();
    PATHS
        .iter()
        .cycle()
        .take(4 * PATHS.len())
        .filter_map(|path| match http.get(server.url(path)).send() {
            Ok(response) if !response.status().is_server_error() => None,
            Ok(response) => Some(format!("{path}: {}", response.text().unwrap_or_default())),
            Err(err) => Some(format!("{path}: {err}")),
        })
        .collect()
}

#[test]
fn pre_ping_survives_terminated_connections_with_zero_failures() {
    let failed = failures_after_terminating_connections(true);
    assert!(failed.is_empty(), "{failed:#?}");
}

#[test]
fn without_pre_ping_the_same_scenario_fails_requests() {
    // The control: shows that the scenario above really hands out dead connections.
    assert!(!failures_after_terminating_connections(false).is_empty());
}

#[test]
fn pipelined_reads_survive_terminated_connections_with_zero_failures() {
    use keeper::db::pipelined::APPLICATION_NAME;
    let db = TestDatabase::new(TestBackend::Postgres);
    let config = db.config(&[("KEEPER_DATABASE_POOL_SIZE", "2")]);
    let server = TestServer::start(&config);
    let failures = || failed_requests(&server);
    assert_eq!(failures(), Vec::<String>::new());
    // The reads opened their own connections (one per worker thread that served one).
    let pipelined = backends_named(db.postgres_name(), APPLICATION_NAME);
    assert!(
        (1..=2).contains(&pipelined),
        "{pipelined} pipelined connections"
    );

    assert!(terminate_backends(db.postgres_name()) > pipelined);
    assert_eq!(backends_named(db.postgres_name(), APPLICATION_NAME), 0);

    let failed = failures();
    assert!(failed.is_empty(), "{failed:#?}");
    // Served by new pipelined connections, not by the pool instead.
    assert!(backends_named(db.postgres_name(), APPLICATION_NAME) >= 1);
}

#[test]
fn pipelined_reads_can_be_turned_off() {
    use keeper::db::pipelined::APPLICATION_NAME;
    let db = TestDatabase::new(TestBackend::Postgres);
    let config = db.config(&[("KEEPER_DATABASE_PIPELINED_READS", "false")]);
    let server = TestServer::start(&config);
    for path in PATHS {
        let response = client().get(server.url(path)).send().unwrap();
        assert!(!response.status().is_server_error(), "{path}");
    }
    assert_eq!(backends_named(db.postgres_name(), APPLICATION_NAME), 0);
}
