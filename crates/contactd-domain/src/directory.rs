//! The resource directory mirror: an account's tree of folders and member accounts, as the
//! directory service reports it. Event-sourced like a contact (a stream per account), so that
//! bindings are checked against it and inheritance follows it. Pure, like every aggregate.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::{AccountId, FolderId, MemberAccountId, MemberId, ResourceDirectoryId};

/// Everything that can happen to a directory, in the past tense.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectoryEvent {
    /// The directory was first used; it starts every directory's stream.
    ResourceDirectoryCreated {
        resource_directory_id: ResourceDirectoryId,
    },
    /// A folder under `parent_id` (the root when `None`).
    FolderRegistered {
        folder_id: FolderId,
        parent_id: Option<FolderId>,
    },
    FolderRemoved {
        folder_id: FolderId,
    },
    /// A member account in `folder_id` (the root when `None`).
    MemberRegistered {
        account_id: MemberAccountId,
        folder_id: Option<FolderId>,
    },
    MemberMoved {
        account_id: MemberAccountId,
        from: Option<FolderId>,
        to: Option<FolderId>,
    },
    MemberRemoved {
        account_id: MemberAccountId,
        folder_id: Option<FolderId>,
    },
}

impl DirectoryEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            DirectoryEvent::ResourceDirectoryCreated { .. } => "ResourceDirectoryCreated",
            DirectoryEvent::FolderRegistered { .. } => "FolderRegistered",
            DirectoryEvent::FolderRemoved { .. } => "FolderRemoved",
            DirectoryEvent::MemberRegistered { .. } => "MemberRegistered",
            DirectoryEvent::MemberMoved { .. } => "MemberMoved",
            DirectoryEvent::MemberRemoved { .. } => "MemberRemoved",
        }
    }

    /// The stream of an account's directory.
    pub fn stream_id(account_id: &AccountId) -> String {
        format!("directory-{account_id}")
    }

    /// The binding target a removal takes out of the directory, if this is a removal.
    pub fn removed_target(&self) -> Option<MemberId> {
        match self {
            DirectoryEvent::FolderRemoved { folder_id } => {
                Some(MemberId::Folder(folder_id.clone()))
            }
            DirectoryEvent::MemberRemoved { account_id, .. } => {
                Some(MemberId::Account(account_id.clone()))
            }
            _ => None,
        }
    }
}

/// A directory command its state does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryRejection {
    /// `EntityNotExists.Folder`: the folder (or the parent named) is not in the directory.
    #[error("the folder does not exist in the directory")]
    FolderNotFound,
    /// `EntityNotExists.Member`
    #[error("the member does not exist in the directory")]
    MemberNotFound,
    /// `EntityAlreadyExists.Folder`
    #[error("the folder already exists in the directory")]
    FolderExists,
    /// `EntityAlreadyExists.Member`
    #[error("the member already exists in the directory")]
    MemberExists,
    /// `FolderNotEmpty`: a folder holds folders or members.
    #[error("the folder still holds folders or members")]
    FolderNotEmpty,
}

/// An account's directory: the fold of its stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directory {
    pub account_id: AccountId,
    pub resource_directory_id: ResourceDirectoryId,
    /// Each folder with its parent (`None`: the root).
    pub folders: BTreeMap<FolderId, Option<FolderId>>,
    /// Each member account with its folder (`None`: the root).
    pub members: BTreeMap<MemberAccountId, Option<FolderId>>,
    pub updated_at: DateTime<Utc>,
    /// The number of events in the directory's stream.
    pub version: u64,
}

impl Directory {
    /// The event that starts a directory, on its first use.
    pub fn create(resource_directory_id: ResourceDirectoryId) -> DirectoryEvent {
        DirectoryEvent::ResourceDirectoryCreated {
            resource_directory_id,
        }
    }

    /// The state after the stream's first event, or `None` if it is not the creation.
    pub fn created(
        account_id: AccountId,
        event: &DirectoryEvent,
        at: DateTime<Utc>,
    ) -> Option<Self> {
        let DirectoryEvent::ResourceDirectoryCreated {
            resource_directory_id,
        } = event
        else {
            return None;
        };
        Some(Self {
            account_id,
            resource_directory_id: resource_directory_id.clone(),
            folders: BTreeMap::new(),
            members: BTreeMap::new(),
            updated_at: at,
            version: 1,
        })
    }

    pub fn register_folder(
        &self,
        folder_id: &FolderId,
        parent_id: Option<&FolderId>,
    ) -> Result<DirectoryEvent, DirectoryRejection> {
        if self.folders.contains_key(folder_id) {
            return Err(DirectoryRejection::FolderExists);
        }
        self.folder_exists(parent_id)?;
        Ok(DirectoryEvent::FolderRegistered {
            folder_id: folder_id.clone(),
            parent_id: parent_id.cloned(),
        })
    }

    pub fn remove_folder(
        &self,
        folder_id: &FolderId,
    ) -> Result<DirectoryEvent, DirectoryRejection> {
        if !self.folders.contains_key(folder_id) {
            return Err(DirectoryRejection::FolderNotFound);
        }
        let holds = |parent: &Option<FolderId>| parent.as_ref() == Some(folder_id);
        if self.folders.values().any(holds) || self.members.values().any(holds) {
            return Err(DirectoryRejection::FolderNotEmpty);
        }
        Ok(DirectoryEvent::FolderRemoved {
            folder_id: folder_id.clone(),
        })
    }

    pub fn register_member(
        &self,
        account_id: &MemberAccountId,
        folder_id: Option<&FolderId>,
    ) -> Result<DirectoryEvent, DirectoryRejection> {
        if self.members.contains_key(account_id) {
            return Err(DirectoryRejection::MemberExists);
        }
        self.folder_exists(folder_id)?;
        Ok(DirectoryEvent::MemberRegistered {
            account_id: account_id.clone(),
            folder_id: folder_id.cloned(),
        })
    }

    /// A move into the folder the member is in already changes nothing: no event.
    pub fn move_member(
        &self,
        account_id: &MemberAccountId,
        folder_id: Option<&FolderId>,
    ) -> Result<Option<DirectoryEvent>, DirectoryRejection> {
        let from = self
            .members
            .get(account_id)
            .ok_or(DirectoryRejection::MemberNotFound)?;
        self.folder_exists(folder_id)?;
        if from.as_ref() == folder_id {
            return Ok(None);
        }
        Ok(Some(DirectoryEvent::MemberMoved {
            account_id: account_id.clone(),
            from: from.clone(),
            to: folder_id.cloned(),
        }))
    }

    pub fn remove_member(
        &self,
        account_id: &MemberAccountId,
    ) -> Result<DirectoryEvent, DirectoryRejection> {
        let folder_id = self
            .members
            .get(account_id)
            .ok_or(DirectoryRejection::MemberNotFound)?;
        Ok(DirectoryEvent::MemberRemoved {
            account_id: account_id.clone(),
            folder_id: folder_id.clone(),
        })
    }

    /// Applies one event recorded at `at`; it only assigns.
    pub fn apply(&mut self, event: &DirectoryEvent, at: DateTime<Utc>) {
        match event {
            DirectoryEvent::ResourceDirectoryCreated { .. } => {}
            DirectoryEvent::FolderRegistered {
                folder_id,
                parent_id,
            } => {
                self.folders.insert(folder_id.clone(), parent_id.clone());
            }
            DirectoryEvent::FolderRemoved { folder_id } => {
                self.folders.remove(folder_id);
            }
            DirectoryEvent::MemberRegistered {
                account_id,
                folder_id,
            } => {
                self.members.insert(account_id.clone(), folder_id.clone());
            }
            DirectoryEvent::MemberMoved { account_id, to, .. } => {
                self.members.insert(account_id.clone(), to.clone());
            }
            DirectoryEvent::MemberRemoved { account_id, .. } => {
                self.members.remove(account_id);
            }
        }
        self.updated_at = at;
        self.version += 1;
    }

    /// Folds a whole stream; `None` if it is empty or does not start with the creation.
    pub fn fold<'a>(
        account_id: AccountId,
        events: impl IntoIterator<Item = (&'a DirectoryEvent, DateTime<Utc>)>,
    ) -> Option<Self> {
        let mut events = events.into_iter();
        let (first, at) = events.next()?;
        let mut directory = Self::created(account_id, first, at)?;
        for (event, at) in events {
            directory.apply(event, at);
        }
        Some(directory)
    }

    /// Whether a binding target is this directory's root, one of its folders or members.
    pub fn contains(&self, target: &MemberId) -> bool {
        match target {
            MemberId::Directory(id) => *id == self.resource_directory_id,
            MemberId::Folder(id) => self.folders.contains_key(id),
            MemberId::Account(id) => self.members.contains_key(id),
        }
    }

    /// The member accounts a set of targets applies to: each member bound directly, and every
    /// member below a bound folder or the root, at any depth.
    pub fn members_under(&self, targets: &[MemberId]) -> BTreeSet<MemberAccountId> {
        self.members
            .keys()
            .filter(|member| {
                let node = MemberId::Account((*member).clone());
                self.lineage(&node).iter().any(|n| targets.contains(n))
            })
            .cloned()
            .collect()
    }

    /// A node and every node above it, up to and including the root; empty if it is not in
    /// the directory.
    pub fn lineage(&self, node: &MemberId) -> Vec<MemberId> {
        if !self.contains(node) {
            return Vec::new();
        }
        let root = MemberId::Directory(self.resource_directory_id.clone());
        let mut lineage = vec![node.clone()];
        let mut parent = match node {
            MemberId::Directory(_) => return lineage,
            MemberId::Folder(id) => self.folders.get(id).cloned().flatten(),
            MemberId::Account(id) => self.members.get(id).cloned().flatten(),
        };
        // Folders never move and a parent must exist first, so the chain has no cycle; the
        // bound is there all the same.
        while let Some(folder) = parent.take() {
            if lineage.len() > self.folders.len() + 1 {
                break;
            }
            parent = self.folders.get(&folder).cloned().flatten();
            lineage.push(MemberId::Folder(folder));
        }
        lineage.push(root);
        lineage
    }

    fn folder_exists(&self, folder_id: Option<&FolderId>) -> Result<(), DirectoryRejection> {
        match folder_id {
            Some(id) if !self.folders.contains_key(id) => Err(DirectoryRejection::FolderNotFound),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    //! Given the directory's events, when a command is decided, then this event or rejection.

    use chrono::TimeZone;

    use super::*;

    fn at(second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 2, 12, 0, second).unwrap()
    }

    fn folder(raw: &str) -> FolderId {
        FolderId::parse(raw).unwrap()
    }

    fn member(raw: &str) -> MemberAccountId {
        MemberAccountId::parse(raw).unwrap()
    }

    fn root() -> ResourceDirectoryId {
        ResourceDirectoryId::parse("rd-0123456789").unwrap()
    }

    fn given(events: &[DirectoryEvent]) -> Directory {
        let account = AccountId::parse("1234567890123456").unwrap();
        let mut all = vec![Directory::create(root())];
        all.extend_from_slice(events);
        Directory::fold(account, all.iter().zip(0..).map(|(e, s)| (e, at(s)))).unwrap()
    }

    fn registered(id: &str, parent: Option<&str>) -> DirectoryEvent {
        DirectoryEvent::FolderRegistered {
            folder_id: folder(id),
            parent_id: parent.map(folder),
        }
    }

    fn joined(id: &str, folder_id: Option<&str>) -> DirectoryEvent {
        DirectoryEvent::MemberRegistered {
            account_id: member(id),
            folder_id: folder_id.map(folder),
        }
    }

    #[test]
    fn a_folder_needs_an_existing_parent_and_a_new_id() {
        let directory = given(&[registered("fd-aaaaaaaaaa", None)]);
        assert_eq!(
            directory.register_folder(&folder("fd-bbbbbbbbbb"), Some(&folder("fd-cccccccccc"))),
            Err(DirectoryRejection::FolderNotFound)
        );
        assert_eq!(
            directory.register_folder(&folder("fd-aaaaaaaaaa"), None),
            Err(DirectoryRejection::FolderExists)
        );
        assert_eq!(
            directory.register_folder(&folder("fd-bbbbbbbbbb"), Some(&folder("fd-aaaaaaaaaa"))),
            Ok(registered("fd-bbbbbbbbbb", Some("fd-aaaaaaaaaa")))
        );
    }

    #[test]
    fn only_an_empty_folder_is_removed() {
        let directory = given(&[
            registered("fd-aaaaaaaaaa", None),
            registered("fd-bbbbbbbbbb", Some("fd-aaaaaaaaaa")),
            joined("1000000000000001", Some("fd-bbbbbbbbbb")),
        ]);
        for full in ["fd-aaaaaaaaaa", "fd-bbbbbbbbbb"] {
            assert_eq!(
                directory.remove_folder(&folder(full)),
                Err(DirectoryRejection::FolderNotEmpty)
            );
        }
        assert_eq!(
            directory.remove_folder(&folder("fd-cccccccccc")),
            Err(DirectoryRejection::FolderNotFound)
        );
        let emptied = given(&[
            registered("fd-aaaaaaaaaa", None),
            registered("fd-bbbbbbbbbb", Some("fd-aaaaaaaaaa")),
        ]);
        assert!(emptied.remove_folder(&folder("fd-bbbbbbbbbb")).is_ok());
    }

    #[test]
    fn a_member_is_in_exactly_one_place_and_moving_it_where_it_is_changes_nothing() {
        let directory = given(&[
            registered("fd-aaaaaaaaaa", None),
            joined("1000000000000001", None),
        ]);
        assert_eq!(
            directory.register_member(&member("1000000000000001"), None),
            Err(DirectoryRejection::MemberExists)
        );
        assert_eq!(
            directory.register_member(&member("1000000000000002"), Some(&folder("fd-zzzzzzzzzz"))),
            Err(DirectoryRejection::FolderNotFound)
        );
        assert_eq!(
            directory.move_member(&member("1000000000000001"), None),
            Ok(None)
        );
        assert_eq!(
            directory.move_member(&member("1000000000000001"), Some(&folder("fd-aaaaaaaaaa"))),
            Ok(Some(DirectoryEvent::MemberMoved {
                account_id: member("1000000000000001"),
                from: None,
                to: Some(folder("fd-aaaaaaaaaa")),
            }))
        );
        assert_eq!(
            directory.move_member(&member("1000000000000009"), None),
            Err(DirectoryRejection::MemberNotFound)
        );
        assert_eq!(
            directory.remove_member(&member("1000000000000009")),
            Err(DirectoryRejection::MemberNotFound)
        );
    }

    #[test]
    fn members_under_a_target_are_found_at_any_depth() {
        let directory = given(&[
            registered("fd-aaaaaaaaaa", None),
            registered("fd-bbbbbbbbbb", Some("fd-aaaaaaaaaa")),
            joined("1000000000000001", Some("fd-bbbbbbbbbb")),
            joined("1000000000000002", Some("fd-aaaaaaaaaa")),
            joined("1000000000000003", None),
        ]);
        let under = |target: MemberId| -> Vec<String> {
            directory
                .members_under(&[target])
                .iter()
                .map(|m| m.as_str().to_owned())
                .collect()
        };
        assert_eq!(
            under(MemberId::Folder(folder("fd-aaaaaaaaaa"))),
            ["1000000000000001", "1000000000000002"]
        );
        assert_eq!(
            under(MemberId::Folder(folder("fd-bbbbbbbbbb"))),
            ["1000000000000001"]
        );
        assert_eq!(under(MemberId::Directory(root())).len(), 3);
        assert_eq!(
            directory.lineage(&MemberId::Account(member("1000000000000001"))),
            [
                MemberId::Account(member("1000000000000001")),
                MemberId::Folder(folder("fd-bbbbbbbbbb")),
                MemberId::Folder(folder("fd-aaaaaaaaaa")),
                MemberId::Directory(root()),
            ]
        );
        assert!(!directory.contains(&MemberId::Directory(
            ResourceDirectoryId::parse("rd-9999999999").unwrap()
        )));
    }
}
