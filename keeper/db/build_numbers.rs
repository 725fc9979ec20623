//! Automatic build slugs: the smallest positive number not yet a build slug of the product (as
//! in the original), found in time that does not grow with the product's history.
//!
//! Each product keeps a floor (`products.build_slug_floor`): every number below it is taken.
//! Build rows are never deleted and slugs never reused, so a number once taken stays taken and a
//! floor once true stays true, whoever raises it and in whatever order. The next number is
//! searched from the floor, a window of [`WINDOW`] numbers per indexed query, and the floor is
//! raised in the transaction that takes a number. The floor is NULL until the first automatic
//! slug after the migration, which reads every slug of the product once.

use std::collections::HashSet;

use diesel::prelude::*;

use crate::db::schema::{builds, products};
use crate::db::DbConnection;
use crate::domain::{first_free_number, slug_number};
use crate::with_connection;

/// Numbers asked about per query.
const WINDOW: u64 = 32;

/// The next automatic build number, and the floor the product may keep once it is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextNumber {
    pub number: u64,
    /// The smallest number free in the database (at most `number`: it is smaller when numbers
    /// were passed over, reserved by a concurrent registration or with objects in their bucket
    /// prefix).
    pub first_free: u64,
}

impl NextNumber {
    /// The floor to keep once `number` is taken.
    pub fn floor_after(self) -> u64 {
        if self.number == self.first_free {
            self.number + 1
        } else {
            self.first_free
        }
    }
}

/// The smallest number that is no build slug of the product and not in `passed_over`.
pub fn next_build_number(
    conn: &mut DbConnection,
    product_id: i64,
    passed_over: &HashSet<u64>,
) -> QueryResult<NextNumber> {
    let stored: Option<i64> = with_connection!(conn, c => products::table
        .find(product_id)
        .select(products::build_slug_floor)
        .first(c))?;
    let mut from = match stored.and_then(|floor| u64::try_from(floor).ok()) {
        Some(floor) if floor >= 1 => floor,
        _ => first_free_of_every_slug(conn, product_id)?,
    };
    let mut first_free = None;
    loop {
        let taken = taken_numbers(conn, product_id, from)?;
        for number in from..from + WINDOW {
            if taken.contains(&number) {
                continue;
            }
            let first_free = *first_free.get_or_insert(number);
            if !passed_over.contains(&number) {
                return Ok(NextNumber { number, first_free });
            }
        }
        from += WINDOW;
    }
}

/// Raises the product's floor to `floor` (never lowers it).
pub fn raise_build_slug_floor(
    conn: &mut DbConnection,
    product_id: i64,
    floor: u64,
) -> QueryResult<()> {
    let floor = i64::try_from(floor).unwrap_or(i64::MAX);
    with_connection!(conn, c => diesel::update(products::table.find(product_id))
        .filter(
            products::build_slug_floor
                .is_null()
                .or(products::build_slug_floor.lt(floor)),
        )
        .set(products::build_slug_floor.eq(floor))
        .execute(c))?;
    Ok(())
}

/// The numbers of `from..from + WINDOW` that are build slugs of the product.
fn taken_numbers(conn: &mut DbConnection, product_id: i64, from: u64) -> QueryResult<HashSet<u64>> {
    let window: Vec<String> = (from..from + WINDOW).map(|n| n.to_string()).collect();
    let taken: Vec<String> = with_connection!(conn, c => builds::table
        .filter(builds::product_id.eq(product_id))
        .filter(builds::slug.eq_any(&window))
        .select(builds::slug)
        .load(c))?;
    Ok(taken.iter().filter_map(|slug| slug_number(slug)).collect())
}

/// The first free number from every slug the product has used (once per product).
fn first_free_of_every_slug(conn: &mut DbConnection, product_id: i64) -> QueryResult<u64> {
    let used: Vec<String> = with_connection!(conn, c => builds::table
        .filter(builds::product_id.eq(product_id))
        .select(builds::slug)
        .load(c))?;
    Ok(first_free_number(used.iter().map(String::as_str)))
}
