//! The projections on SQLite: the unit of work ([`SqliteWork`]) on which the read models'
//! model traits are implemented (each beside its SQL), the runner's store side
//! ([`contactd_app::ProjectionStore`]) and the rebuild of a projection. The projections
//! themselves, and the runner's loop, are the application's.

mod activity;
mod member_contacts;
mod outbox;
mod rebuild;
mod runner;
#[cfg(test)]
mod tests;
mod work;

pub use rebuild::rebuild_projection;
pub use runner::SqliteLease;
pub use work::SqliteWork;

use contactd_app::{MemberContacts, VerificationOutbox};

use crate::SqliteStore;

impl SqliteStore {
    /// The live member-contacts projection, recording lifecycle jobs and waking this store's
    /// lifecycle worker.
    pub fn member_contacts(&self) -> MemberContacts {
        MemberContacts::live(self.jobs_recorded.clone())
    }

    /// The projection that records verification messages in this store's outbox, waking this
    /// store's dispatcher.
    pub fn verification_outbox(&self) -> VerificationOutbox {
        VerificationOutbox::new(self.outbox_recorded.clone())
    }
}
