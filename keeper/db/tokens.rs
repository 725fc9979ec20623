//! API token rows (hashes only) and the products a token is limited to.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::models::{ApiToken, NewApiToken};
use crate::db::schema::{api_token_products, api_tokens};
use crate::db::DbConnection;
use crate::with_connection;

pub fn find_by_hash(conn: &mut DbConnection, token_hash: &str) -> QueryResult<Option<ApiToken>> {
    with_connection!(conn, c => api_tokens::table
        .filter(api_tokens::token_hash.eq(token_hash))
        .select(ApiToken::as_select())
        .first(c)
        .optional())
}

pub fn find_token(conn: &mut DbConnection, id: i64) -> QueryResult<ApiToken> {
    with_connection!(conn, c => api_tokens::table.find(id).select(ApiToken::as_select()).first(c))
}

/// Products the token is limited to; empty means every product.
pub fn token_product_ids(conn: &mut DbConnection, token_id: i64) -> QueryResult<Vec<i64>> {
    with_connection!(conn, c => api_token_products::table
        .filter(api_token_products::api_token_id.eq(token_id))
        .select(api_token_products::product_id)
        .load(c))
}

pub fn insert_token(
    conn: &mut DbConnection,
    new: &NewApiToken,
    product_ids: &[i64],
) -> QueryResult<ApiToken> {
    let token: ApiToken = with_connection!(conn, c => diesel::insert_into(api_tokens::table)
        .values(new)
        .returning(ApiToken::as_returning())
        .get_result(c))?;
    for product_id in product_ids {
        with_connection!(conn, c => diesel::insert_into(api_token_products::table)
            .values((
                api_token_products::api_token_id.eq(token.id),
                api_token_products::product_id.eq(product_id),
            ))
            .execute(c))?;
    }
    Ok(token)
}

pub fn list_tokens(conn: &mut DbConnection, user_id: i64) -> QueryResult<Vec<ApiToken>> {
    with_connection!(conn, c => api_tokens::table
        .filter(api_tokens::user_id.eq(user_id))
        .order(api_tokens::id)
        .select(ApiToken::as_select())
        .load(c))
}

pub fn revoke_token(
    conn: &mut DbConnection,
    id: i64,
    when: NaiveDateTime,
) -> QueryResult<ApiToken> {
    with_connection!(conn, c => diesel::update(api_tokens::table.find(id))
        .set(api_tokens::date_revoked.eq(when))
        .returning(ApiToken::as_returning())
        .get_result(c))
}
