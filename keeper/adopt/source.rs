//! Reading an LTD Keeper database without writing to it: SQLite is opened read-only
//! (`mode=ro`, so not even a journal is created), PostgreSQL in read-only transactions.

use std::collections::BTreeSet;

use anyhow::{bail, Context};
use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::sql_types::Text;
use diesel::sqlite::SqliteConnection;
use diesel::{sql_query, Connection, QueryableByName, RunQueryDsl};
use secrecy::{ExposeSecret, SecretString};

use crate::adopt::revision::{self, Detection, Layout, Revision};
use crate::db::connection::DbConnection;
use crate::db::rows::{columns, read_rows, Row};

/// Where the original's database is: a PostgreSQL URL (`postgresql+psycopg2://` as the
/// original's `LTD_KEEPER_DB_URL` writes it is accepted) or `sqlite://<path>`.
#[derive(Clone)]
pub enum SourceUrl {
    Postgres(SecretString),
    Sqlite(std::path::PathBuf),
}

impl SourceUrl {
    pub fn parse(raw: &str) -> anyhow::Result<Self> {
        let raw = raw.trim();
        let (scheme, rest) = raw
            .split_once("://")
            .with_context(|| "--from must be a URL: postgresql://... or sqlite://<path>")?;
        let engine = scheme.split('+').next().unwrap_or(scheme);
        match engine {
            "postgres" | "postgresql" => {
                let url = format!("postgresql://{rest}");
                url::Url::parse(&url).context("--from is not a valid PostgreSQL URL")?;
                Ok(Self::Postgres(SecretString::from(url)))
            }
            "sqlite" if !rest.is_empty() => Ok(Self::Sqlite(rest.into())),
            "sqlite" => bail!("a sqlite:// URL needs the database file's path, e.g. sqlite:///srv/ltd-keeper.sqlite3"),
            other => bail!("--from must be a PostgreSQL or SQLite URL, not {other}://"),
        }
    }

    /// The URL without a password, for messages.
    pub fn redacted(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite://{}", path.display()),
            Self::Postgres(url) => crate::config::DatabaseUrl::Postgres(url.clone()).redacted(),
        }
    }

    /// Whether this names the same database as keeper's own `target`.
    pub fn is_same_as(&self, target: &crate::config::DatabaseUrl) -> bool {
        match (self, target) {
            (Self::Sqlite(path), crate::config::DatabaseUrl::Sqlite(own)) => {
                let canonical = |p: &std::path::Path| std::fs::canonicalize(p).ok();
                canonical(path).is_some() && canonical(path) == canonical(std::path::Path::new(own))
            }
            (Self::Postgres(url), crate::config::DatabaseUrl::Postgres(own)) => {
                let parse = |u: &str| url::Url::parse(u).ok();
                let key = |u: Option<url::Url>| {
                    u.map(|u| {
                        (
                            u.host_str().map(str::to_owned),
                            u.port(),
                            u.path().to_owned(),
                        )
                    })
                };
                key(parse(url.expose_secret())) == key(parse(own.expose_secret()))
            }
            _ => false,
        }
    }
}

/// What a path may not hold as it is in an SQLite `file:` URI.
const URI_PATH: &percent_encoding::AsciiSet = &percent_encoding::AsciiSet::EMPTY
    .add(b'%')
    .add(b'?')
    .add(b'#');

/// A read-only connection to the original's database.
pub fn open(url: &SourceUrl) -> anyhow::Result<DbConnection> {
    match url {
        SourceUrl::Postgres(secret) => {
            let mut conn = PgConnection::establish(secret.expose_secret())
                .with_context(|| format!("connecting to {}", url.redacted()))?;
            conn.batch_execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
                .context("making the connection read-only")?;
            Ok(DbConnection::Postgres(conn))
        }
        SourceUrl::Sqlite(path) => {
            if !path.is_file() {
                bail!("there is no SQLite database at {}", path.display());
            }
            let absolute = std::fs::canonicalize(path)
                .with_context(|| format!("locating {}", path.display()))?;
            let encoded =
                percent_encoding::utf8_percent_encode(&absolute.to_string_lossy(), URI_PATH)
                    .to_string();
            let conn = SqliteConnection::establish(&format!("file:{encoded}?mode=ro"))
                .with_context(|| format!("opening {} read-only", path.display()))?;
            Ok(DbConnection::Sqlite(conn))
        }
    }
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

fn table_names(conn: &mut DbConnection) -> anyhow::Result<BTreeSet<String>> {
    let names: Vec<Name> = match conn {
        DbConnection::Postgres(c) => sql_query(
            "SELECT table_name::text AS name FROM information_schema.tables \
             WHERE table_schema = current_schema()",
        )
        .load(c)?,
        DbConnection::Sqlite(c) => {
            sql_query("SELECT name FROM sqlite_master WHERE type = 'table'").load(c)?
        }
    };
    Ok(names.into_iter().map(|n| n.name).collect())
}

/// The tables and columns that identify a revision.
pub fn layout(conn: &mut DbConnection) -> anyhow::Result<(Layout, BTreeSet<String>)> {
    let tables = table_names(conn).context("listing the tables")?;
    let mut layout = Layout::new();
    for table in revision::TABLES {
        if tables.contains(*table) {
            let names = columns(conn, table)?
                .into_iter()
                .map(|column| column.name)
                .collect();
            layout.insert((*table).to_owned(), names);
        }
    }
    Ok((layout, tables))
}

/// What adoption reads: the revision and every row it carries over.
pub struct SourceCatalog {
    pub revision: Revision,
    pub detection: Detection,
    pub users: Vec<Row>,
    pub organizations: Vec<Row>,
    pub products: Vec<Row>,
    pub builds: Vec<Row>,
    pub editions: Vec<Row>,
}

/// Identifies the database's revision and reads its rows, ids in order.
pub fn read(conn: &mut DbConnection) -> anyhow::Result<SourceCatalog> {
    let (layout, tables) = layout(conn)?;
    let tags = if tables.contains("alembic_version") {
        let found: Vec<Name> = crate::with_connection!(conn, c => sql_query(
            "SELECT CAST(version_num AS TEXT) AS name FROM alembic_version"
        )
        .load(c))
        .context("reading alembic_version")?;
        Some(found.into_iter().map(|n| n.name).collect::<Vec<_>>())
    } else {
        None
    };
    let (revision, detection) = revision::detect(tags.as_deref(), &layout)?;
    let mut rows = |table: &str| -> anyhow::Result<Vec<Row>> {
        if !layout.contains_key(table) {
            return Ok(Vec::new());
        }
        read_rows(conn, table, "id").with_context(|| format!("reading the {table} table"))
    };
    Ok(SourceCatalog {
        revision,
        detection,
        users: rows("users")?,
        organizations: rows("organizations")?,
        products: rows("products")?,
        builds: rows("builds")?,
        editions: rows("editions")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_urls_take_the_originals_spellings() {
        assert!(matches!(
            SourceUrl::parse("postgresql+psycopg2://keeper:pw@db/keeper").unwrap(),
            SourceUrl::Postgres(_)
        ));
        let redacted = SourceUrl::parse("postgresql+psycopg2://keeper:pw@db/keeper")
            .unwrap()
            .redacted();
        assert!(!redacted.contains("pw"), "{redacted}");
        match SourceUrl::parse("sqlite:////srv/ltd.sqlite3").unwrap() {
            SourceUrl::Sqlite(path) => assert_eq!(path, std::path::Path::new("//srv/ltd.sqlite3")),
            SourceUrl::Postgres(_) => panic!("sqlite"),
        }
        assert!(SourceUrl::parse("mysql://db/keeper").is_err());
        assert!(SourceUrl::parse("sqlite://").is_err());
        assert!(SourceUrl::parse("/srv/ltd.sqlite3").is_err());
    }
}
