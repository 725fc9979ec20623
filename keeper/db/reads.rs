//! The API's hot reads, each one statement: a row with its product and organization (and, for
//! editions and builds, their newest operation) joined in the database. On PostgreSQL every
//! statement is a round trip through the network and the server's scheduler, which costs more
//! than keeper's own work per request; several lookups in a row made the PostgreSQL API a third
//! as fast as the embedded one.

use diesel::dsl::max;
use diesel::prelude::*;

use crate::db::models::{Build, Edition, Organization, Product};
use crate::db::schema::{builds, editions, operations, organizations, products};
use crate::db::DbConnection;
use crate::with_connection;

/// A product by slug with its organization (the first product of that slug, by organization,
/// as `products::find_product_by_slug` picks it).
pub fn product_with_organization(
    conn: &mut DbConnection,
    slug: &str,
) -> QueryResult<Option<(Product, Organization)>> {
    with_connection!(conn, c => products::table
        .inner_join(organizations::table)
        .filter(products::slug.eq(slug))
        .order((products::organization_id, products::id))
        .select((Product::as_select(), Organization::as_select()))
        .first(c)
        .optional())
}

/// A build with its product, its organization and its newest operation's id.
pub struct BuildInContext {
    pub build: Build,
    pub product: Product,
    pub organization: Organization,
    pub operation: Option<i64>,
}

/// The build `id` (deprecated or not) in its context; `None` when there is no such build.
pub fn build_in_context(conn: &mut DbConnection, id: i64) -> QueryResult<Option<BuildInContext>> {
    let row: Option<(Build, Product, Organization, Option<i64>)> = with_connection!(conn, c => builds::table
        .inner_join(products::table.inner_join(organizations::table))
        .filter(builds::id.eq(id))
        .select((
            Build::as_select(),
            Product::as_select(),
            Organization::as_select(),
            operations::table
                .filter(operations::build_id.eq(id))
                .select(max(operations::id))
                .single_value(),
        ))
        .first(c)
        .optional())?;
    Ok(
        row.map(|(build, product, organization, operation)| BuildInContext {
            build,
            product,
            organization,
            operation,
        }),
    )
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

/// The edition `id` (deleted or not) in its context; `None` once its row is gone.
pub fn edition_in_context(
    conn: &mut DbConnection,
    id: i64,
) -> QueryResult<Option<EditionInContext>> {
    let row: Option<EditionRow> = with_connection!(conn, c => editions::table
        .inner_join(products::table.inner_join(organizations::table))
        .filter(editions::id.eq(id))
        .select((
            Edition::as_select(),
            Product::as_select(),
            Organization::as_select(),
            operations::table
                .filter(operations::edition_id.eq(id))
                .filter(UnfinishedMove)
                .select(max(operations::id))
                .single_value(),
            operations::table
                .filter(operations::edition_id.eq(id))
                .select(max(operations::id))
                .single_value(),
        ))
        .first(c)
        .optional())?;
    Ok(row.map(
        |(edition, product, organization, pending_rebuild, operation)| EditionInContext {
            edition,
            product,
            organization,
            pending_rebuild: pending_rebuild.is_some(),
            operation,
        },
    ))
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

/// The ids of the live editions of the product named `slug`, oldest first; `None` when there is
/// no such product. One statement, unless the product has none (then a second says which).
pub fn live_edition_ids(conn: &mut DbConnection, slug: &str) -> QueryResult<Option<Vec<i64>>> {
    let ids: Vec<i64> = with_connection!(conn, c => editions::table
        .filter(editions::product_id.nullable().eq(first_product_id(slug)))
        .filter(editions::date_ended.is_null())
        .order(editions::id)
        .select(editions::id)
        .load(c))?;
    existing_product_or_none(conn, slug, ids)
}

/// The ids of the non-deprecated builds of the product named `slug`, oldest first; `None` when
/// there is no such product. One statement, unless the product has none.
pub fn active_build_ids(conn: &mut DbConnection, slug: &str) -> QueryResult<Option<Vec<i64>>> {
    let ids: Vec<i64> = with_connection!(conn, c => builds::table
        .filter(builds::product_id.nullable().eq(first_product_id(slug)))
        .filter(builds::date_ended.is_null())
        .order(builds::id)
        .select(builds::id)
        .load(c))?;
    existing_product_or_none(conn, slug, ids)
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

fn existing_product_or_none(
    conn: &mut DbConnection,
    slug: &str,
    ids: Vec<i64>,
) -> QueryResult<Option<Vec<i64>>> {
    if !ids.is_empty() {
        return Ok(Some(ids));
    }
    let product: Option<i64> = with_connection!(conn, c => products::table
        .filter(products::slug.eq(slug))
        .select(products::id)
        .first(c)
        .optional())?;
    Ok(product.map(|_| ids))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{OperationKind, OperationState};

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
