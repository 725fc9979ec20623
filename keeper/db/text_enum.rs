//! Closed vocabularies stored as text columns and read back as their enums, on both backends:
//! a layout, store kind, CDN kind, tracking mode, edition kind, operation kind or state is never
//! a bare `String` once it leaves the database. The columns' `CHECK` constraints hold the same
//! names, so a row never carries a value the enum lacks (a newer schema is refused at start).

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::Text;

use crate::domain::{
    CdnKind, DeliveryState, EditionKind, HistoryReason, OperationKind, OperationState, StoreKind,
    TrackingMode, UrlLayout, WebhookEvent,
};

macro_rules! text_enum {
    ($($ty:ty),+ $(,)?) => {$(
        impl<DB> FromSql<Text, DB> for $ty
        where
            DB: Backend,
            String: FromSql<Text, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
                let raw = <String as FromSql<Text, DB>>::from_sql(bytes)?;
                <$ty>::parse(&raw).map_err(|err| err.to_string().into())
            }
        }

        impl<DB> ToSql<Text, DB> for $ty
        where
            DB: Backend,
            str: ToSql<Text, DB>,
        {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
                <str as ToSql<Text, DB>>::to_sql(self.as_str(), out)
            }
        }
    )+};
}

text_enum!(
    UrlLayout,
    StoreKind,
    CdnKind,
    TrackingMode,
    EditionKind,
    OperationKind,
    OperationState,
    HistoryReason,
    WebhookEvent,
    DeliveryState,
);
