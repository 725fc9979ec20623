//! Start-up on both backends: the signing key is generated once and kept in the database (or taken
//! from KEEPER_SECRET_KEY), and the bootstrap administrator is created once, never overwritten.
//! A database that is not keeper's is refused and left as it was.

mod common;

use std::collections::BTreeMap;

use common::{TestBackend, TestDatabase};
use diesel::{Connection, RunQueryDsl};
use keeper::auth::password::verify_password;
use keeper::db::users::find_user;
use keeper::domain::Permissions;
use keeper::domain::Username;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

fn the_generated_signing_key_survives_restarts(backend: TestBackend) {
    let db = TestDatabase::new(backend);
    let first = keeper::startup::prepare(&db.config(&[]))
        .unwrap()
        .secret_key;
    let second = keeper::startup::prepare(&db.config(&[]))
        .unwrap()
        .secret_key;
    assert_eq!(first.expose_secret().len(), 64);
    assert_eq!(first.expose_secret(), second.expose_secret());

    let configured = "a-configured-key-of-at-least-32-characters";
    let third = keeper::startup::prepare(&db.config(&[("KEEPER_SECRET_KEY", configured)]))
        .unwrap()
        .secret_key;
    assert_eq!(third.expose_secret(), configured);

    let other_db = TestDatabase::new(backend);
    let other = keeper::startup::prepare(&other_db.config(&[]))
        .unwrap()
        .secret_key;
    assert_ne!(
        other.expose_secret(),
        first.expose_secret(),
        "keys are random per database"
    );
}

fn the_bootstrap_admin_is_created_once(backend: TestBackend) {
    let db = TestDatabase::new(backend);
    let config = db.config(&[
        ("KEEPER_BOOTSTRAP_USER", "admin"),
        ("KEEPER_BOOTSTRAP_PASSWORD", "first password"),
    ]);
    keeper::startup::prepare(&config).unwrap();
    // A restart with another password must not silently reset the administrator's password.
    let config = db.config(&[
        ("KEEPER_BOOTSTRAP_USER", "admin"),
        ("KEEPER_BOOTSTRAP_PASSWORD", "second password"),
    ]);
    keeper::startup::prepare(&config).unwrap();

    let user = find_user(&mut db.connect(), &Username::parse("admin").unwrap())
        .unwrap()
        .expect("the bootstrap user exists");
    assert_eq!(
        Permissions::from_bits(user.permissions),
        Some(Permissions::ALL)
    );
    assert!(verify_password(
        &SecretString::from("first password"),
        &user.password_hash
    ));
    assert!(!verify_password(
        &SecretString::from("second password"),
        &user.password_hash
    ));
}

fn a_weak_bootstrap_password_stops_start_up(backend: TestBackend) {
    let db = TestDatabase::new(backend);
    let config = db.config(&[
        ("KEEPER_BOOTSTRAP_USER", "admin"),
        ("KEEPER_BOOTSTRAP_PASSWORD", "short"),
    ]);
    let err = keeper::startup::prepare(&config).err().unwrap();
    assert!(
        format!("{err:#}").contains("KEEPER_BOOTSTRAP_PASSWORD"),
        "{err:#}"
    );
    assert!(
        find_user(&mut db.connect(), &Username::parse("admin").unwrap())
            .unwrap()
            .is_none()
    );
}

/// The SQLite file and every file beside it (a `-wal` or `-shm` appears when a file is switched
/// to WAL), each as its size and SHA-256: equal maps mean byte-for-byte equal files.
fn files_beside(path: &std::path::Path) -> BTreeMap<String, (usize, String)> {
    std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let bytes = std::fs::read(entry.path()).unwrap();
            (
                entry.file_name().to_string_lossy().into_owned(),
                (bytes.len(), hex::encode(Sha256::digest(&bytes))),
            )
        })
        .collect()
}

fn sqlite_path(db: &TestDatabase) -> std::path::PathBuf {
    db.url.strip_prefix("sqlite://").unwrap().into()
}

/// The tables of the PostgreSQL test database's schema.
fn postgres_tables(db: &TestDatabase) -> Vec<String> {
    #[derive(diesel::QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        table_name: String,
    }
    let mut conn = diesel::PgConnection::establish(&db.url).unwrap();
    let names: Vec<Name> = diesel::sql_query(
        "SELECT table_name::text AS table_name FROM information_schema.tables
          WHERE table_schema = current_schema() ORDER BY table_name",
    )
    .load(&mut conn)
    .unwrap();
    names.into_iter().map(|name| name.table_name).collect()
}

fn a_database_that_is_not_keepers_is_refused_and_left_unchanged(backend: TestBackend) {
    let db = TestDatabase::new(backend);
    let create = "CREATE TABLE someone_elses (id INTEGER, note TEXT)";
    let insert = "INSERT INTO someone_elses VALUES (1, 'theirs')";
    match backend {
        TestBackend::Sqlite => {
            // Written the way another program would: no keeper settings on the connection.
            let mut conn =
                diesel::SqliteConnection::establish(sqlite_path(&db).to_str().unwrap()).unwrap();
            diesel::sql_query(create).execute(&mut conn).unwrap();
            diesel::sql_query(insert).execute(&mut conn).unwrap();
        }
        TestBackend::Postgres => {
            let mut conn = diesel::PgConnection::establish(&db.url).unwrap();
            diesel::sql_query(create).execute(&mut conn).unwrap();
            diesel::sql_query(insert).execute(&mut conn).unwrap();
        }
    }
    let before_files = (backend == TestBackend::Sqlite).then(|| files_beside(&sqlite_path(&db)));
    let before_tables = (backend == TestBackend::Postgres).then(|| postgres_tables(&db));
    for auto_migrate in ["false", "true"] {
        let config = db.config(&[("KEEPER_AUTO_MIGRATE", auto_migrate)]);
        let err = format!("{:#}", keeper::startup::prepare(&config).err().unwrap());
        assert!(err.contains("no keeper migration history"), "{err}");
    }
    match backend {
        TestBackend::Sqlite => {
            assert_eq!(files_beside(&sqlite_path(&db)), before_files.unwrap());
        }
        TestBackend::Postgres => {
            assert_eq!(postgres_tables(&db), before_tables.unwrap());
            assert_eq!(postgres_tables(&db), ["someone_elses"]);
        }
    }
}

#[test]
fn a_file_that_is_not_a_database_is_refused_and_left_unchanged() {
    let db = TestDatabase::new(TestBackend::Sqlite);
    let path = sqlite_path(&db);
    let noise: Vec<u8> = (0u32..16_384)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&path, &noise).unwrap();
    let before = files_beside(&path);
    let err = format!(
        "{:#}",
        keeper::startup::prepare(&db.config(&[])).err().unwrap()
    );
    assert!(err.contains("not a database"), "{err}");
    assert_eq!(files_beside(&path), before);
}

#[test]
fn an_empty_sqlite_file_is_a_first_start() {
    let db = TestDatabase::new(TestBackend::Sqlite);
    std::fs::write(sqlite_path(&db), b"").unwrap();
    keeper::startup::prepare(&db.config(&[])).unwrap();
    assert!(
        find_user(&mut db.connect(), &Username::parse("nobody").unwrap())
            .unwrap()
            .is_none()
    );
}

on_both_backends!(
    the_generated_signing_key_survives_restarts,
    the_bootstrap_admin_is_created_once,
    a_weak_bootstrap_password_stops_start_up,
    a_database_that_is_not_keepers_is_refused_and_left_unchanged,
);
