//! From the original's rows to keeper's: every id, slug and surrogate key kept, and what
//! keeper's schema forbids repaired and reported, never dropped in silence. Pure: the rows come
//! in as JSON ([`crate::db::rows`]) and go out as JSON, with the list of repairs and the
//! rebuilds the repairs need.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use anyhow::{bail, Context};
use chrono::{DateTime, NaiveDateTime};
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use crate::adopt::revision::is_v2;
use crate::adopt::source::SourceCatalog;
use crate::crypto::EncryptionKeys;
use crate::db::rows::Row;
use crate::domain::{
    edition_kind, BuildSlug, EditionKind, EditionSlug, ProductSlug, SurrogateKey, TrackingMode,
    Username,
};

/// The original's integer tracking modes (`keeper/editiontracking/trackingmodes.py`).
pub fn tracking_mode_of(code: i64) -> Option<TrackingMode> {
    Some(match code {
        1 => TrackingMode::GitRefs,
        2 => TrackingMode::LsstDoc,
        3 => TrackingMode::EupsMajorRelease,
        4 => TrackingMode::EupsWeeklyRelease,
        5 => TrackingMode::EupsDailyRelease,
        6 => TrackingMode::Manual,
        7 => TrackingMode::GitRef,
        _ => return None,
    })
}

/// The original's integer edition kinds (2.0, `EditionKind` in `keeper/models.py`).
fn edition_kind_of(code: i64) -> Option<EditionKind> {
    Some(match code {
        1 => EditionKind::Main,
        2 => EditionKind::Release,
        3 => EditionKind::Draft,
        4 => EditionKind::Major,
        5 => EditionKind::Minor,
        _ => return None,
    })
}

/// One thing that was changed on the way in, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    /// `edition 12 (bench-p01/v1)`.
    pub subject: String,
    pub action: String,
}

/// A rebuild a repair needs, queued with the import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebuild {
    pub edition_id: i64,
    pub build_id: i64,
    /// Keys to purge besides the edition's and the product's.
    pub also_purge: Vec<String>,
    pub reason: &'static str,
}

/// How keeper's `default` organization is set for a 1.x database (which has none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultOrganization {
    pub root_domain: String,
    pub bucket_name: String,
}

/// Everything the import writes.
#[derive(Debug, Default)]
pub struct Plan {
    /// 2.0 databases: the organizations, as keeper rows (ids kept).
    pub organizations: Vec<Row>,
    /// 1.x databases: the settings the default organization takes.
    pub default_organization: Option<DefaultOrganization>,
    /// The id keeper's `default` organization has after the import: the original's `default`
    /// (2.0), else keeper's own, moved past the original's ids if one of them is its id.
    pub default_organization_id: i64,
    pub users: Vec<Row>,
    pub products: Vec<Row>,
    pub builds: Vec<Row>,
    pub editions: Vec<Row>,
    pub rebuilds: Vec<Rebuild>,
    pub repairs: Vec<Repair>,
    /// Facts worth knowing that change nothing (how datetimes were read, for instance).
    pub notes: Vec<String>,
}

/// What planning needs besides the rows.
pub struct PlanInputs<'a> {
    /// When the import runs (UTC): the date of what the original never dated.
    pub now: NaiveDateTime,
    /// The id of keeper's `default` organization in the target (1.x products go there).
    pub default_organization_id: i64,
    /// The original's `LTD_KEEPER_FERNET_KEY`, for a 2.0 database's secrets.
    pub source_fernet_key: Option<&'a secrecy::SecretString>,
    /// keeper's `KEEPER_ENCRYPTION_KEYS`, to store those secrets again.
    pub encryption_keys: Option<&'a EncryptionKeys>,
}

fn text<'r>(row: &'r Row, column: &str) -> Option<&'r str> {
    row.get(column).and_then(Value::as_str)
}

fn integer(row: &Row, column: &str) -> Option<i64> {
    match row.get(column)? {
        Value::Number(number) => number.as_i64(),
        Value::String(text) => text.trim().parse().ok(),
        Value::Bool(flag) => Some(i64::from(*flag)),
        _ => None,
    }
}

fn flag(row: &Row, column: &str) -> Option<bool> {
    match row.get(column)? {
        Value::Bool(flag) => Some(*flag),
        Value::Number(number) => number.as_i64().map(|n| n != 0),
        Value::String(text) => match text.trim().to_ascii_lowercase().as_str() {
            "1" | "t" | "true" => Some(true),
            "0" | "f" | "false" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn id_of(row: &Row) -> anyhow::Result<i64> {
    integer(row, "id").context("a row has no integer id")
}

/// A datetime as the original stored it: naive (server-local time, which keeper reads as UTC)
/// or with an offset (converted to UTC). `Some((value, naive))`.
pub fn parse_datetime(raw: &str) -> Option<(NaiveDateTime, bool)> {
    let raw = raw.trim();
    let with_t = raw.replacen(' ', "T", 1);
    if let Ok(aware) = DateTime::parse_from_rfc3339(&with_t) {
        return Some((aware.naive_utc(), false));
    }
    for zone in ["%#z", "%z", "%:z"] {
        if let Ok(aware) = DateTime::parse_from_str(&with_t, &format!("%Y-%m-%dT%H:%M:%S%.f{zone}"))
        {
            return Some((aware.naive_utc(), false));
        }
    }
    NaiveDateTime::parse_from_str(&with_t, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|naive| (naive, true))
}

fn stored(value: NaiveDateTime) -> Value {
    Value::String(value.format("%Y-%m-%dT%H:%M:%S%.6f").to_string())
}

/// A list of git refs stored as the original's JSON text.
fn ref_list(row: &Row, column: &str) -> Option<Vec<String>> {
    match row.get(column)? {
        Value::String(text) => serde_json::from_str::<Vec<String>>(text).ok(),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned))
            .collect(),
        _ => None,
    }
}

/// Makes a name keeper takes out of `raw`: ASCII letters and digits and the characters of
/// `punctuation` are kept, anything else becomes `-`, at most `max` characters; `fallback` when
/// nothing but dots and hyphens is left (`.` and `..` are never names).
fn takeable(raw: &str, punctuation: &str, max: usize, fallback: &str) -> String {
    let cleaned: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || punctuation.contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(max)
        .collect();
    if cleaned.trim_matches(['.', '-']).is_empty() {
        fallback.to_owned()
    } else {
        cleaned
    }
}

/// A path slug (an edition's or a build's) made from `raw`.
fn path_slug(raw: &str, fallback: &str) -> String {
    takeable(raw, "._-", 200, fallback)
}

/// `base`, or `base-<n>` for the smallest `n` that `taken` does not hold.
fn unique(base: String, taken: &HashSet<String>, id: i64) -> String {
    if !taken.contains(&base) {
        return base;
    }
    let with_id = format!("{base}-{id}");
    if !taken.contains(&with_id) {
        return with_id;
    }
    (2..)
        .map(|n| format!("{with_id}-{n}"))
        .find(|candidate| !taken.contains(candidate))
        .unwrap_or(with_id)
}

/// Counts the datetimes read without a time zone, per table.
#[derive(Default)]
struct Clock {
    naive: BTreeMap<&'static str, usize>,
    unreadable: Vec<Repair>,
}

impl Clock {
    fn read(
        &mut self,
        table: &'static str,
        subject: &str,
        row: &Row,
        column: &str,
    ) -> Option<NaiveDateTime> {
        let raw = text(row, column)?;
        match parse_datetime(raw) {
            Some((value, naive)) => {
                if naive {
                    *self.naive.entry(table).or_default() += 1;
                }
                Some(value)
            }
            None => {
                self.unreadable.push(Repair {
                    subject: subject.to_owned(),
                    action: format!("{column} {raw:?} is not a date: left empty"),
                });
                None
            }
        }
    }
}

/// Plans the import of `source`.
pub fn plan(source: &SourceCatalog, inputs: &PlanInputs) -> anyhow::Result<Plan> {
    let mut plan = Plan::default();
    let mut clock = Clock::default();
    let v2 = is_v2(&source.revision);

    plan_users(source, inputs, &mut plan)?;
    let organization_domains = if v2 {
        plan_organizations(source, inputs, &mut plan)?
    } else {
        HashMap::new()
    };
    let source_ids: Vec<i64> = plan
        .organizations
        .iter()
        .filter_map(|row| integer(row, "id"))
        .collect();
    let source_default = plan
        .organizations
        .iter()
        .find(|row| text(row, "slug") == Some(crate::db::organizations::DEFAULT_ORGANIZATION));
    plan.default_organization_id = match source_default.and_then(|row| integer(row, "id")) {
        Some(id) => id,
        None if source_ids.contains(&inputs.default_organization_id) => {
            source_ids.iter().max().copied().unwrap_or(0) + 1
        }
        None => inputs.default_organization_id,
    };

    // Products.
    let mut keys_taken: HashSet<String> = HashSet::new();
    let mut product_slugs: HashMap<i64, String> = HashMap::new();
    let organization_ids: HashSet<i64> = plan
        .organizations
        .iter()
        .filter_map(|row| integer(row, "id"))
        .collect();
    let mut first_dates: HashMap<i64, NaiveDateTime> = HashMap::new();
    for row in source.builds.iter().chain(&source.editions) {
        if let (Some(product), Some(raw)) = (integer(row, "product_id"), text(row, "date_created"))
        {
            if let Some((date, _)) = parse_datetime(raw) {
                let first = first_dates.entry(product).or_insert(date);
                *first = (*first).min(date);
            }
        }
    }
    let mut domains: BTreeMap<(String, String), usize> = BTreeMap::new();
    for row in &source.products {
        let id = id_of(row)?;
        let raw_slug = text(row, "slug").unwrap_or_default();
        let slug = ProductSlug::parse(raw_slug).map_err(|err| {
            anyhow::anyhow!(
                "product {id} has the slug {raw_slug:?}, which keeper cannot take ({err}). A \
                 product's slug is the first part of every one of its URLs and bucket keys, so \
                 adopt does not change it for you: rename the product in LTD Keeper (and move \
                 its objects), then adopt again"
            )
        })?;
        let subject = format!("product {id} ({slug})");
        let organization_id = if v2 {
            match integer(row, "organization_id") {
                Some(org) if organization_ids.contains(&org) => org,
                other => {
                    plan.repairs.push(Repair {
                        subject: subject.clone(),
                        action: format!(
                            "belonged to organization {other:?}, which does not exist: moved to \
                             the default organization"
                        ),
                    });
                    plan.default_organization_id
                }
            }
        } else {
            plan.default_organization_id
        };
        let surrogate_key = key_or_new(
            text(row, "surrogate_key"),
            &mut keys_taken,
            &subject,
            "the product's dashboards and listings are purged by the new key from now on",
            &mut plan.repairs,
        );
        let root_domain = text(row, "root_domain").unwrap_or_default().to_owned();
        let bucket_name = text(row, "bucket_name").unwrap_or_default().to_owned();
        *domains
            .entry((root_domain.clone(), bucket_name.clone()))
            .or_default() += 1;
        let root_fastly_domain = text(row, "root_fastly_domain")
            .filter(|domain| !domain.is_empty())
            .map(str::to_owned)
            .or_else(|| organization_domains.get(&organization_id).cloned())
            .unwrap_or_default();
        let date_created = first_dates.get(&id).copied().unwrap_or(inputs.now);
        product_slugs.insert(id, slug.as_str().to_owned());
        plan.products.push(row_of(json!({
            "id": id,
            "organization_id": organization_id,
            "slug": slug.as_str(),
            "title": text(row, "title").unwrap_or_default(),
            "doc_repo": text(row, "doc_repo").unwrap_or_default(),
            "root_domain": root_domain,
            "root_fastly_domain": root_fastly_domain,
            "bucket_name": bucket_name,
            "surrogate_key": surrogate_key,
            "date_created": stored(date_created),
        })));
    }
    if !source.products.is_empty() {
        plan.notes.push(
            "LTD Keeper keeps no creation date for products: each product's is the date of its \
             first build or edition"
                .to_owned(),
        );
    }
    if !v2 {
        // 1.x publishes every product at https://<slug>.<root_domain>: the default organization
        // takes the subdomain layout with the domain most products name.
        if let Some(((root_domain, bucket_name), _)) =
            domains.iter().max_by_key(|(_, count)| **count)
        {
            for row in &plan.products {
                if text(row, "root_domain") != Some(root_domain.as_str()) {
                    plan.repairs.push(Repair {
                        subject: format!(
                            "product {} ({})",
                            integer(row, "id").unwrap_or_default(),
                            text(row, "slug").unwrap_or_default()
                        ),
                        action: format!(
                            "was published under {:?}, the others under {root_domain:?}: keeper \
                             publishes it under {root_domain:?}; to keep its old address, create \
                             an organization for that domain (keeper org create) and move it there",
                            text(row, "root_domain").unwrap_or_default()
                        ),
                    });
                }
            }
            plan.default_organization = Some(DefaultOrganization {
                root_domain: root_domain.clone(),
                bucket_name: bucket_name.clone(),
            });
        }
    }

    let build_map = plan_builds(
        source,
        inputs,
        &product_slugs,
        &mut keys_taken,
        &mut clock,
        &mut plan,
    )?;
    plan_editions(
        source,
        inputs,
        &product_slugs,
        &build_map,
        &mut keys_taken,
        &mut clock,
        &mut plan,
    )?;

    plan.repairs.extend(clock.unreadable);
    for (table, count) in clock.naive {
        plan.notes.push(format!(
            "{count} datetimes of {table} carry no time zone (LTD Keeper writes the server's \
             local time): read as UTC; if the original's server ran in another zone, they are \
             off by its offset"
        ));
    }
    Ok(plan)
}

fn row_of(value: Value) -> Row {
    match value {
        Value::Object(map) => map,
        _ => Row::new(),
    }
}

/// `raw` if it is a valid surrogate key no other row has; else a new key, with a repair.
fn key_or_new(
    raw: Option<&str>,
    taken: &mut HashSet<String>,
    subject: &str,
    consequence: &str,
    repairs: &mut Vec<Repair>,
) -> String {
    let problem = match raw.map(SurrogateKey::parse) {
        Some(Ok(key)) if !taken.contains(key.as_str()) => {
            taken.insert(key.as_str().to_owned());
            return key.as_str().to_owned();
        }
        Some(Ok(key)) => format!("shared its surrogate key {key} with another row"),
        Some(Err(_)) => format!(
            "had the malformed surrogate key {:?}",
            raw.unwrap_or_default()
        ),
        None => "had no surrogate key".to_owned(),
    };
    let fresh = SurrogateKey::generate();
    taken.insert(fresh.as_str().to_owned());
    repairs.push(Repair {
        subject: subject.to_owned(),
        action: format!("{problem}: given {fresh}; {consequence}"),
    });
    fresh.as_str().to_owned()
}

fn plan_users(source: &SourceCatalog, inputs: &PlanInputs, plan: &mut Plan) -> anyhow::Result<()> {
    let mut taken = HashSet::new();
    for row in &source.users {
        let id = id_of(row)?;
        let raw = text(row, "username").unwrap_or_default();
        let username = match Username::parse(raw) {
            Ok(name) if !taken.contains(name.as_str()) => name.as_str().to_owned(),
            parsed => {
                let base = takeable(raw, "-_.@+", 50, &format!("user-{id}"));
                let name = unique(base, &taken, id);
                plan.repairs.push(Repair {
                    subject: format!("user {id} ({raw:?})"),
                    action: format!(
                        "{}: renamed {name}; they log in as {name} from now on",
                        if parsed.is_ok() {
                            "shared its name with another user"
                        } else {
                            "its name is not one keeper takes (1-64 of A-Z a-z 0-9 - _ . @ +)"
                        }
                    ),
                });
                name
            }
        };
        taken.insert(username.clone());
        let password_hash = match text(row, "password_hash").filter(|hash| !hash.is_empty()) {
            Some(hash) => {
                if crate::auth::werkzeug::WerkzeugHash::parse(hash).is_none()
                    && !hash.starts_with("$argon2")
                {
                    plan.repairs.push(Repair {
                        subject: format!("user {id} ({username})"),
                        action: "has a password hash keeper cannot check (not werkzeug's \
                                 pbkdf2:sha256/sha512): kept, but the user cannot log in until \
                                 an administrator sets a new password (PATCH /users/<name>)"
                            .to_owned(),
                    });
                }
                hash.to_owned()
            }
            None => {
                plan.repairs.push(Repair {
                    subject: format!("user {id} ({username})"),
                    action: "had no password: cannot log in until an administrator sets one \
                             (PATCH /users/<name>)"
                        .to_owned(),
                });
                "!".to_owned()
            }
        };
        let raw_permissions = integer(row, "permissions").unwrap_or(0);
        let permissions = raw_permissions & 31;
        if permissions != raw_permissions {
            plan.repairs.push(Repair {
                subject: format!("user {id} ({username})"),
                action: format!(
                    "had the permission bits {raw_permissions}, beyond the five keeper knows: \
                     kept {permissions}"
                ),
            });
        }
        plan.users.push(row_of(json!({
            "id": id,
            "username": username,
            "password_hash": password_hash,
            "permissions": permissions,
            "date_created": stored(inputs.now),
        })));
    }
    Ok(())
}

/// Organizations of a 2.0 database; returns each one's Fastly domain by id.
fn plan_organizations(
    source: &SourceCatalog,
    inputs: &PlanInputs,
    plan: &mut Plan,
) -> anyhow::Result<HashMap<i64, String>> {
    let mut fastly_domains = HashMap::new();
    let reencrypt = |id: i64, column: &str, row: &Row| -> anyhow::Result<Option<String>> {
        let Some(raw) = text(row, column).filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        // LargeBinary (bytea, or a SQLite blob read as PostgreSQL writes bytea) or text.
        let token = match raw.strip_prefix("\\x") {
            Some(hex_text) => {
                String::from_utf8(hex::decode(hex_text).context("an encrypted secret is not hex")?)
                    .context("an encrypted secret is not text")?
            }
            None => raw.to_owned(),
        };
        let key = inputs.source_fernet_key.with_context(|| {
            format!(
                "organization {id} has an encrypted {column}: set KEEPER_ADOPT_FERNET_KEY to the \
                 original's LTD_KEEPER_FERNET_KEY so that adopt can decrypt it"
            )
        })?;
        let fernet = fernet::Fernet::new(key.expose_secret().trim())
            .context("KEEPER_ADOPT_FERNET_KEY is not a Fernet key (32 url-safe base64 bytes)")?;
        let plain = fernet.decrypt(token.trim()).map_err(|_| {
            anyhow::anyhow!(
                "organization {id}'s {column} does not decrypt with KEEPER_ADOPT_FERNET_KEY: is it \
                 the original's LTD_KEEPER_FERNET_KEY?"
            )
        })?;
        let plain = String::from_utf8(plain).context("a decrypted secret is not text")?;
        let keys = inputs.encryption_keys.with_context(|| {
            format!(
                "organization {id} has a secret ({column}); keeper stores secrets only encrypted: \
                 set KEEPER_ENCRYPTION_KEYS (keeper secrets generate-key makes one)"
            )
        })?;
        Ok(Some(keys.encrypt(&plain)))
    };
    let mut slugs = HashSet::new();
    for row in &source.organizations {
        let id = id_of(row)?;
        let raw_slug = text(row, "slug").unwrap_or_default();
        let valid = !raw_slug.is_empty()
            && raw_slug
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !raw_slug.starts_with('-')
            && !raw_slug.ends_with('-')
            && !raw_slug.contains("--");
        if !valid {
            bail!(
                "organization {id} has the slug {raw_slug:?}, which keeper cannot take (lower-case \
                 letters, digits and single hyphens): rename it in LTD Keeper, then adopt again"
            );
        }
        slugs.insert(raw_slug.to_owned());
        let layout = match integer(row, "layout") {
            Some(2) => "path",
            Some(1) => "subdomain",
            other => {
                plan.repairs.push(Repair {
                    subject: format!("organization {id} ({raw_slug})"),
                    action: format!("had the unknown layout {other:?}: given the subdomain layout"),
                });
                "subdomain"
            }
        };
        let prefix = text(row, "root_path_prefix")
            .unwrap_or_default()
            .trim_end_matches('/');
        let bucket = text(row, "bucket_name").unwrap_or_default();
        let fastly_service = text(row, "fastly_service_id").filter(|v| !v.is_empty());
        let fastly = flag(row, "fastly_support").unwrap_or(false) && fastly_service.is_some();
        if let Some(domain) = text(row, "fastly_domain").filter(|v| !v.is_empty()) {
            fastly_domains.insert(id, domain.to_owned());
        }
        let aws_secret = reencrypt(id, "aws_encrypted_secret_key", row)?;
        let fastly_key = reencrypt(id, "fastly_encrypted_api_key", row)?;
        plan.organizations.push(row_of(json!({
            "id": id,
            "slug": raw_slug,
            "title": text(row, "title").unwrap_or(raw_slug),
            "layout": layout,
            "root_domain": text(row, "root_domain"),
            "path_prefix": prefix,
            "store_kind": if bucket.is_empty() { "local" } else { "s3" },
            "bucket_name": bucket,
            "s3_region": text(row, "aws_region").filter(|v| !v.is_empty()).or((!bucket.is_empty()).then_some("us-east-1")),
            "s3_endpoint_url": Value::Null,
            "s3_access_key_id": text(row, "aws_id"),
            "s3_secret_access_key_encrypted": aws_secret,
            "public_read": flag(row, "bucket_public_read").unwrap_or(false),
            "cdn_kind": if fastly { "fastly" } else { "none" },
            "fastly_service_id": fastly_service,
            "fastly_api_key_encrypted": fastly_key,
            "varnish_urls": Value::Null,
            "date_created": stored(inputs.now),
            "s3_path_style": false,
        })));
    }
    if !slugs.contains(crate::db::organizations::DEFAULT_ORGANIZATION)
        && !source.organizations.is_empty()
    {
        plan.notes.push(format!(
            "the original has no organization named {:?}: keeper keeps its own (empty) one",
            crate::db::organizations::DEFAULT_ORGANIZATION
        ));
    }
    Ok(fastly_domains)
}

/// The id and slug of the imported product a build or edition row belongs to.
fn owning_product(row: &Row, products: &HashMap<i64, String>) -> Option<(i64, String)> {
    let id = integer(row, "product_id")?;
    products.get(&id).map(|slug| (id, slug.clone()))
}

/// A build as the editions see it after the import.
struct PlannedBuild {
    product_id: i64,
    /// The id an edition showing this build shows after the import (itself, or the build it
    /// duplicated).
    shown_as: i64,
    publishable: bool,
    surrogate_key: String,
}

fn plan_builds(
    source: &SourceCatalog,
    inputs: &PlanInputs,
    products: &HashMap<i64, String>,
    keys: &mut HashSet<String>,
    clock: &mut Clock,
    plan: &mut Plan,
) -> anyhow::Result<HashMap<i64, PlannedBuild>> {
    let mut planned = HashMap::new();
    let mut slugs: HashMap<i64, HashMap<String, i64>> = HashMap::new();
    // Which build keeps a slug two builds share (the original's automatic slugs could race):
    // one an edition shows, else the oldest.
    let shown: HashSet<i64> = source
        .editions
        .iter()
        .filter_map(|row| integer(row, "build_id"))
        .collect();
    let mut order: Vec<&Row> = source.builds.iter().collect();
    order.sort_by_key(|row| {
        let id = integer(row, "id").unwrap_or(i64::MAX);
        (!shown.contains(&id), id)
    });
    for row in order {
        let id = id_of(row)?;
        let raw_slug = text(row, "slug").unwrap_or_default();
        let Some((product_id, product)) = owning_product(row, products) else {
            plan.repairs.push(Repair {
                subject: format!("build {id} ({raw_slug})"),
                action: "belongs to no product: not carried over (no URL reached it)".to_owned(),
            });
            continue;
        };
        let subject = format!("build {id} ({product}/builds/{raw_slug})");
        let taken = slugs.entry(product_id).or_default();
        let mut date_ended = clock.read("builds", &subject, row, "date_ended");
        let mut shown_as = id;
        let slug = match (BuildSlug::parse(raw_slug), taken.get(raw_slug)) {
            (Ok(slug), None) => slug.as_str().to_owned(),
            (Ok(_), Some(&first)) => {
                let names: HashSet<String> = taken.keys().cloned().collect();
                let renamed = unique(format!("{raw_slug}-dup"), &names, id);
                date_ended = date_ended.or(Some(inputs.now));
                shown_as = first;
                plan.repairs.push(Repair {
                    subject: subject.clone(),
                    action: format!(
                        "has the slug of build {first} (the original's automatic slugs raced), so \
                         both wrote to {product}/builds/{raw_slug}/, which build {first} keeps: \
                         renamed {renamed} and deprecated; an edition that showed it shows build \
                         {first}, the same objects"
                    ),
                });
                renamed
            }
            (Err(_), _) => {
                let names: HashSet<String> = taken.keys().cloned().collect();
                let renamed = unique(path_slug(raw_slug, &format!("build-{id}")), &names, id);
                date_ended = date_ended.or(Some(inputs.now));
                plan.repairs.push(Repair {
                    subject: subject.clone(),
                    action: format!(
                        "has a slug keeper cannot take (letters, digits, . _ -): renamed {renamed} \
                         and deprecated, since its objects stay under the old name"
                    ),
                });
                renamed
            }
        };
        taken.insert(slug.clone(), id);
        let git_refs = match ref_list(row, "git_refs") {
            Some(refs) => refs,
            None => match text(row, "git_ref").filter(|r| !r.is_empty()) {
                Some(one) => vec![one.to_owned()],
                None => {
                    plan.repairs.push(Repair {
                        subject: subject.clone(),
                        action: "had no readable git refs: stored with none, so no edition \
                                 tracks it"
                            .to_owned(),
                    });
                    Vec::new()
                }
            },
        };
        let uploaded = flag(row, "uploaded").unwrap_or(false);
        let surrogate_key = key_or_new(
            text(row, "surrogate_key"),
            keys,
            &subject,
            "its objects still carry the old one, so a purge by the new key misses them until \
             they are uploaded again",
            &mut plan.repairs,
        );
        let date_created = clock
            .read("builds", &subject, row, "date_created")
            .unwrap_or(inputs.now);
        planned.insert(
            id,
            PlannedBuild {
                product_id,
                shown_as,
                publishable: uploaded && date_ended.is_none(),
                surrogate_key: surrogate_key.clone(),
            },
        );
        plan.builds.push(row_of(json!({
            "id": id,
            "product_id": product_id,
            "slug": slug,
            "git_refs": serde_json::to_string(&git_refs)?,
            "github_requester": text(row, "github_requester"),
            "uploaded": uploaded,
            "date_created": stored(date_created),
            "date_ended": date_ended.map(stored),
            "surrogate_key": surrogate_key,
            "manifest_digest": Value::Null,
        })));
    }
    plan.builds.sort_by_key(|row| integer(row, "id"));
    Ok(planned)
}

#[allow(clippy::too_many_arguments)]
fn plan_editions(
    source: &SourceCatalog,
    inputs: &PlanInputs,
    products: &HashMap<i64, String>,
    builds: &HashMap<i64, PlannedBuild>,
    keys: &mut HashSet<String>,
    clock: &mut Clock,
    plan: &mut Plan,
) -> anyhow::Result<()> {
    let v2 = is_v2(&source.revision);
    // Which edition keeps a slug two editions share: a live one over a deleted one, then the
    // oldest.
    let mut order: Vec<&Row> = source.editions.iter().collect();
    order.sort_by_key(|row| {
        (
            text(row, "date_ended").is_some(),
            integer(row, "id").unwrap_or(i64::MAX),
        )
    });
    let mut slugs: HashMap<i64, HashSet<String>> = HashMap::new();
    let mut mains: HashMap<i64, Vec<(usize, i64, String)>> = HashMap::new();
    let mut planned: Vec<(i64, Row)> = Vec::new();
    for row in order {
        let id = id_of(row)?;
        let raw_slug = text(row, "slug").unwrap_or_default();
        let Some((product_id, product)) = owning_product(row, products) else {
            plan.repairs.push(Repair {
                subject: format!("edition {id} ({raw_slug})"),
                action: "belongs to no product: not carried over".to_owned(),
            });
            continue;
        };
        let subject = format!("edition {id} ({product}/v/{raw_slug})");
        let live = text(row, "date_ended").is_none();
        let taken = slugs.entry(product_id).or_default();
        let mut needs_rebuild: Option<&'static str> = None;
        let slug = match EditionSlug::parse(raw_slug) {
            Ok(slug) if !taken.contains(slug.as_str()) => slug.as_str().to_owned(),
            parsed => {
                let base = if parsed.is_ok() {
                    raw_slug.to_owned()
                } else {
                    path_slug(raw_slug, &format!("edition-{id}"))
                };
                let renamed = unique(base, taken, id);
                needs_rebuild = live.then_some("renamed");
                plan.repairs.push(Repair {
                    subject: subject.clone(),
                    action: format!(
                        "{}: renamed {renamed}{}",
                        if parsed.is_ok() {
                            "has the slug of another edition of the product (the original checked \
                             slugs in code only)"
                        } else {
                            "has a slug keeper cannot take (letters, digits, . _ -)"
                        },
                        if live {
                            format!(", and rebuilt into {product}/v/{renamed}/")
                        } else {
                            " (it is deleted)".to_owned()
                        }
                    ),
                });
                renamed
            }
        };
        taken.insert(slug.clone());

        let named = text(row, "mode").and_then(|name| TrackingMode::parse(name).ok());
        let tracking_mode = match (row.get("mode"), named) {
            (None | Some(Value::Null), _) => TrackingMode::GitRefs,
            (_, Some(mode)) => mode,
            _ => match integer(row, "mode").and_then(tracking_mode_of) {
                Some(mode) => mode,
                None => {
                    plan.repairs.push(Repair {
                        subject: subject.clone(),
                        action: format!(
                            "has the unknown tracking mode {}: git_refs, as the original fell back to",
                            row.get("mode").map(Value::to_string).unwrap_or_default()
                        ),
                    });
                    TrackingMode::GitRefs
                }
            },
        };
        let mut refs = ref_list(row, "tracked_refs");
        if tracking_mode == TrackingMode::GitRef {
            if let Some(one) = text(row, "tracked_ref").filter(|r| !r.is_empty()) {
                refs = Some(vec![one.to_owned()]);
            }
        }
        let mut tracking_mode = tracking_mode;
        let needs_refs = matches!(tracking_mode, TrackingMode::GitRefs | TrackingMode::GitRef);
        if needs_refs && refs.as_ref().is_none_or(|r| r.is_empty()) {
            plan.repairs.push(Repair {
                subject: subject.clone(),
                action: format!(
                    "tracks no git refs in mode {}, so no build could update it: set to manual",
                    tracking_mode.as_str()
                ),
            });
            tracking_mode = TrackingMode::Manual;
        }
        let kind = if v2 {
            match integer(row, "kind").and_then(edition_kind_of) {
                Some(kind) => kind,
                None => edition_kind(
                    &EditionSlug::parse(&slug).unwrap_or_else(|_| EditionSlug::main()),
                    refs.as_deref().unwrap_or_default(),
                ),
            }
        } else if raw_slug == "main" {
            // 1.x's default edition.
            EditionKind::Main
        } else {
            match EditionSlug::parse(&slug) {
                Ok(parsed) => edition_kind(&parsed, refs.as_deref().unwrap_or_default()),
                Err(_) => EditionKind::Draft,
            }
        };
        let kind = if kind == EditionKind::Main && !live {
            EditionKind::Draft
        } else {
            kind
        };
        if kind == EditionKind::Main {
            let rank = match raw_slug {
                EditionSlug::MAIN => 0,
                "main" => 1,
                _ => 2,
            };
            mains
                .entry(product_id)
                .or_default()
                .push((rank, id, slug.clone()));
        }

        let mut build_id = integer(row, "build_id");
        if let Some(shown) = build_id {
            match builds.get(&shown) {
                Some(build) if build.product_id == product_id => {
                    if build.shown_as != shown {
                        build_id = Some(build.shown_as);
                    }
                }
                _ => {
                    plan.repairs.push(Repair {
                        subject: subject.clone(),
                        action: format!(
                            "showed build {shown}, which is not one of the product's: shows no \
                             build until the next one it tracks"
                        ),
                    });
                    build_id = None;
                }
            }
        }
        let original_key = text(row, "surrogate_key");
        let had_valid_key =
            original_key.is_some_and(|k| SurrogateKey::parse(k).is_ok() && !keys.contains(k));
        let surrogate_key = key_or_new(
            original_key,
            keys,
            &subject,
            if live && build_id.is_some() {
                "a rebuild rewrites its objects with it and purges the build's key as well"
            } else {
                "its objects get it at its next rebuild"
            },
            &mut plan.repairs,
        );
        let mut also_purge = Vec::new();
        if !had_valid_key && live {
            if let Some(build) = build_id.and_then(|b| builds.get(&b)) {
                // The original copied a build's objects with the build's key while editions
                // had none: readers' caches hold the edition's pages under that key.
                also_purge.push(build.surrogate_key.clone());
                needs_rebuild = needs_rebuild.or(Some("new surrogate key"));
            }
        }
        if live && flag(row, "pending_rebuild").unwrap_or(false) {
            plan.repairs.push(Repair {
                subject: subject.clone(),
                action: "was left pending_rebuild (the original's rebuild never finished): \
                         rebuilt from its build"
                    .to_owned(),
            });
            needs_rebuild = needs_rebuild.or(Some("left pending_rebuild"));
        }
        if let (Some(reason), Some(build)) = (needs_rebuild, build_id) {
            match builds.get(&build) {
                Some(planned) if planned.publishable => plan.rebuilds.push(Rebuild {
                    edition_id: id,
                    build_id: build,
                    also_purge,
                    reason,
                }),
                _ => plan.repairs.push(Repair {
                    subject: subject.clone(),
                    action: format!(
                        "needs a rebuild ({reason}), but its build {build} is not uploaded or is \
                         deprecated: none queued; point it at a published build (PATCH build_url)"
                    ),
                }),
            }
        }
        let date_created = clock
            .read("editions", &subject, row, "date_created")
            .unwrap_or(inputs.now);
        planned.push((
            id,
            row_of(json!({
                "id": id,
                "product_id": product_id,
                "slug": slug,
                "title": text(row, "title").unwrap_or(&slug),
                "tracking_mode": tracking_mode.as_str(),
                "tracked_refs": refs.map(|r| serde_json::to_string(&r)).transpose()?,
                "kind": kind.as_str(),
                "build_id": build_id,
                "date_created": stored(date_created),
                "date_rebuilt": clock.read("editions", &subject, row, "date_rebuilt").map(stored),
                "date_ended": clock.read("editions", &subject, row, "date_ended").map(stored),
                "surrogate_key": surrogate_key,
                "prefix_matches_build": false,
            })),
        ));
    }
    // One default edition per product: `__main`, else `main`, else the oldest.
    let mut demoted = BTreeSet::new();
    for (product_id, mut candidates) in mains {
        candidates.sort();
        for (_, id, slug) in candidates.iter().skip(1) {
            demoted.insert(*id);
            plan.repairs.push(Repair {
                subject: format!("edition {id} ({}/v/{slug})", products[&product_id]),
                action: format!(
                    "was a second default edition of its product: edition {} stays the default, \
                     this one becomes an ordinary edition",
                    candidates[0].1
                ),
            });
        }
    }
    let with_default: HashSet<i64> = planned
        .iter()
        .filter(|(id, row)| {
            !demoted.contains(id) && text(row, "kind") == Some(EditionKind::Main.as_str())
        })
        .filter_map(|(_, row)| integer(row, "product_id"))
        .collect();
    for (product_id, slug) in products {
        if !with_default.contains(product_id) {
            plan.repairs.push(Repair {
                subject: format!("product {product_id} ({slug})"),
                action: "has no live default edition (main): its URL shows nothing until one is \
                         created (POST /products/<slug>/editions/ with slug __main)"
                    .to_owned(),
            });
        }
    }
    planned.sort_by_key(|(id, _)| *id);
    for (id, mut row) in planned {
        if demoted.contains(&id) {
            let slug = text(&row, "slug").unwrap_or_default().to_owned();
            let refs: Vec<String> = row
                .get("tracked_refs")
                .and_then(Value::as_str)
                .and_then(|t| serde_json::from_str(t).ok())
                .unwrap_or_default();
            let kind = EditionSlug::parse(&slug)
                .map(|s| edition_kind(&s, &refs))
                .unwrap_or(EditionKind::Draft);
            let kind = if kind == EditionKind::Main {
                EditionKind::Draft
            } else {
                kind
            };
            row.insert("kind".into(), kind.as_str().into());
        }
        plan.editions.push(row);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_are_read_with_or_without_a_zone() {
        let (value, naive) = parse_datetime("2026-12-01 20:42:33.708744").unwrap();
        assert!(naive);
        assert_eq!(value.to_string(), "2026-12-01 20:42:33.708744");
        let (value, naive) = parse_datetime("2026-12-01 21:42:33+01:00").unwrap();
        assert!(!naive);
        assert_eq!(value.to_string(), "2026-12-01 20:42:33");
        let (value, naive) = parse_datetime("2026-12-01T20:42:33.5+00").unwrap();
        assert!(!naive);
        assert_eq!(value.to_string(), "2026-12-01 20:42:33.500");
        assert_eq!(parse_datetime("yesterday"), None);
    }

    #[test]
    fn the_originals_codes_map_to_keepers_names() {
        assert_eq!(tracking_mode_of(1), Some(TrackingMode::GitRefs));
        assert_eq!(tracking_mode_of(2), Some(TrackingMode::LsstDoc));
        assert_eq!(tracking_mode_of(6), Some(TrackingMode::Manual));
        assert_eq!(tracking_mode_of(7), Some(TrackingMode::GitRef));
        assert_eq!(tracking_mode_of(8), None);
        assert_eq!(edition_kind_of(1), Some(EditionKind::Main));
        assert_eq!(edition_kind_of(5), Some(EditionKind::Minor));
        assert_eq!(edition_kind_of(0), None);
    }

    fn rows(value: Value) -> Vec<Row> {
        value
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row.as_object().unwrap().clone())
            .collect()
    }

    #[test]
    fn the_default_organization_makes_way_for_the_originals_ids() {
        let source = SourceCatalog {
            revision: *crate::adopt::revision::CHAIN.last().unwrap(),
            detection: crate::adopt::revision::Detection::Tagged,
            users: Vec::new(),
            organizations: rows(json!([
                {"id": 1, "slug": "rubin", "title": "Rubin", "layout": 1, "root_domain": "lsst.io",
                 "root_path_prefix": "/", "fastly_support": false}
            ])),
            products: rows(json!([
                {"id": 3, "organization_id": 9, "slug": "orphan", "doc_repo": "", "title": "O",
                 "root_domain": "lsst.io", "surrogate_key": "0123456789abcdef0123456789abcdef"}
            ])),
            builds: Vec::new(),
            editions: Vec::new(),
        };
        let now =
            NaiveDateTime::parse_from_str("2026-12-02 00:00:00", "%Y-%m-%d %H:%M:%S").unwrap();
        let plan = plan(
            &source,
            &PlanInputs {
                now,
                default_organization_id: 1,
                source_fernet_key: None,
                encryption_keys: None,
            },
        )
        .unwrap();
        // The original's organization keeps id 1; keeper's default moves to 2 and takes the
        // product whose organization does not exist.
        assert_eq!(plan.default_organization_id, 2);
        assert_eq!(plan.products[0]["organization_id"], 2);
        assert!(plan
            .repairs
            .iter()
            .any(|r| r.subject == "product 3 (orphan)"));
    }

    #[test]
    fn slugs_are_made_takeable_and_unique() {
        assert_eq!(path_slug("tickets/DM-1", "x"), "tickets-DM-1");
        assert_eq!(path_slug("..", "edition-3"), "edition-3");
        assert_eq!(takeable("jane doe", "-_.@+", 50, "user-1"), "jane-doe");
        assert_eq!(takeable("..", "-_.@+", 50, "user-1"), "user-1");
        let taken: HashSet<String> = ["v1".to_owned(), "v1-7".to_owned()].into();
        assert_eq!(unique("v2".into(), &taken, 7), "v2");
        assert_eq!(unique("v1".into(), &taken, 7), "v1-7-2");
    }
}
