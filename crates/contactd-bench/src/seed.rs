//! The data the scenarios run on, made over gRPC like any client would: accounts × contacts,
//! one contact whose stream holds a long history, short-history contacts to compare it with,
//! a resource directory of many members with contacts bound at every level (`list-member`),
//! small directories with contacts to bind and unbind (`associate`), and `bench_contacts`,
//! which maps 1..n to the seeded contacts for the pgbench scripts.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use contactd_grpc::proto::{
    AssociateMembersRequest, GetResourceDirectoryRequest, ListMessageContactsRequest,
    RegisterFolderRequest, RegisterMemberRequest, UpdateMessageContactRequest,
};
use tokio::task::JoinSet;

use crate::client::{Account, ContactRef, Fleet, add_request, letters_name};
use crate::db::Db;

/// Account families (the first digit of their ids), so that no two uses share an account.
pub const SEEDED_FAMILY: u8 = 1;
pub const ADDED_FAMILY: u8 = 2;
pub const HISTORY_FAMILY: u8 = 3;
/// The dispatch benchmark's contacts, one per send (`dispatch.rs`).
pub const DISPATCH_FAMILY: u8 = 4;
/// The account whose directory `list-member` reads.
pub const DIRECTORY_FAMILY: u8 = 5;
/// The accounts of `associate`, one per task.
pub const BINDING_FAMILY: u8 = 6;

/// The projection that serves `ListMessageContacts(member=…)` (table `effective_contacts`).
pub const MEMBER_CONTACTS: &str = "member_contacts";

/// The contacts of the `list-member` account: the server's quota of one account.
pub const DIRECTORY_CONTACTS: usize = 20;
/// The page `list-member` asks for: every contact that applies fits in it.
pub const DIRECTORY_PAGE_SIZE: i32 = 20;

/// How much to seed.
#[derive(Debug, Clone)]
pub struct SeedPlan {
    pub accounts: usize,
    pub contacts_per_account: usize,
    /// Events in the long stream (its add included).
    pub long_stream_events: usize,
    /// Events in each short stream (its add included).
    pub short_stream_events: usize,
    /// Short streams to make: one per run that updates one, so each starts short.
    pub short_streams: usize,
    /// Calls in flight while seeding.
    pub concurrency: usize,
}

/// What was seeded.
#[derive(Debug, Clone)]
pub struct Seeded {
    pub accounts: Vec<Account>,
    pub contacts: Vec<ContactRef>,
    pub long_stream: ContactRef,
    pub short_streams: Vec<ContactRef>,
}

/// What to seed for the scenarios of the resource directory (`list-member`, `associate`).
#[derive(Debug, Clone)]
pub struct DirectoryPlan {
    /// Member accounts in the directory of `list-member` (0: no such directory).
    pub members: usize,
    /// Accounts of `associate`, one per task of its largest run (0: none).
    pub binding_accounts: usize,
    /// Accounts seeded at once.
    pub concurrency: usize,
    /// The longest wait for the lifecycle worker to carry out the jobs the seeding's bindings
    /// recorded.
    pub jobs_patience: Duration,
}

/// The resource directories, seeded just before the first run that needs them, so that the
/// runs before are those of the earlier benchmark exactly.
#[derive(Debug, Clone)]
pub struct Directories {
    /// The directory of `list-member`, if seeded.
    pub directory: Option<MemberDirectory>,
    /// The accounts of `associate`, one per task.
    pub bindings: Vec<BindingSlot>,
    /// How long the calls of the seeding took (not the wait for the jobs).
    pub seeded_in: Duration,
    /// The lifecycle jobs pending when the seeding's calls were done (one for each member
    /// account a contact came to apply to), …
    pub jobs: i64,
    /// … and how long the lifecycle worker took to carry them all out (`None`: not within
    /// the patience; the runs then share the machine with it).
    pub jobs_done_in: Option<Duration>,
}

/// The directory `list-member` reads: root → F1 → F2 → F3 → F4 and other folders, member
/// accounts spread over them, and the account's contacts bound at every level.
#[derive(Debug, Clone)]
pub struct MemberDirectory {
    pub account: Account,
    pub resource_directory_id: String,
    pub folders: usize,
    pub members: usize,
    /// A member account in F4, four folders below the root: the member every call asks for.
    pub deep_member: String,
    /// The contacts of the account (all of them, bound or not).
    pub contacts: usize,
    /// The contacts that apply to `deep_member`: bound to it, to F1..F4 or to the root.
    pub applying: BTreeSet<String>,
    /// How long after the last binding's answer the projection listed them all for the member.
    pub visible_after: Duration,
    /// How long the directory took to seed (folders, members, contacts, bindings).
    pub seeded_in: Duration,
}

/// What one task of `associate` binds and unbinds: an account with a directory of one folder
/// (one member in it) and one member at the root, two contacts bound to the root for good,
/// and two targets (the folder and the member at the root). Binding or unbinding them never
/// changes which member accounts the contacts apply to, so the calls record no lifecycle job
/// (no integration event): a run leaves no backlog behind for the next.
#[derive(Debug, Clone)]
pub struct BindingSlot {
    pub account: Account,
    pub contacts: Vec<String>,
    pub targets: Vec<String>,
}

impl BindingSlot {
    /// The (contact, target) pairs, each bound or unbound by turns.
    pub fn pairs(&self) -> usize {
        self.contacts.len() * self.targets.len()
    }

    /// The slot's call `n` (counting successful calls only, from a state with nothing bound):
    /// its contact, its target, and whether it binds (else it unbinds). Consecutive calls go
    /// to different contacts; each call changes one binding, so it appends one event.
    pub fn call(&self, n: u64) -> (&str, &str, bool) {
        let pairs = self.pairs().max(1) as u64;
        let pair = (n % pairs) as usize;
        let contacts = self.contacts.len().max(1);
        let contact = &self.contacts[pair % contacts];
        let target = &self.targets[pair / contacts];
        (contact, target, (n / pairs).is_multiple_of(2))
    }
}

/// Runs `f(0..count)` with `concurrency` calls in flight and returns the results in order.
pub async fn parallel<T, F, Fut>(concurrency: usize, count: usize, f: F) -> anyhow::Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<T>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let f = Arc::new(f);
    let mut workers = JoinSet::new();
    for _ in 0..concurrency.clamp(1, count.max(1)) {
        let (next, f) = (next.clone(), f.clone());
        workers.spawn(async move {
            let mut done = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= count {
                    return anyhow::Ok(done);
                }
                done.push((index, f(index).await?));
            }
        });
    }
    let mut results: Vec<Option<T>> = (0..count).map(|_| None).collect();
    while let Some(worker) = workers.join_next().await {
        for (index, value) in worker.context("a seeding task panicked")?? {
            results[index] = Some(value);
        }
    }
    results
        .into_iter()
        .map(|r| r.context("a seeding call did not run"))
        .collect()
}

async fn add(
    fleet: &Fleet,
    task: usize,
    account: &Account,
    name: String,
) -> anyhow::Result<ContactRef> {
    let email = format!("{}@seed.example", name.to_lowercase());
    let response = fleet
        .client(task)
        .add_message_contact(account.request(add_request(name, email)))
        .await
        .with_context(|| format!("seeding a contact of account {}", account.id()))?;
    let contact = response.into_inner().contact.context("the added contact")?;
    Ok(ContactRef {
        account: account.clone(),
        contact_id: contact.contact_id,
    })
}

/// One update that appends one event: a fresh email address.
pub fn fresh_email_update(contact: &ContactRef, serial: u64) -> UpdateMessageContactRequest {
    UpdateMessageContactRequest {
        contact_id: contact.contact_id.clone(),
        email_address: Some(format!("u{serial}@bench.example")),
        ..Default::default()
    }
}

/// Appends `events` events to `contact`'s stream with `concurrency` calls in flight.
async fn grow(
    fleet: &Fleet,
    contact: &ContactRef,
    events: usize,
    concurrency: usize,
    serial_base: u64,
) -> anyhow::Result<()> {
    let (fleet, contact) = (fleet.clone(), contact.clone());
    parallel(concurrency, events, move |i| {
        let (fleet, contact) = (fleet.clone(), contact.clone());
        async move {
            fleet
                .client(i)
                .update_message_contact(
                    contact
                        .account
                        .request(fresh_email_update(&contact, serial_base + i as u64)),
                )
                .await
                .context("growing a stream")?;
            anyhow::Ok(())
        }
    })
    .await?;
    Ok(())
}

/// Seeds everything in `plan` over gRPC, then writes `bench_contacts` (on PostgreSQL).
pub async fn seed(fleet: &Fleet, db: &Db, plan: &SeedPlan) -> anyhow::Result<Seeded> {
    let accounts: Vec<Account> = (0..plan.accounts)
        .map(|a| Account::numbered(SEEDED_FAMILY, a as u64 + 1))
        .collect();
    let per_account = plan.contacts_per_account.max(1);
    let contacts = {
        let (fleet, accounts) = (fleet.clone(), accounts.clone());
        parallel(plan.concurrency, plan.accounts * per_account, move |i| {
            let (fleet, account) = (fleet.clone(), accounts[i / per_account].clone());
            async move { add(&fleet, i, &account, letters_name("Seed", i % per_account)).await }
        })
        .await?
    };

    let history = |n: usize| Account::numbered(HISTORY_FAMILY, n as u64 + 1);
    let long_stream = add(fleet, 0, &history(0), "Longstream".to_owned()).await?;
    grow(
        fleet,
        &long_stream,
        plan.long_stream_events.saturating_sub(1),
        plan.concurrency,
        1_000_000_000,
    )
    .await?;
    let mut short_streams = Vec::with_capacity(plan.short_streams);
    for s in 0..plan.short_streams {
        let contact = add(fleet, 0, &history(s + 1), "Shortstream".to_owned()).await?;
        let serial_base = 2_000_000_000 + (s as u64) * 1_000_000;
        grow(
            fleet,
            &contact,
            plan.short_stream_events.saturating_sub(1),
            1,
            serial_base,
        )
        .await?;
        short_streams.push(contact);
    }

    db.write_bench_contacts(&contacts).await?;
    Ok(Seeded {
        accounts,
        contacts,
        long_stream,
        short_streams,
    })
}

/// The tables of the resource directory mirror and of the `member_contacts` projection.
const DIRECTORY_TABLES: &str =
    "directories, directory_nodes, contact_bindings, effective_contacts, lifecycle_jobs";

/// Seeds the directories of `plan`, then waits for the lifecycle worker to carry out the jobs
/// their bindings recorded (a binding to a folder or the root records one for every member
/// it comes to apply to), so that no run is timed beside that backlog.
pub async fn seed_directories(
    fleet: &Fleet,
    db: &Db,
    plan: &DirectoryPlan,
) -> anyhow::Result<Directories> {
    let started = Instant::now();
    let bindings = seed_binding_slots(fleet, plan.binding_accounts, plan.concurrency).await?;
    let directory = if plan.members > 0 {
        Some(seed_directory(fleet, plan.members).await?)
    } else {
        None
    };
    let seeded_in = started.elapsed();
    // The projection records the jobs as it reads the bindings.
    wait_for_projection(db, MEMBER_CONTACTS, plan.jobs_patience).await?;
    // PostgreSQL's autovacuum may be off (it is on the benchmark's machine): the statistics of
    // these tables, empty until now, would stay those of empty tables. Analyse them, as
    // autovacuum would have; the server's generic plans over them are made again.
    db.analyze(DIRECTORY_TABLES).await?;
    let jobs = db.pending_lifecycle_jobs().await?;
    eprintln!(
        "[{}] seeded the directories in {:.1} s; waiting for the lifecycle worker's {jobs} jobs",
        db.kind(),
        seeded_in.as_secs_f64()
    );
    let jobs_done_in = wait_for_lifecycle_jobs(db, plan.jobs_patience).await?;
    if let Some(done_in) = jobs_done_in {
        eprintln!(
            "[{}] the lifecycle jobs were carried out in {:.1} s",
            db.kind(),
            done_in.as_secs_f64()
        );
    }
    db.analyze(DIRECTORY_TABLES).await?;
    Ok(Directories {
        directory,
        bindings,
        seeded_in,
        jobs,
        jobs_done_in,
    })
}

/// A folder id of the benchmark: `fd-`, then `prefix` and `n` in 10 characters `[A-Za-z0-9]`.
fn folder_id(prefix: &str, n: usize) -> String {
    let width = 10usize.saturating_sub(prefix.len());
    format!("fd-{prefix}{n:0width$}")
}

/// A member account id of the benchmark: 16 digits, `family` first.
fn member_account_id(family: u8, n: usize) -> String {
    format!("{family}{n:015}")
}

/// The caller's directory id, creating the directory.
async fn directory_id(fleet: &Fleet, task: usize, account: &Account) -> anyhow::Result<String> {
    Ok(fleet
        .directory(task)
        .get_resource_directory(account.request(GetResourceDirectoryRequest {}))
        .await
        .with_context(|| format!("creating the directory of account {}", account.id()))?
        .into_inner()
        .resource_directory_id)
}

async fn register_folder(
    fleet: &Fleet,
    task: usize,
    account: &Account,
    folder_id: &str,
    parent_id: &str,
) -> anyhow::Result<()> {
    fleet
        .directory(task)
        .register_folder(account.request(RegisterFolderRequest {
            folder_id: folder_id.to_owned(),
            parent_id: parent_id.to_owned(),
        }))
        .await
        .with_context(|| format!("registering folder {folder_id}"))?;
    Ok(())
}

async fn register_member(
    fleet: &Fleet,
    task: usize,
    account: &Account,
    account_id: &str,
    folder_id: &str,
) -> anyhow::Result<()> {
    fleet
        .directory(task)
        .register_member(account.request(RegisterMemberRequest {
            account_id: account_id.to_owned(),
            folder_id: folder_id.to_owned(),
        }))
        .await
        .with_context(|| format!("registering member {account_id}"))?;
    Ok(())
}

async fn associate(
    fleet: &Fleet,
    task: usize,
    account: &Account,
    contact_id: &str,
    members: &[&str],
) -> anyhow::Result<()> {
    fleet
        .client(task)
        .associate_members(account.request(AssociateMembersRequest {
            contact_id: contact_id.to_owned(),
            members: members.iter().map(|m| (*m).to_owned()).collect(),
            client_token: String::new(),
        }))
        .await
        .with_context(|| format!("binding {contact_id} to {members:?}"))?;
    Ok(())
}

/// The directory of `list-member`: 12 folders (the chain root → F1 → F2 → F3 → F4; four more
/// under the root, one under O1; one beside the chain under each of F1, F2, F3), `members`
/// member accounts spread over the root and the folders by turns (the first in F4), and 20
/// contacts: 9 apply to that first member (one bound to the root, one to each of F1, F2, F3,
/// two to F4, one to the member itself, one to F4 and the member, one to F4 and another
/// member), 5 are bound elsewhere (other members, folders off the chain), 6 are unbound.
///
/// The directory's changes are made one at a time: each is appended at the version it was
/// decided on, so concurrent ones would only conflict.
async fn seed_directory(fleet: &Fleet, members: usize) -> anyhow::Result<MemberDirectory> {
    anyhow::ensure!(
        members >= 3,
        "the directory of list-member needs at least 3 members"
    );
    let started = Instant::now();
    let account = Account::numbered(DIRECTORY_FAMILY, 1);
    let root = directory_id(fleet, 0, &account).await?;
    // (folder, index of its parent in this list; None: the root)
    let layout: [(&str, Option<usize>); 12] = [
        ("F1", None),
        ("F2", Some(0)),
        ("F3", Some(1)),
        ("F4", Some(2)),
        ("O1", None),
        ("O2", None),
        ("O3", None),
        ("O4", None),
        ("S1", Some(0)),
        ("S2", Some(1)),
        ("S3", Some(2)),
        ("O1a", Some(4)),
    ];
    let folders: Vec<String> = (0..layout.len())
        .map(|i| folder_id("Bench", i + 1))
        .collect();
    for (i, (_, parent)) in layout.iter().enumerate() {
        let parent = parent.map_or("", |p| folders[p].as_str());
        register_folder(fleet, 0, &account, &folders[i], parent).await?;
    }
    let f = |name: &str| {
        let i = layout.iter().position(|(n, _)| *n == name).unwrap_or(0);
        folders[i].as_str()
    };
    // Places by turns: the root, then each folder; member 0 goes to F4 (place 4).
    let places = layout.len() + 1;
    let member_ids: Vec<String> = (0..members)
        .map(|n| member_account_id(DIRECTORY_FAMILY, n + 1))
        .collect();
    for (n, member) in member_ids.iter().enumerate() {
        let place = (n + 4) % places;
        let folder = if place == 0 {
            ""
        } else {
            folders[place - 1].as_str()
        };
        register_member(fleet, 0, &account, member, folder).await?;
    }
    let deep = member_ids[0].as_str();
    let (other, another) = (member_ids[1].as_str(), member_ids[2].as_str());

    let contacts = {
        let (fleet, account) = (fleet.clone(), account.clone());
        parallel(8, DIRECTORY_CONTACTS, move |i| {
            let (fleet, account) = (fleet.clone(), account.clone());
            async move { add(&fleet, i, &account, letters_name("Dir", i)).await }
        })
        .await?
    };
    let root = root.as_str();
    // (contact, targets, applies to the deep member)
    // Each (member, contact) pair this makes records a lifecycle job: about 2,700 for 1,000
    // members, most of them from the root and F1.
    let bindings: [(usize, Vec<&str>, bool); 14] = [
        (0, vec![root], true),
        (1, vec![f("F1")], true),
        (2, vec![f("F2")], true),
        (3, vec![f("F3")], true),
        (4, vec![f("F4")], true),
        (5, vec![f("F4")], true),
        (6, vec![deep], true),
        (7, vec![f("F4"), deep], true),
        (8, vec![f("F4"), other], true),
        (9, vec![other], false),
        (10, vec![another], false),
        (11, vec![f("O1a")], false),
        (12, vec![f("S3")], false),
        (13, vec![f("O4")], false),
    ];
    let mut applying = BTreeSet::new();
    for (c, targets, applies) in &bindings {
        let contact = &contacts[*c].contact_id;
        associate(fleet, *c, &account, contact, targets).await?;
        if *applies {
            applying.insert(contact.clone());
        }
    }
    let bound_at = Instant::now();
    let patience = Duration::from_secs(60);
    loop {
        let listed = list_member(fleet, &account, deep).await?;
        if listed == applying {
            break;
        }
        if bound_at.elapsed() > patience {
            anyhow::bail!(
                "after {patience:?}, ListMessageContacts(member={deep}) lists {} contacts, not the {} that apply",
                listed.len(),
                applying.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(MemberDirectory {
        resource_directory_id: root.to_owned(),
        folders: folders.len(),
        members,
        deep_member: deep.to_owned(),
        contacts: contacts.len(),
        applying,
        visible_after: bound_at.elapsed(),
        seeded_in: started.elapsed(),
        account,
    })
}

/// The contacts `ListMessageContacts(member=…)` lists for `member` (one page, which holds
/// them all).
pub async fn list_member(
    fleet: &Fleet,
    account: &Account,
    member: &str,
) -> anyhow::Result<BTreeSet<String>> {
    let page = fleet
        .client(0)
        .list_message_contacts(account.request(ListMessageContactsRequest {
            member: member.to_owned(),
            page_size: DIRECTORY_PAGE_SIZE,
            ..Default::default()
        }))
        .await
        .with_context(|| format!("listing the contacts of member {member}"))?
        .into_inner();
    let listed: BTreeSet<String> = page.contacts.into_iter().map(|c| c.contact_id).collect();
    anyhow::ensure!(
        page.total_count == listed.len() as i64,
        "ListMessageContacts(member={member}) counts {} contacts on a page of {}",
        page.total_count,
        listed.len()
    );
    Ok(listed)
}

/// `count` accounts for `associate`, each with its directory and two contacts bound to its
/// root.
async fn seed_binding_slots(
    fleet: &Fleet,
    count: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<BindingSlot>> {
    let fleet = fleet.clone();
    parallel(concurrency, count, move |s| {
        let fleet = fleet.clone();
        async move {
            let account = Account::numbered(BINDING_FAMILY, s as u64 + 1);
            let root = directory_id(&fleet, s, &account).await?;
            let folder = folder_id("Bind", 1);
            register_folder(&fleet, s, &account, &folder, "").await?;
            let in_folder = member_account_id(BINDING_FAMILY, 1);
            let at_root = member_account_id(BINDING_FAMILY, 2);
            register_member(&fleet, s, &account, &in_folder, &folder).await?;
            register_member(&fleet, s, &account, &at_root, "").await?;
            let mut contacts = Vec::new();
            for c in 0..2 {
                let contact = add(&fleet, s, &account, letters_name("Bind", c))
                    .await?
                    .contact_id;
                associate(&fleet, s, &account, &contact, &[root.as_str()]).await?;
                contacts.push(contact);
            }
            anyhow::Ok(BindingSlot {
                account,
                contacts,
                targets: vec![folder, at_root],
            })
        }
    })
    .await
}

/// Waits until the projection `name` has read the whole log, for at most `patience`; answers
/// how long that took (`None`: not within `patience`, with a warning).
pub async fn wait_for_projection(
    db: &Db,
    name: &str,
    patience: Duration,
) -> anyhow::Result<Option<Duration>> {
    let started = Instant::now();
    loop {
        let behind = db.projection_behind(name).await?;
        if behind == 0 {
            return Ok(Some(started.elapsed()));
        }
        if started.elapsed() > patience {
            eprintln!(
                "[{}] warning: the projection {name} is still {behind} events behind after {patience:?}; going on",
                db.kind()
            );
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the lifecycle worker has carried out every pending job, for at most
/// `patience`, and answers how long that took; after `patience` it goes on with a warning
/// (`None`): the runs are then disturbed, not wrong.
pub async fn wait_for_lifecycle_jobs(
    db: &Db,
    patience: Duration,
) -> anyhow::Result<Option<Duration>> {
    let started = Instant::now();
    loop {
        let pending = db.pending_lifecycle_jobs().await?;
        if pending == 0 {
            return Ok(Some(started.elapsed()));
        }
        if started.elapsed() > patience {
            eprintln!(
                "[{}] warning: {pending} lifecycle jobs still pending after {patience:?}; going on",
                db.kind()
            );
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_turns_bind_every_pair_then_unbind_it_on_alternate_contacts() {
        let slot = BindingSlot {
            account: Account::numbered(BINDING_FAMILY, 1),
            contacts: vec!["c0".into(), "c1".into()],
            targets: vec!["fd".into(), "m".into()],
        };
        let calls: Vec<(&str, &str, bool)> = (0..8).map(|n| slot.call(n)).collect();
        assert_eq!(
            calls,
            [
                ("c0", "fd", true),
                ("c1", "fd", true),
                ("c0", "m", true),
                ("c1", "m", true),
                ("c0", "fd", false),
                ("c1", "fd", false),
                ("c0", "m", false),
                ("c1", "m", false),
            ]
        );
        assert_eq!(slot.call(8), slot.call(0));
    }

    #[test]
    fn directory_ids_have_the_contract_shape() {
        for id in [folder_id("Bench", 12), folder_id("Bind", 1)] {
            let body = id.strip_prefix("fd-").expect("fd- first");
            assert_eq!(body.len(), 10, "{id}");
            assert!(body.bytes().all(|b| b.is_ascii_alphanumeric()), "{id}");
        }
        let member = member_account_id(DIRECTORY_FAMILY, 1000);
        assert_eq!(member.len(), 16);
        assert!(member.bytes().all(|b| b.is_ascii_digit()));
    }
}
