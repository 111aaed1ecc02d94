//! Quoting for the SQL the precheck reads with, and shows in remedies: the engine's one quoting
//! function (schema::quote). Values are always bound as parameters, never quoted.

pub use crate::schema::quote::{quote_ident, quote_qualified as qualified};
