//! The catalogue of RPCs: each one's gRPC path, its RAM action (`resourcemanager:<Rpc>`), the
//! resource it acts on (`acs:resourcemanager:*:{account}:messagecontact/{contact}`) and the
//! class its rate limit is counted in.

use contactd_domain::AccountId;

/// How an RPC is counted by the rate limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RpcClass {
    /// Reads: Get, List, the audit's pages and the directory's tree.
    Read,
    /// Changes of contacts, bindings and the directory.
    Write,
    /// Sends of a verification message (also limited per account and target in the store).
    Verify,
    /// Opening a live stream of events.
    Stream,
}

impl RpcClass {
    pub const ALL: [RpcClass; 4] = [Self::Read, Self::Write, Self::Verify, Self::Stream];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Verify => "verify",
            Self::Stream => "stream",
        }
    }
}

/// What an RPC acts on, for its RAM resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// One contact, named by the request's `contact_id`.
    Contact,
    /// The account's contacts as a whole (`messagecontact/*`).
    Contacts,
    /// The account's resource directory (`resourcedirectory/*`).
    Directory,
}

macro_rules! rpcs {
    ($($service:literal { $($rpc:ident: $class:ident, $target:ident;)* })*) => {
        /// Every RPC of the four services that access control covers.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Rpc {
            $($($rpc,)*)*
        }

        impl Rpc {
            pub const ALL: &'static [Rpc] = &[$($(Rpc::$rpc,)*)*];

            /// The RPC's method name, as in the proto files.
            pub fn name(self) -> &'static str {
                match self {
                    $($(Rpc::$rpc => stringify!($rpc),)*)*
                }
            }

            /// The fully qualified service the RPC belongs to.
            pub fn service(self) -> &'static str {
                match self {
                    $($(Rpc::$rpc => $service,)*)*
                }
            }

            /// The RPC's action: `resourcemanager:<method>`.
            pub fn action(self) -> &'static str {
                match self {
                    $($(Rpc::$rpc => concat!("resourcemanager:", stringify!($rpc)),)*)*
                }
            }

            pub fn class(self) -> RpcClass {
                match self {
                    $($(Rpc::$rpc => RpcClass::$class,)*)*
                }
            }

            fn target(self) -> Target {
                match self {
                    $($(Rpc::$rpc => Target::$target,)*)*
                }
            }
        }
    };
}

rpcs! {
    "resourcemanager.messagecontact.v1.MessageContactService" {
        AddMessageContact: Write, Contacts;
        UpdateMessageContact: Write, Contact;
        DeleteMessageContact: Write, Contact;
        GetMessageContact: Read, Contact;
        ListMessageContacts: Read, Contacts;
        GetMessageContactDeletionStatus: Read, Contact;
        SendEmailVerificationForMessageContact: Verify, Contact;
        SendPhoneVerificationForMessageContact: Verify, Contact;
        ListMessageContactVerifications: Read, Contact;
        CancelMessageContactUpdate: Write, Contact;
        ConfirmMessageContactVerification: Write, Contact;
        AssociateMembers: Write, Contact;
        DisassociateMembers: Write, Contact;
    }
    "resourcemanager.messagecontact.v1.MessageContactAuditService" {
        ListMessageContactEvents: Read, Contact;
        StreamEvents: Stream, Contacts;
        GetMessageContactAsOf: Read, Contact;
    }
    "resourcemanager.messagecontact.v1.ResourceDirectoryService" {
        GetResourceDirectory: Read, Directory;
        RegisterFolder: Write, Directory;
        RemoveFolder: Write, Directory;
        RegisterMember: Write, Directory;
        MoveMember: Write, Directory;
        RemoveMember: Write, Directory;
    }
    "resourcemanager.messagecontact.v1.MessageContactPrivacyService" {
        ForgetMessageContact: Write, Contact;
    }
}

impl Rpc {
    /// The RPC a gRPC path (`/<service>/<method>`) names, if access control covers it.
    pub fn from_path(path: &str) -> Option<Rpc> {
        let (service, method) = path.strip_prefix('/')?.split_once('/')?;
        Self::ALL
            .iter()
            .copied()
            .find(|rpc| rpc.service() == service && rpc.name() == method)
    }

    /// Whether the resource names one contact, so that the request's `contact_id` is needed.
    pub fn names_a_contact(self) -> bool {
        self.target() == Target::Contact
    }

    /// The RAM resource of a call of the account `account` (with the request's `contact_id` as
    /// sent, for an RPC that names one contact).
    pub fn resource(self, account: &AccountId, contact_id: &str) -> String {
        let prefix = format!("acs:resourcemanager:*:{account}:");
        match self.target() {
            Target::Contact => format!("{prefix}messagecontact/{contact_id}"),
            Target::Contacts => format!("{prefix}messagecontact/*"),
            Target::Directory => format!("{prefix}resourcedirectory/*"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rpc_is_found_by_its_path_and_nothing_else_is() {
        for rpc in Rpc::ALL {
            let path = format!("/{}/{}", rpc.service(), rpc.name());
            assert_eq!(Rpc::from_path(&path), Some(*rpc), "{path}");
        }
        assert_eq!(Rpc::ALL.len(), 23);
        assert_eq!(Rpc::from_path("/grpc.health.v1.Health/Check"), None);
        assert_eq!(
            Rpc::from_path("/resourcemanager.messagecontact.v1.MessageContactService/Nope"),
            None
        );
        assert_eq!(Rpc::from_path("GetMessageContact"), None);
    }

    #[test]
    fn actions_and_resources_follow_ram() {
        let account = AccountId::parse("1234567890123456").unwrap();
        assert_eq!(
            Rpc::UpdateMessageContact.action(),
            "resourcemanager:UpdateMessageContact"
        );
        assert_eq!(
            Rpc::UpdateMessageContact.resource(&account, "c-0123456789abcdef"),
            "acs:resourcemanager:*:1234567890123456:messagecontact/c-0123456789abcdef"
        );
        assert_eq!(
            Rpc::AddMessageContact.resource(&account, ""),
            "acs:resourcemanager:*:1234567890123456:messagecontact/*"
        );
        assert_eq!(
            Rpc::MoveMember.resource(&account, ""),
            "acs:resourcemanager:*:1234567890123456:resourcedirectory/*"
        );
        assert_eq!(Rpc::StreamEvents.class(), RpcClass::Stream);
        assert_eq!(
            Rpc::ForgetMessageContact.action(),
            "resourcemanager:ForgetMessageContact"
        );
        assert_eq!(Rpc::ForgetMessageContact.class(), RpcClass::Write);
        assert_eq!(
            Rpc::ForgetMessageContact.resource(&account, "c-0123456789abcdef"),
            "acs:resourcemanager:*:1234567890123456:messagecontact/c-0123456789abcdef"
        );
        assert_eq!(
            Rpc::from_path(
                "/resourcemanager.messagecontact.v1.MessageContactPrivacyService/ForgetMessageContact"
            ),
            Some(Rpc::ForgetMessageContact)
        );
        assert!(!Rpc::ListMessageContacts.names_a_contact());
    }
}
