//! What an organization's product list (`/docs/`) shows: each of its products, its published URL, its default edition and how many
//! editions it has (three queries, whatever the number of products).

use std::collections::HashMap;

use crate::api::app::AppState;
use crate::api::database::run_db;
use crate::api::publishing::layout_of;
use crate::db::editions::{live_default_editions, live_edition_counts};
use crate::db::products::list_products_with_organizations;
use crate::domain::{product_url, ProductSlug};
use crate::error::ApiResult;
use crate::pages::site::ProductEntry;

/// The products of `organization` (a slug) that its product list (`/docs/`) shows, by title.
pub async fn product_entries(state: &AppState, organization: &str) -> ApiResult<Vec<ProductEntry>> {
    let organization = organization.to_owned();
    let (products, counts, defaults) = run_db(&state.pool, |conn| {
        Ok((
            list_products_with_organizations(conn)?,
            live_edition_counts(conn)?,
            live_default_editions(conn)?,
        ))
    })
    .await?;
    let counts: HashMap<i64, i64> = counts.into_iter().collect();
    let defaults: HashMap<i64, _> = defaults
        .into_iter()
        .map(|edition| (edition.product_id, edition))
        .collect();
    Ok(products
        .into_iter()
        .filter(|(_, owner)| owner.slug == organization)
        .filter_map(|(product, organization)| {
            // A row whose slug breaks the rules has no URL to link; it is left out.
            let slug = ProductSlug::parse(&product.slug).ok()?;
            Some(ProductEntry {
                url: product_url(&layout_of(state, &organization), &slug),
                default_edition: defaults
                    .get(&product.id)
                    .filter(|edition| edition.build_id.is_some())
                    .map(|edition| edition.title.clone()),
                editions: counts.get(&product.id).copied().unwrap_or(0),
                slug: product.slug,
                title: product.title,
            })
        })
        .collect())
}
