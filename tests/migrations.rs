//! Migrations on both backends: up -> down -> up gives the same schema, every step's `down` undoes
//! exactly its `up`, upgrades from every earlier version keep data, and the start-up guard refuses
//! databases it must not touch.

mod common;

use common::{TestBackend, TestDatabase};
use diesel::sql_types::Text;
use diesel::{sql_query, QueryableByName, RunQueryDsl};
use keeper::db::migrations::{self, known_migrations, GuardOutcome};
use keeper::db::{Backend, DbConnection};

#[derive(QueryableByName)]
struct Line {
    #[diesel(sql_type = Text)]
    line: String,
}

/// Every table, column, constraint and index of keeper's schema, one per line, sorted.
fn dump_schema(conn: &mut DbConnection) -> Vec<String> {
    let lines: Vec<Line> = match conn {
        DbConnection::Postgres(c) => sql_query(
            "SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' ' ||
                    is_nullable || ' ' || coalesce(column_default, '-') || ' ' ||
                    coalesce(is_identity, '-') AS line
               FROM information_schema.columns
              WHERE table_schema = current_schema() AND table_name <> '__diesel_schema_migrations'
             UNION ALL
             SELECT 'constraint ' || rel.relname || '.' || con.conname || ' ' ||
                    pg_get_constraintdef(con.oid) AS line
               FROM pg_constraint con JOIN pg_class rel ON rel.oid = con.conrelid
               JOIN pg_namespace ns ON ns.oid = rel.relnamespace
              WHERE ns.nspname = current_schema() AND rel.relname <> '__diesel_schema_migrations'
             UNION ALL
             SELECT 'index ' || indexdef AS line FROM pg_indexes
              WHERE schemaname = current_schema() AND tablename <> '__diesel_schema_migrations'
             ORDER BY line",
        )
        .load(c),
        DbConnection::Sqlite(c) => sql_query(
            "SELECT type || ' ' || name || ' ' || coalesce(sql, '-') AS line FROM sqlite_master
              WHERE name NOT LIKE 'sqlite_%' AND name NOT LIKE '__diesel_schema_migrations%'
              ORDER BY line",
        )
        .load(c),
    }
    .expect("dump the schema");
    lines.into_iter().map(|l| l.line).collect()
}

fn fresh_at_head(backend: TestBackend) -> (TestDatabase, DbConnection) {
    let db = TestDatabase::new(backend);
    let mut conn = db.connect();
    let outcome = migrations::guard(&mut conn, false).expect("guard on an empty database");
    assert!(
        matches!(outcome, GuardOutcome::Created { .. }),
        "{outcome:?}"
    );
    (db, conn)
}

fn migration_count(conn: &DbConnection) -> usize {
    known_migrations(conn.backend()).unwrap().len()
}

fn up_down_up_restores_the_same_schema(backend: TestBackend) {
    let (_db, mut conn) = fresh_at_head(backend);
    let head = dump_schema(&mut conn);
    assert!(head.iter().any(|l| l.contains("operations")), "{head:#?}");
    let count = migration_count(&conn);

    let reverted = migrations::downgrade(&mut conn, count).unwrap();
    assert_eq!(reverted.len(), count);
    assert_eq!(
        dump_schema(&mut conn),
        Vec::<String>::new(),
        "down left tables behind"
    );

    migrations::upgrade(&mut conn).unwrap();
    assert_eq!(dump_schema(&mut conn), head);
}

fn each_down_undoes_exactly_its_up(backend: TestBackend) {
    let (_db, mut conn) = fresh_at_head(backend);
    let count = migration_count(&conn);
    // Walk down one step at a time, remembering each schema, then walk back up and compare.
    let mut schemas = vec![dump_schema(&mut conn)];
    for _ in 0..count {
        migrations::downgrade(&mut conn, 1).unwrap();
        schemas.push(dump_schema(&mut conn));
    }
    for window in schemas.windows(2) {
        assert_ne!(window[0], window[1], "a migration changed nothing");
    }
    for expected in schemas.iter().rev().skip(1) {
        run_one_up(&mut conn);
        assert_eq!(&dump_schema(&mut conn), expected);
    }
}

/// Applies the oldest pending migration only: upgrade all, then revert the ones past it.
fn run_one_up(conn: &mut DbConnection) {
    let status = migrations::status(conn).unwrap();
    let pending_after = status.pending().len() - 1;
    migrations::upgrade(conn).unwrap();
    migrations::downgrade(conn, pending_after).unwrap();
}

fn upgrades_from_every_earlier_version_keep_data(backend: TestBackend) {
    let count = {
        let db = TestDatabase::new(backend);
        migration_count(&db.connect())
    };
    for applied in 1..count {
        let (_db, mut conn) = fresh_at_head(backend);
        migrations::downgrade(&mut conn, count - applied).unwrap();
        // The first migration holds the catalogue; every later version must keep its rows.
        execute(
            &mut conn,
            "INSERT INTO products (organization_id, slug, title, surrogate_key)
             VALUES (1, 'pipelines', 'Pipelines', '0123456789abcdef0123456789abcdef')",
        );
        execute(
            &mut conn,
            "INSERT INTO builds (product_id, slug, git_refs, uploaded, surrogate_key)
             VALUES (1, '1', '[\"main\"]', TRUE, '1123456789abcdef0123456789abcdef')",
        );
        execute(
            &mut conn,
            "INSERT INTO editions (product_id, slug, title, build_id, kind, surrogate_key)
             VALUES (1, '__main', 'Latest', 1, 'main', '2123456789abcdef0123456789abcdef')",
        );
        let outcome = migrations::guard(&mut conn, true).unwrap();
        assert!(
            matches!(outcome, GuardOutcome::Upgraded { .. }),
            "{outcome:?}"
        );
        let rows: Vec<Line> = with_rows(
            &mut conn,
            "SELECT p.slug || '/' || b.slug || '/' || e.slug AS line
               FROM editions e JOIN builds b ON b.id = e.build_id JOIN products p ON p.id = e.product_id",
        );
        assert_eq!(rows.len(), 1, "data lost upgrading from version {applied}");
        assert_eq!(rows[0].line, "pipelines/1/__main");
    }
}

fn the_default_organization_is_created_by_migration(backend: TestBackend) {
    let (_db, mut conn) = fresh_at_head(backend);
    let rows = with_rows(
        &mut conn,
        "SELECT slug || ' ' || layout || ' ' || path_prefix || ' ' || store_kind AS line FROM organizations",
    );
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].line, "default path /docs local");
}

fn guard_refuses_a_database_ahead_of_the_binary(backend: TestBackend) {
    let (_db, mut conn) = fresh_at_head(backend);
    execute(
        &mut conn,
        "INSERT INTO __diesel_schema_migrations (version) VALUES ('29991231235959')",
    );
    let head = known_migrations(conn.backend())
        .unwrap()
        .last()
        .unwrap()
        .version
        .clone();
    for auto_migrate in [false, true] {
        let err = migrations::guard(&mut conn, auto_migrate)
            .unwrap_err()
            .to_string();
        assert!(err.contains("ahead"), "{err}");
        assert!(
            err.contains("29991231235959"),
            "the database's version is named: {err}"
        );
        assert!(err.contains(&head), "the binary's version is named: {err}");
    }
    assert!(migrations::upgrade(&mut conn).is_err());
}

fn guard_upgrades_or_refuses_a_database_behind(backend: TestBackend) {
    let (_db, mut conn) = fresh_at_head(backend);
    migrations::downgrade(&mut conn, 1).unwrap();
    match conn.backend() {
        Backend::Sqlite => {
            // The embedded default upgrades by itself.
            let outcome = migrations::guard(&mut conn, false).unwrap();
            assert!(
                matches!(outcome, GuardOutcome::Upgraded { ref applied } if applied.len() == 1)
            );
        }
        Backend::Postgres => {
            let err = migrations::guard(&mut conn, false).unwrap_err().to_string();
            assert!(err.contains("keeper db upgrade"), "{err}");
            assert!(err.contains("KEEPER_AUTO_MIGRATE"), "{err}");
            let outcome = migrations::guard(&mut conn, true).unwrap();
            assert!(
                matches!(outcome, GuardOutcome::Upgraded { ref applied } if applied.len() == 1)
            );
        }
    }
    assert_eq!(
        migrations::guard(&mut conn, false).unwrap(),
        GuardOutcome::UpToDate
    );
}

fn guard_refuses_a_database_that_is_not_keepers(backend: TestBackend) {
    let db = TestDatabase::new(backend);
    let mut conn = db.connect();
    execute(&mut conn, "CREATE TABLE someone_elses (id INTEGER)");
    let err = migrations::guard(&mut conn, true).unwrap_err().to_string();
    assert!(err.contains("no keeper migration history"), "{err}");
}

fn downgrade_refuses_more_steps_than_applied(backend: TestBackend) {
    let (_db, mut conn) = fresh_at_head(backend);
    let count = migration_count(&conn);
    let err = migrations::downgrade(&mut conn, count + 1)
        .unwrap_err()
        .to_string();
    assert!(err.contains("only"), "{err}");
    assert_eq!(migrations::status(&mut conn).unwrap().pending().len(), 0);
}

fn execute(conn: &mut DbConnection, sql: &str) {
    keeper::with_connection!(conn, c => sql_query(sql).execute(c)).expect(sql);
}

fn with_rows(conn: &mut DbConnection, sql: &str) -> Vec<Line> {
    keeper::with_connection!(conn, c => sql_query(sql).load(c)).expect(sql)
}

on_both_backends!(
    up_down_up_restores_the_same_schema,
    each_down_undoes_exactly_its_up,
    upgrades_from_every_earlier_version_keep_data,
    the_default_organization_is_created_by_migration,
    guard_refuses_a_database_ahead_of_the_binary,
    guard_upgrades_or_refuses_a_database_behind,
    guard_refuses_a_database_that_is_not_keepers,
    downgrade_refuses_more_steps_than_applied,
);
