//! The projections of the service, each written once for every store: what it derives from
//! the log, and, as a model trait, the reads and writes it needs inside the store's unit of
//! work, named in the read model's terms. A store implements the model traits on its unit of
//! work; the SQL (or whatever else) stays in the store.

pub mod activity;
pub mod member_contacts;
pub mod outbox;
