//! Automatic build numbers that this process is registering, or has just registered, per
//! product.
//!
//! A registration picks the next free number, checks the bucket, then inserts; concurrent
//! registrations of one product (a CI matrix) would all pick the same number and all but one
//! retry, round after round (before this, 8 at once on PostgreSQL ran out of retries and
//! answered 409). Each one reserves its number here first, and the others pass over the numbers
//! reserved (taking the next one up when theirs was reserved while they read), so they take
//! different numbers at once. A number stays listed after its build is
//! inserted, until a later read of the database shows it taken (`forget_below`): a registration
//! that read the database just before that insert committed would otherwise take it again.
//!
//! Other replicas do not see these reservations; the database's unique slug settles a race
//! between processes.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The numbers of every product, shared by every HTTP worker of the process.
#[derive(Debug, Default)]
pub struct NumbersInFlight {
    products: Mutex<HashMap<i64, Numbers>>,
}

#[derive(Debug, Default)]
struct Numbers {
    /// Reserved by a registration still running.
    reserved: HashSet<u64>,
    /// Taken by a build this process inserted, not yet seen taken by a read of the database.
    inserted: BTreeSet<u64>,
}

/// A number held until this guard drops (the registration failed) or is kept ([`Self::inserted`]).
#[derive(Debug)]
pub struct Reservation {
    owner: Arc<NumbersInFlight>,
    product_id: i64,
    number: u64,
    /// Its build was inserted: on drop the number moves to `inserted` instead of being freed.
    inserted: bool,
}

impl NumbersInFlight {
    /// The numbers of `product_id` that a new registration passes over.
    pub fn passed_over(&self, product_id: i64) -> HashSet<u64> {
        self.lock()
            .get(&product_id)
            .map_or_else(HashSet::new, |numbers| {
                numbers
                    .reserved
                    .iter()
                    .chain(&numbers.inserted)
                    .copied()
                    .collect()
            })
    }

    /// Forgets the inserted numbers below `first_free`, which a read of the database found
    /// taken.
    pub fn forget_below(&self, product_id: i64, first_free: u64) {
        let mut products = self.lock();
        if let Some(numbers) = products.get_mut(&product_id) {
            numbers.inserted = numbers.inserted.split_off(&first_free);
            if numbers.reserved.is_empty() && numbers.inserted.is_empty() {
                products.remove(&product_id);
            }
        }
    }

    /// Reserves the smallest number from `from` on that no other registration reserved or
    /// inserted (the smallest free one in the database, when `from` is the smallest free one
    /// there, as far as this process knows).
    pub fn reserve_from(self: &Arc<Self>, product_id: i64, from: u64) -> Reservation {
        let mut products = self.lock();
        let numbers = products.entry(product_id).or_default();
        let number = (from..)
            .find(|n| !numbers.inserted.contains(n) && !numbers.reserved.contains(n))
            .unwrap_or(from);
        numbers.reserved.insert(number);
        Reservation {
            owner: Arc::clone(self),
            product_id,
            number,
            inserted: false,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<i64, Numbers>> {
        // Every change is one call that leaves the map consistent, whatever panicked.
        self.products.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Reservation {
    /// The number reserved.
    pub fn number(&self) -> u64 {
        self.number
    }

    /// The build with this number is inserted: keep the number listed until a read shows it.
    pub fn inserted(mut self) {
        self.inserted = true;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut products = self.owner.lock();
        let numbers = products.entry(self.product_id).or_default();
        numbers.reserved.remove(&self.number);
        if self.inserted {
            numbers.inserted.insert(self.number);
        } else if numbers.reserved.is_empty() && numbers.inserted.is_empty() {
            products.remove(&self.product_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_is_held_while_reserved_and_after_insertion_until_a_read_shows_it() {
        let numbers = Arc::new(NumbersInFlight::default());
        let first = numbers.reserve_from(7, 3);
        assert_eq!(first.number(), 3);
        assert_eq!(
            numbers.reserve_from(7, 3).number(),
            4,
            "3 is taken; the 4 drops at once"
        );
        let other_product = numbers.reserve_from(8, 3);
        assert_eq!(other_product.number(), 3);
        assert_eq!(numbers.passed_over(7), HashSet::from([3]));

        // A failed registration gives its number back.
        drop(first);
        assert!(numbers.passed_over(7).is_empty());

        // An inserted one keeps it until a read of the database finds it taken.
        numbers.reserve_from(7, 3).inserted();
        numbers.reserve_from(7, 3).inserted();
        assert_eq!(numbers.passed_over(7), HashSet::from([3, 4]));
        assert_eq!(numbers.reserve_from(7, 3).number(), 5);
        numbers.forget_below(7, 4);
        assert_eq!(numbers.passed_over(7), HashSet::from([4]));
        numbers.forget_below(7, 5);
        assert!(numbers.lock().get(&7).is_none());

        drop(other_product);
        assert!(numbers.lock().get(&8).is_none());
    }
}
