//! Which constraint a failed statement broke, the same on both backends.
//!
//! SQLite enforces `ON DELETE RESTRICT` with an internal trigger, so that violation arrives with
//! a generic constraint code that diesel reports as `Unknown`; it is a foreign-key violation all
//! the same, and callers must treat it as one (a 409/422, never a 500).

use diesel::result::{DatabaseErrorKind, Error as DieselError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    Unique,
    ForeignKey,
    NotNull,
    Check,
}

/// The constraint `err` broke, if it is a constraint violation.
pub fn violation(err: &DieselError) -> Option<Violation> {
    let DieselError::DatabaseError(kind, info) = err else {
        return None;
    };
    match kind {
        DatabaseErrorKind::UniqueViolation => Some(Violation::Unique),
        DatabaseErrorKind::ForeignKeyViolation => Some(Violation::ForeignKey),
        DatabaseErrorKind::NotNullViolation => Some(Violation::NotNull),
        DatabaseErrorKind::CheckViolation => Some(Violation::Check),
        _ if info.message() == "FOREIGN KEY constraint failed" => Some(Violation::ForeignKey),
        _ => None,
    }
}
