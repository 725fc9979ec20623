//! The API's hot reads, each one statement: a row with its product and organization (and, for
//! editions and builds, their newest operation) joined in the database. On PostgreSQL every
//! statement is a round trip through the network and the server's scheduler, which costs more
//! than keeper's own work per request; several lookups in a row made the PostgreSQL API a third
//! as fast as the embedded one.

use diesel::dsl::max;
use diesel::prelude::*;

use crate::db::models::{Build, Edition, Organization, Product};
use crate::db::pipelined::Live;
use crate::db::schema::{builds, editions, operations, organizations, products};
use crate::db::DbConnection;
use crate::with_connection;

// Each read is one query, written once as a macro and run by two functions: the blocking one on
// a pooled connection of either backend, the `_pipelined` one on PostgreSQL's pipelined
// connection (`db::pipelined`). They answer the same.

/// Runs `$query` with `$method` (`first` or `load`) on a pipelined connection.
macro_rules! pipelined {
    ($live:expr, $query:expr, $method:ident) => {{
        let mut conn = $live.conn();
        diesel_async::RunQueryDsl::$method($query, &mut conn).await
    }};
}

macro_rules! product_slugs_query {
    () => {
        products::table
            .order((products::slug, products::organization_id))
            .select(products::slug)
    };
}

/// Every product's slug, whatever its organization, in order.
pub fn product_slugs(conn: &mut DbConnection) -> QueryResult<Vec<String>> {
    with_connection!(conn, c => product_slugs_query!().load(c))
}

/// [`product_slugs`] on a pipelined connection.
pub async fn product_slugs_pipelined(live: &Live) -> QueryResult<Vec<String>> {
    pipelined!(live, product_slugs_query!(), load)
}

macro_rules! product_with_organization_query {
    ($slug:expr) => {
        products::table
            .inner_join(organizations::table)
            .filter(products::slug.eq($slug))
            .order((products::organization_id, products::id))
            .select((Product::as_select(), Organization::as_select()))
    };
}

/// A product by slug with its organization (the first product of that slug, by organization,
/// as `products::find_product_by_slug` picks it).
pub fn product_with_organization(
    conn: &mut DbConnection,
    slug: &str,
) -> QueryResult<Option<(Product, Organization)>> {
    with_connection!(conn, c => product_with_organization_query!(slug).first(c).optional())
}

/// [`product_with_organization`] on a pipelined connection.
pub async fn product_with_organization_pipelined(
    live: &Live,
    slug: &str,
) -> QueryResult<Option<(Product, Organization)>> {
    pipelined!(live, product_with_organization_query!(slug), first).optional()
}

/// A build with its product, its organization and its newest operation's id.
pub struct BuildInContext {
    pub build: Build,
    pub product: Product,
    pub organization: Organization,
    pub operation: Option<i64>,
}

type BuildRow = (Build, Product, Organization, Option<i64>);

macro_rules! build_in_context_query {
    ($id:expr) => {
        builds::table
            .inner_join(products::table.inner_join(organizations::table))
            .filter(builds::id.eq($id))
            .select((
                Build::as_select(),
                Product::as_select(),
                Organization::as_select(),
                operations::table
                    .filter(operations::build_id.eq($id))
                    .select(max(operations::id))
                    .single_value(),
            ))
    };
}

/// The build `id` (deprecated or not) in its context; `None` when there is no such build.
pub fn build_in_context(conn: &mut DbConnection, id: i64) -> QueryResult<Option<BuildInContext>> {
    let row: Option<BuildRow> =
        with_connection!(conn, c => build_in_context_query!(id).first(c).optional())?;
    Ok(row.map(build_from_row))
}

/// [`build_in_context`] on a pipelined connection.
pub async fn build_in_context_pipelined(
    live: &Live,
    id: i64,
) -> QueryResult<Option<BuildInContext>> {
    let row: Option<BuildRow> = pipelined!(live, build_in_context_query!(id), first).optional()?;
    Ok(row.map(build_from_row))
}

fn build_from_row((build, product, organization, operation): BuildRow) -> BuildInContext {
    BuildInContext {
        build,
        product,
        organization,
        operation,
    }
}

/// An edition with its product, its organization, whether a rebuild or rename of it is still
/// to finish, and its newest operation's id.
pub struct EditionInContext {
    pub edition: Edition,
    pub product: Product,
    pub organization: Organization,
    pub pending_rebuild: bool,
    pub operation: Option<i64>,
}

/// An edition, its product and organization, its unfinished move's and newest operation's ids.
type EditionRow = (Edition, Product, Organization, Option<i64>, Option<i64>);

macro_rules! edition_in_context_query {
    ($id:expr) => {
        editions::table
            .inner_join(products::table.inner_join(organizations::table))
            .filter(editions::id.eq($id))
            .select((
                Edition::as_select(),
                Product::as_select(),
                Organization::as_select(),
                operations::table
                    .filter(operations::edition_id.eq($id))
                    .filter(UnfinishedMove)
                    .select(max(operations::id))
                    .single_value(),
                operations::table
                    .filter(operations::edition_id.eq($id))
                    .select(max(operations::id))
                    .single_value(),
            ))
    };
}

/// The edition `id` (deleted or not) in its context; `None` once its row is gone.
pub fn edition_in_context(
    conn: &mut DbConnection,
    id: i64,
) -> QueryResult<Option<EditionInContext>> {
    let row: Option<EditionRow> =
        with_connection!(conn, c => edition_in_context_query!(id).first(c).optional())?;
    Ok(row.map(edition_from_row))
}

/// [`edition_in_context`] on a pipelined connection.
pub async fn edition_in_context_pipelined(
    live: &Live,
    id: i64,
) -> QueryResult<Option<EditionInContext>> {
    let row: Option<EditionRow> =
        pipelined!(live, edition_in_context_query!(id), first).optional()?;
    Ok(row.map(edition_from_row))
}

fn edition_from_row(
    (edition, product, organization, pending_rebuild, operation): EditionRow,
) -> EditionInContext {
    EditionInContext {
        edition,
        product,
        organization,
        pending_rebuild: pending_rebuild.is_some(),
        operation,
    }
}

/// `operations.state IN ('READY', 'WORKING') AND operations.kind IN ('rebuild_edition',
/// 'rename_edition')`, with the values written into the statement, which never varies.
///
/// Not bound: SQLite plans a statement with the value bound to a column that a partial index's
/// condition names (`operations_claimable_idx` is `WHERE state IN ('READY', 'WORKING')`), and
/// then prepares it again every time that value is bound, on every request; GET /editions/<id>
/// spent most of its time in SQLite's parser. Not `IN (?, ?)` either: diesel prepares that again
/// on every run on SQLite, its number of values could vary. And not `diesel::dsl::sql`, whose
/// statements diesel never caches on either backend.
#[derive(Debug, Clone, Copy, diesel::query_builder::QueryId)]
struct UnfinishedMove;

const UNFINISHED_MOVE_SQL: &str = "(operations.state IN ('READY', 'WORKING') \
     AND operations.kind IN ('rebuild_edition', 'rename_edition'))";

impl diesel::Expression for UnfinishedMove {
    type SqlType = diesel::sql_types::Bool;
}

impl diesel::expression::ValidGrouping<()> for UnfinishedMove {
    type IsAggregate = diesel::expression::is_aggregate::Never;
}

// Names only `operations` columns; it is used inside subselects on `operations`.
impl<QS> diesel::AppearsOnTable<QS> for UnfinishedMove {}

impl<DB: diesel::backend::Backend> diesel::query_builder::QueryFragment<DB> for UnfinishedMove {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, DB>,
    ) -> QueryResult<()> {
        out.push_sql(UNFINISHED_MOVE_SQL);
        Ok(())
    }
}

macro_rules! live_edition_ids_query {
    ($slug:expr) => {
        editions::table
            .filter(editions::product_id.nullable().eq(first_product_id($slug)))
            .filter(editions::date_ended.is_null())
            .order(editions::id)
            .select(editions::id)
    };
}

/// The ids of the live editions of the product named `slug`, oldest first; `None` when there is
/// no such product. One statement, unless the product has none (then a second says which).
pub fn live_edition_ids(conn: &mut DbConnection, slug: &str) -> QueryResult<Option<Vec<i64>>> {
    let ids: Vec<i64> = with_connection!(conn, c => live_edition_ids_query!(slug).load(c))?;
    if !ids.is_empty() {
        return Ok(Some(ids));
    }
    Ok(product_exists(conn, slug)?.then_some(ids))
}

/// [`live_edition_ids`] on a pipelined connection.
pub async fn live_edition_ids_pipelined(live: &Live, slug: &str) -> QueryResult<Option<Vec<i64>>> {
    let ids: Vec<i64> = pipelined!(live, live_edition_ids_query!(slug), load)?;
    if !ids.is_empty() {
        return Ok(Some(ids));
    }
    Ok(product_exists_pipelined(live, slug).await?.then_some(ids))
}

macro_rules! active_build_ids_query {
    ($slug:expr) => {
        builds::table
            .filter(builds::product_id.nullable().eq(first_product_id($slug)))
            .filter(builds::date_ended.is_null())
            .order(builds::id)
            .select(builds::id)
    };
}

/// The ids of the non-deprecated builds of the product named `slug`, oldest first; `None` when
/// there is no such product. One statement, unless the product has none.
pub fn active_build_ids(conn: &mut DbConnection, slug: &str) -> QueryResult<Option<Vec<i64>>> {
    let ids: Vec<i64> = with_connection!(conn, c => active_build_ids_query!(slug).load(c))?;
    if !ids.is_empty() {
        return Ok(Some(ids));
    }
    Ok(product_exists(conn, slug)?.then_some(ids))
}

/// [`active_build_ids`] on a pipelined connection.
pub async fn active_build_ids_pipelined(live: &Live, slug: &str) -> QueryResult<Option<Vec<i64>>> {
    let ids: Vec<i64> = pipelined!(live, active_build_ids_query!(slug), load)?;
    if !ids.is_empty() {
        return Ok(Some(ids));
    }
    Ok(product_exists_pipelined(live, slug).await?.then_some(ids))
}

macro_rules! product_id_query {
    ($slug:expr) => {
        products::table
            .filter(products::slug.eq($slug))
            .select(products::id)
    };
}

fn product_exists(conn: &mut DbConnection, slug: &str) -> QueryResult<bool> {
    let id: Option<i64> = with_connection!(conn, c => product_id_query!(slug).first(c).optional())?;
    Ok(id.is_some())
}

async fn product_exists_pipelined(live: &Live, slug: &str) -> QueryResult<bool> {
    let id: Option<i64> = pipelined!(live, product_id_query!(slug), first).optional()?;
    Ok(id.is_some())
}

type FirstProductId<'a> = diesel::dsl::SingleValue<
    diesel::dsl::Limit<
        diesel::dsl::Select<
            diesel::dsl::Order<
                diesel::dsl::Filter<products::table, diesel::dsl::Eq<products::slug, &'a str>>,
                (products::organization_id, products::id),
            >,
            products::id,
        >,
    >,
>;

/// `(SELECT id FROM products WHERE slug = ? ORDER BY organization_id, id LIMIT 1)`.
fn first_product_id(slug: &str) -> FirstProductId<'_> {
    products::table
        .filter(products::slug.eq(slug))
        .order((products::organization_id, products::id))
        .select(products::id)
        .limit(1)
        .single_value()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{OperationKind, OperationState};

    #[test]
    fn the_unfinished_moves_index_has_the_statements_condition() {
        // A partial index serves a statement only when the planner sees that the statement's
        // condition implies the index's: both planners compare the terms as written.
        let condition = UNFINISHED_MOVE_SQL
            .strip_prefix('(')
            .and_then(|sql| sql.strip_suffix(')'))
            .unwrap()
            .replace("operations.", "");
        for migration in [
            include_str!(
                "../../migrations/postgres/2026-12-03-000012_edition_reads_independent_of_history/up.sql"
            ),
            include_str!(
                "../../migrations/sqlite/2026-12-03-000012_edition_reads_independent_of_history/up.sql"
            ),
        ] {
            assert!(
                migration.contains(&format!("WHERE {condition};")),
                "{condition}"
            );
        }
    }

    #[test]
    fn the_unfinished_move_names_the_unfinished_states_and_the_moving_kinds() {
        let quoted = |names: &[&str]| {
            names
                .iter()
                .map(|name| format!("'{name}'"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let states: Vec<&str> = OperationState::UNFINISHED
            .iter()
            .map(|s| s.as_str())
            .collect();
        let kinds = [
            OperationKind::RebuildEdition.as_str(),
            OperationKind::RenameEdition.as_str(),
        ];
        assert_eq!(
            UNFINISHED_MOVE_SQL,
            format!(
                "(operations.state IN ({}) AND operations.kind IN ({}))",
                quoted(&states),
                quoted(&kinds)
            )
        );
    }
}
