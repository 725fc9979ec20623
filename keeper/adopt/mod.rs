//! `keeper adopt --from URL [--dry-run]`: takes over a running LTD Keeper's database (1.x or a
//! 2.0 alpha) into keeper's empty one, in one transaction, keeping every id, slug and surrogate
//! key so that every URL a client stored and every object in the bucket stays valid. Nothing is
//! copied in the bucket and nothing is written to the original's database.
//!
//! - [`revision`]: which of the original's schemas the database has;
//! - [`source`]: reading it read-only;
//! - [`plan`]: its rows as keeper's, with every repair;
//! - [`write`]: the one transaction that imports them.

pub mod plan;
pub mod revision;
pub mod source;
pub mod write;

use std::fmt::Write as _;

use anyhow::Context;
use secrecy::SecretString;

use crate::config::Config;
use crate::crypto::EncryptionKeys;
use crate::db::migrations;

use self::plan::{Plan, PlanInputs};
use self::revision::Detection;
use self::source::{SourceCatalog, SourceUrl};
use self::write::Queued;

/// What `keeper adopt` was asked.
pub struct AdoptOptions {
    pub from: String,
    pub dry_run: bool,
    /// `KEEPER_ADOPT_FERNET_KEY`: the original's `LTD_KEEPER_FERNET_KEY`.
    pub source_fernet_key: Option<SecretString>,
}

/// Runs the adoption and returns the report it prints.
pub fn run(config: &Config, options: &AdoptOptions) -> anyhow::Result<String> {
    let url = SourceUrl::parse(&options.from)?;
    if url.is_same_as(&config.database.url) {
        anyhow::bail!(
            "--from names keeper's own database (KEEPER_DATABASE_URL): adopt reads the original's \
             database and writes keeper's, which must be a different, new one"
        );
    }
    let mut source = source::open(&url)?;
    let catalog = source::read(&mut source)
        .with_context(|| format!("reading the LTD Keeper database {}", url.redacted()))?;
    drop(source);
    let keys =
        EncryptionKeys::from_config(&config.organizations).context("KEEPER_ENCRYPTION_KEYS")?;
    let database = &config.database;
    let mut target =
        crate::db::DbConnection::establish(&database.url, database.sqlite_busy_timeout)
            .with_context(|| format!("connecting to {}", database.url.redacted()))?;
    let default_organization_id = if options.dry_run {
        let status = migrations::status(&mut target)?;
        if status.table_count == 0 {
            1 // A new database: `keeper db upgrade` would create the default organization first.
        } else {
            if !status.pending().is_empty() {
                anyhow::bail!(
                    "keeper's database is not at this keeper's schema: run keeper db upgrade first"
                );
            }
            write::refuse_non_empty(&mut target)?;
            write::default_organization_id(&mut target)?
        }
    } else {
        migrations::guard(&mut target, config.database.auto_migrate)?;
        write::refuse_non_empty(&mut target)?;
        write::default_organization_id(&mut target)?
    };
    let plan = plan::plan(
        &catalog,
        &PlanInputs {
            now: crate::db::models::now(),
            default_organization_id,
            source_fernet_key: options.source_fernet_key.as_ref(),
            encryption_keys: keys.as_ref(),
        },
    )?;
    let queued = if options.dry_run {
        None
    } else {
        Some(write::write(&mut target, &plan)?)
    };
    Ok(report(&url, &catalog, &plan, queued.as_ref()))
}

/// The slugs of the products whose default edition is not `__main`.
fn products_keeping_main(plan: &Plan) -> Vec<String> {
    let text = |row: &crate::db::rows::Row, column: &str| {
        row.get(column).and_then(|v| v.as_str()).map(str::to_owned)
    };
    let products: std::collections::HashMap<i64, String> = plan
        .products
        .iter()
        .filter_map(|row| Some((row.get("id")?.as_i64()?, text(row, "slug")?)))
        .collect();
    let mut slugs: Vec<String> = plan
        .editions
        .iter()
        .filter(|row| {
            text(row, "kind").as_deref() == Some("main")
                && text(row, "slug").as_deref() != Some(crate::domain::EditionSlug::MAIN)
        })
        .filter_map(|row| products.get(&row.get("product_id")?.as_i64()?).cloned())
        .collect();
    slugs.sort();
    slugs
}

/// What adoption read, did (or would do: `queued` is `None` for a dry run) and repaired.
pub fn report(
    url: &SourceUrl,
    catalog: &SourceCatalog,
    plan: &Plan,
    queued: Option<&Queued>,
) -> String {
    let mut out = String::new();
    let revision = &catalog.revision;
    let how = match catalog.detection {
        Detection::Tagged => "named by its alembic_version",
        Detection::Recognised => {
            "recognised from its tables and columns (it has no alembic_version)"
        }
    };
    let _ = writeln!(
        out,
        "LTD Keeper database {}: revision {} ({}, {}), {how}",
        url.redacted(),
        revision.id,
        revision.change,
        revision.line
    );
    let verb = if queued.is_some() {
        "Imported"
    } else {
        "Would import"
    };
    let _ = writeln!(
        out,
        "{verb}: {} users, {} organizations, {} products, {} builds, {} editions",
        plan.users.len(),
        plan.organizations.len(),
        plan.products.len(),
        plan.builds.len(),
        plan.editions.len()
    );
    if let Some(default) = &plan.default_organization {
        let _ = writeln!(
            out,
            "The default organization takes the subdomain layout under {} (bucket {:?}): \
             products are published at https://<product>.{}, as LTD Keeper published them",
            default.root_domain, default.bucket_name, default.root_domain
        );
    }
    match queued {
        Some(queued) => {
            let _ = writeln!(
                out,
                "Queued: {} rebuilds (repairs below), {} catalogue records (the bucket's \
                 second record of the catalogue) and {} renders of the products' dashboards and \
                 version lists; a worker runs them",
                queued.rebuilds, queued.records, queued.dashboards
            );
        }
        None => {
            let _ = writeln!(
                out,
                "Would queue: {} rebuilds (repairs below) and a catalogue record of every \
                 product, build and edition",
                plan.rebuilds.len()
            );
        }
    }
    let keeping_main = products_keeping_main(plan);
    if !keeping_main.is_empty() {
        let _ = writeln!(
            out,
            "{} products keep their default edition `main` (at <product>/v/main/), as LTD Keeper \
             1.x made it; keeper's site server knows, and a CDN in front of the bucket needs \
             them listed (deploy/cdn/fastly/README.md, deploy/cdn/varnish-s3.vcl): {}",
            keeping_main.len(),
            keeping_main.join(", ")
        );
    }
    if plan.repairs.is_empty() {
        let _ = writeln!(
            out,
            "Repairs: none; every row fits keeper's schema as it is"
        );
    } else {
        let _ = writeln!(out, "Repairs ({}):", plan.repairs.len());
        for repair in &plan.repairs {
            let _ = writeln!(out, "  - {}: {}", repair.subject, repair.action);
        }
    }
    for note in &plan.notes {
        let _ = writeln!(out, "Note: {note}");
    }
    if queued.is_none() {
        let _ = writeln!(out, "Nothing was written (--dry-run).");
    } else {
        let _ = writeln!(
            out,
            "Next: start keeper (keeper serve) with the original's bucket and CDN settings \
             (KEEPER_STORAGE_*, KEEPER_FASTLY_*), then check a product with keeper verify \
             --product <slug>"
        );
    }
    out
}
