//! Building contacts, commands and appends for the PostgreSQL-only store tests: the
//! conformance suite's fixtures.

pub use contactd_store_conformance::fixtures::{
    account, ctx, metadata, new_contact, stored_contacts,
};
