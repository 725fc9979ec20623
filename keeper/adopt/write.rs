//! Writing a [`Plan`] into keeper's database, in one transaction: refused unless the database is
//! empty, rows inserted with their ids, id sequences moved past them, and the operations the
//! import needs queued with it (the repairs' rebuilds, and a catalogue record of every product,
//! build and edition, so that the bucket becomes a second record of the adopted catalogue).

use anyhow::{bail, Context};
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel::{sql_query, QueryableByName};

use crate::adopt::plan::Plan;
use crate::db::builds::find_build;
use crate::db::editions::find_edition_row;
use crate::db::organizations::DEFAULT_ORGANIZATION;
use crate::db::products::find_product_by_id;
use crate::db::rows::{set_highest_id, write_rows};
use crate::db::schema::organizations;
use crate::db::DbConnection;
use crate::ops::records::{self, Subject};
use crate::with_connection;

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn count(conn: &mut DbConnection, sql: &str) -> anyhow::Result<i64> {
    let found: Count = with_connection!(conn, c => sql_query(sql).get_result(c))?;
    Ok(found.n)
}

/// Refuses a database that holds anything but what `keeper db upgrade` creates (the schema and
/// its `default` organization).
pub fn refuse_non_empty(conn: &mut DbConnection) -> anyhow::Result<()> {
    let mut held = Vec::new();
    for table in [
        "users",
        "products",
        "builds",
        "editions",
        "api_tokens",
        "operations",
    ] {
        let n = count(conn, &format!("SELECT count(*) AS n FROM {table}"))?;
        if n > 0 {
            held.push(format!("{n} {table}"));
        }
    }
    let organizations = count(
        conn,
        &format!("SELECT count(*) AS n FROM organizations WHERE slug <> '{DEFAULT_ORGANIZATION}'"),
    )?;
    if organizations > 0 {
        held.push(format!("{organizations} organizations"));
    }
    if !held.is_empty() {
        bail!(
            "keeper's database already holds {}: adopt imports only into an empty database, so \
             that no id, slug or surrogate key of the original meets one of keeper's. Point \
             KEEPER_DATABASE_URL at a new database (keeper db upgrade creates its schema) and \
             run adopt again",
            held.join(", ")
        );
    }
    Ok(())
}

/// The id of the target's `default` organization.
pub fn default_organization_id(conn: &mut DbConnection) -> anyhow::Result<i64> {
    with_connection!(conn, c => organizations::table
        .filter(organizations::slug.eq(DEFAULT_ORGANIZATION))
        .select(organizations::id)
        .first::<i64>(c))
    .context(
        "keeper's database has no default organization: run keeper db upgrade on a new database",
    )
}

/// What the import queued.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Queued {
    pub rebuilds: usize,
    pub records: usize,
    /// One render of each product's dashboards and version lists.
    pub dashboards: usize,
}

/// Writes `plan` in one transaction: all of it or nothing.
pub fn write(conn: &mut DbConnection, plan: &Plan) -> anyhow::Result<Queued> {
    crate::db::operations::with_cause("keeper adopt", || write_all(conn, plan))
}

fn write_all(conn: &mut DbConnection, plan: &Plan) -> anyhow::Result<Queued> {
    conn.write_transaction(|conn| -> anyhow::Result<Queued> {
        refuse_non_empty(conn)?;
        let default_id = default_organization_id(conn)?;
        if !plan.organizations.is_empty() {
            let source_has_default = plan.organizations.iter().any(|row| {
                row.get("slug").and_then(|s| s.as_str()) == Some(DEFAULT_ORGANIZATION)
            });
            let highest = plan
                .organizations
                .iter()
                .filter_map(|row| row.get("id").and_then(|id| id.as_i64()))
                .max()
                .unwrap_or(0);
            let clashes = plan
                .organizations
                .iter()
                .any(|row| row.get("id").and_then(|id| id.as_i64()) == Some(default_id));
            if source_has_default || clashes {
                // The original's own rows win; keeper's empty default makes way (or moves to a
                // free id when the original has no `default`).
                with_connection!(conn, c => diesel::delete(organizations::table.find(default_id)).execute(c))?;
            }
            write_rows(conn, "organizations", &plan.organizations)
                .context("importing the organizations")?;
            if !source_has_default && clashes {
                with_connection!(conn, c => diesel::sql_query(format!(
                    "INSERT INTO organizations (id, slug, title, layout, path_prefix, store_kind, bucket_name) \
                     VALUES ({}, '{DEFAULT_ORGANIZATION}', 'Default organization', 'path', '/docs', 'local', 'keeper')",
                    plan.default_organization_id
                ))
                .execute(c))?;
            }
            set_highest_id(conn, "organizations", highest.max(plan.default_organization_id))?;
        }
        if let Some(default) = &plan.default_organization {
            with_connection!(conn, c => diesel::update(organizations::table.find(default_id))
                .set((
                    organizations::layout.eq("subdomain"),
                    organizations::root_domain.eq(Some(default.root_domain.as_str())),
                    organizations::path_prefix.eq(""),
                    organizations::bucket_name.eq(default.bucket_name.as_str()),
                ))
                .execute(c))?;
        }
        for (table, rows) in [
            ("users", &plan.users),
            ("products", &plan.products),
            ("builds", &plan.builds),
            ("editions", &plan.editions),
        ] {
            write_rows(conn, table, rows).with_context(|| format!("importing the {table}"))?;
            let highest = rows
                .iter()
                .filter_map(|row| row.get("id").and_then(|id| id.as_i64()))
                .max()
                .unwrap_or(0);
            set_highest_id(conn, table, highest)
                .with_context(|| format!("setting the ids of {table}"))?;
        }
        let mut queued = Queued::default();
        for rebuild in &plan.rebuilds {
            let edition = find_edition_row(conn, rebuild.edition_id)?
                .context("an imported edition is missing")?;
            let build = find_build(conn, rebuild.build_id)?;
            let product = find_product_by_id(conn, edition.product_id)?;
            crate::ops::rebuild::enqueue_purging(
                conn,
                &product,
                &edition,
                &build,
                crate::domain::HistoryReason::Adopted,
                rebuild.also_purge.clone(),
            )?;
            queued.rebuilds += 1;
        }
        let mut children: std::collections::HashMap<i64, Vec<Subject>> = Default::default();
        for (rows, subject) in [
            (&plan.builds, Subject::Build as fn(i64) -> Subject),
            (&plan.editions, Subject::Edition as fn(i64) -> Subject),
        ] {
            for row in rows.iter() {
                if let (Some(product), Some(id)) = (
                    row.get("product_id").and_then(|p| p.as_i64()),
                    row.get("id").and_then(|c| c.as_i64()),
                ) {
                    children.entry(product).or_default().push(subject(id));
                }
            }
        }
        for row in &plan.products {
            let Some(id) = row.get("id").and_then(|id| id.as_i64()) else {
                continue;
            };
            let product = find_product_by_id(conn, id)?;
            for subject in std::iter::once(Subject::Product).chain(children.remove(&id).unwrap_or_default()) {
                records::enqueue(conn, &product, subject)?;
                queued.records += 1;
            }
            crate::ops::dashboard::enqueue(conn, &product)?;
            queued.dashboards += 1;
        }
        Ok(queued)
    })
}
