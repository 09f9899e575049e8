//! The authorization a call gets: its own account's contacts without a policy file, or what
//! the policy file in force decides.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use contactd_app::Principal;

use crate::policy::{AccessRequest, Decision, PolicySet};
use crate::{Rpc, Watched};

/// Decides whether a principal may make a call.
#[derive(Debug, Clone)]
pub enum Authorizer {
    /// No policy file: every principal may do everything on its own account's contacts (and the
    /// resource of a call always names the caller's own account).
    OwnAccount,
    /// The policy file, reloaded when it changes.
    Policies(Watched<PolicySet>),
}

/// A call the policies refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub action: &'static str,
    pub resource: String,
    /// A `Deny` statement matched (rather than no `Allow`).
    pub explicit: bool,
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = if self.explicit {
            "explicitly denied"
        } else {
            "not allowed"
        };
        write!(
            f,
            "{} on {} is {how} by the policies",
            self.action, self.resource
        )
    }
}

impl std::error::Error for Denied {}

impl Authorizer {
    pub fn own_account() -> Self {
        Self::OwnAccount
    }

    /// Loads the policy file (an error refuses to start) and reloads it every `interval` when
    /// it changes; a change that does not parse keeps the policies in force. Must be called
    /// inside a tokio runtime.
    pub fn from_file(path: PathBuf, interval: Duration) -> Result<Self, String> {
        Watched::load(path, interval, parse_policy_file).map(Self::Policies)
    }

    /// The call's check, with its action and resource from the catalogue. A denial is logged
    /// with the principal, action and resource (the only request field in it is the contact id
    /// inside the resource).
    pub fn authorize(
        &self,
        principal: &Principal,
        rpc: Rpc,
        contact_id: &str,
        source: Option<IpAddr>,
    ) -> Result<(), Denied> {
        let policies = match self {
            Self::OwnAccount => return Ok(()),
            Self::Policies(policies) => policies.current(),
        };
        let action = rpc.action();
        let resource = rpc.resource(&principal.account_id, contact_id);
        let decision = policies.decide(&AccessRequest {
            principal,
            action,
            resource: &resource,
            source,
        });
        let explicit = match decision {
            Decision::Allow => return Ok(()),
            Decision::ImplicitDeny => false,
            Decision::ExplicitDeny => true,
        };
        tracing::info!(%principal, action, resource = %resource, explicit, "call denied by the policies");
        Err(Denied {
            action,
            resource,
            explicit,
        })
    }
}

fn parse_policy_file(bytes: &[u8]) -> Result<PolicySet, String> {
    let text = std::str::from_utf8(bytes)
        .map_err(|error| format!("the policy file is not UTF-8: {error}"))?;
    PolicySet::parse(text).map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::net::{Ipv4Addr, Ipv6Addr};

    use contactd_app::Proof;
    use contactd_domain::AccountId;

    use super::*;

    const ACCOUNT: &str = "1234567890123456";

    fn principal(proof: Proof, name: &str) -> Principal {
        Principal {
            account_id: AccountId::parse(ACCOUNT).unwrap(),
            name: name.to_owned(),
            proof,
        }
    }

    fn token(name: &str) -> Principal {
        principal(Proof::BearerToken, name)
    }

    /// An authorizer over a fixed policy file, as `from_file` builds it.
    async fn policies(json: &str) -> (Authorizer, tempfile::TempDir) {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("policies.json");
        fs::write(&path, json).unwrap();
        let authorizer = Authorizer::from_file(path, Duration::from_secs(3600)).unwrap();
        (authorizer, directory)
    }

    const MATRIX: &str = r#"{
      "Version": "1",
      "Policies": {
        "Everything": {"Version": "1", "Statement": [
          {"Effect": "Allow", "Action": "*", "Resource": "*"}]},
        "Reader": {"Version": "1", "Statement": [
          {"Effect": "Allow", "Action": ["resourcemanager:get*", "resourcemanager:List*"],
           "Resource": "acs:resourcemanager:*:*:messagecontact/*"}]},
        "OneContact": {"Version": "1", "Statement": [
          {"Effect": "Allow", "Action": "resourcemanager:*",
           "Resource": "acs:resourcemanager:*:1234567890123456:messagecontact/c-0123456789abcdef"}]},
        "Directory": {"Version": "1", "Statement": [
          {"Effect": "Allow", "Action": "resourcemanager:*",
           "Resource": "acs:resourcemanager:*:*:resourcedirectory/*"}]},
        "NoVerify": {"Version": "1", "Statement": [
          {"Effect": "Deny", "Action": "resourcemanager:Send*Verification*", "Resource": "*"}]},
        "FromTheOffice": {"Version": "1", "Statement": [
          {"Effect": "Allow", "Action": "*", "Resource": "*",
           "Condition": {"IpAddress": {"acs:SourceIp": ["192.0.2.0/24", "2001:db8::/32"]}}}]}
      },
      "Attachments": [
        {"Principal": "token:admin", "Policies": ["Everything"]},
        {"Principal": "token:reader", "Policies": ["Reader"]},
        {"Principal": "token:one", "Policies": ["OneContact"]},
        {"Principal": "certificate:dir-*", "Policies": ["Directory"]},
        {"Principal": "token:support-?", "Policies": ["Everything", "NoVerify"]},
        {"Principal": "token:office", "Policies": ["FromTheOffice"]}
      ]
    }"#;

    const CONTACT: &str = "c-0123456789abcdef";

    fn outcome(
        authorizer: &Authorizer,
        who: &Principal,
        rpc: Rpc,
        source: Option<IpAddr>,
    ) -> Result<(), bool> {
        authorizer
            .authorize(who, rpc, CONTACT, source)
            .map_err(|denied| denied.explicit)
    }

    #[tokio::test]
    async fn without_a_policy_file_everything_is_allowed() {
        let authorizer = Authorizer::own_account();
        for rpc in Rpc::ALL {
            assert_eq!(outcome(&authorizer, &token("anyone"), *rpc, None), Ok(()));
        }
    }

    #[tokio::test]
    async fn the_policy_matrix_over_every_rpc() {
        let (authorizer, _directory) = policies(MATRIX).await;
        let office_v4 = Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)));
        let office_v6 = Some(IpAddr::V6("2001:db8::5".parse::<Ipv6Addr>().unwrap()));
        let elsewhere = Some(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)));
        for &rpc in Rpc::ALL {
            let name = rpc.name();
            let is_read = name.starts_with("Get") || name.starts_with("List");
            let on_contacts =
                rpc.service() != "resourcemanager.messagecontact.v1.ResourceDirectoryService";
            let is_verify = name.starts_with("Send") && name.contains("Verification");

            // Wildcard action and resource.
            assert_eq!(
                outcome(&authorizer, &token("admin"), rpc, None),
                Ok(()),
                "admin {name}"
            );
            // Wildcard actions (matched ignoring case) over the contacts only.
            let expected = if is_read && on_contacts {
                Ok(())
            } else {
                Err(false)
            };
            assert_eq!(
                outcome(&authorizer, &token("reader"), rpc, None),
                expected,
                "reader {name}"
            );
            // One contact by its exact resource: the RPCs that name a contact, nothing else.
            let expected = if rpc.names_a_contact() {
                Ok(())
            } else {
                Err(false)
            };
            assert_eq!(
                outcome(&authorizer, &token("one"), rpc, None),
                expected,
                "one {name}"
            );
            // A principal pattern with a star, over the directory only.
            let expected = if on_contacts { Err(false) } else { Ok(()) };
            let directory_client = principal(Proof::ClientCertificate, "dir-sync");
            assert_eq!(
                outcome(&authorizer, &directory_client, rpc, None),
                expected,
                "dir {name}"
            );
            // The same name under another proof is not the same principal.
            assert_eq!(
                outcome(
                    &authorizer,
                    &principal(Proof::BearerToken, "dir-sync"),
                    rpc,
                    None
                ),
                Err(false),
                "token dir {name}"
            );
            // An explicit deny wins over an allow of another policy.
            let expected = if is_verify { Err(true) } else { Ok(()) };
            assert_eq!(
                outcome(&authorizer, &token("support-1"), rpc, None),
                expected,
                "support {name}"
            );
            // `?` is exactly one character.
            assert_eq!(
                outcome(&authorizer, &token("support-12"), rpc, None),
                Err(false),
                "support-12 {name}"
            );
            // No statement: implicit deny.
            assert_eq!(
                outcome(&authorizer, &token("nobody"), rpc, None),
                Err(false),
                "nobody {name}"
            );
            let account = Principal::trusted_account(AccountId::parse(ACCOUNT).unwrap());
            assert_eq!(
                outcome(&authorizer, &account, rpc, None),
                Err(false),
                "account {name}"
            );
            // Conditions on the source address, IPv4 and IPv6; unknown fails closed.
            assert_eq!(
                outcome(&authorizer, &token("office"), rpc, office_v4),
                Ok(()),
                "office v4 {name}"
            );
            assert_eq!(
                outcome(&authorizer, &token("office"), rpc, office_v6),
                Ok(()),
                "office v6 {name}"
            );
            assert_eq!(
                outcome(&authorizer, &token("office"), rpc, elsewhere),
                Err(false),
                "elsewhere {name}"
            );
            assert_eq!(
                outcome(&authorizer, &token("office"), rpc, None),
                Err(false),
                "unknown {name}"
            );
        }
    }

    #[tokio::test]
    async fn a_denial_names_the_action_and_resource() {
        let (authorizer, _directory) = policies(MATRIX).await;
        let denied = authorizer
            .authorize(
                &token("support-1"),
                Rpc::SendEmailVerificationForMessageContact,
                CONTACT,
                None,
            )
            .unwrap_err();
        assert_eq!(
            denied,
            Denied {
                action: "resourcemanager:SendEmailVerificationForMessageContact",
                resource: format!("acs:resourcemanager:*:{ACCOUNT}:messagecontact/{CONTACT}"),
                explicit: true,
            }
        );
        assert!(denied.to_string().contains("explicitly denied"));
    }

    #[tokio::test]
    async fn a_contact_id_cannot_widen_the_resource() {
        let (authorizer, _directory) = policies(MATRIX).await;
        // A wildcard sent as the contact id is text, not a pattern.
        assert!(
            authorizer
                .authorize(&token("one"), Rpc::GetMessageContact, "*", None)
                .is_err()
        );
        assert!(
            authorizer
                .authorize(
                    &token("one"),
                    Rpc::GetMessageContact,
                    "c-0123456789abcde?",
                    None
                )
                .is_err()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_policy_file_is_reloaded_and_a_bad_rewrite_keeps_the_last_good_one() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("policies.json");
        let allow = |action: &str| {
            format!(
                r#"{{"Version": "1",
                    "Policies": {{"P": {{"Version": "1", "Statement": [
                        {{"Effect": "Allow", "Action": "{action}", "Resource": "*"}}]}}}},
                    "Attachments": [{{"Principal": "*", "Policies": ["P"]}}]}}"#
            )
        };
        fs::write(&path, allow("resourcemanager:Get*")).unwrap();
        let authorizer = Authorizer::from_file(path.clone(), Duration::from_millis(10)).unwrap();
        let Authorizer::Policies(watched) = &authorizer else {
            panic!("expected policies");
        };
        let mut reloads = watched.reloads();
        let who = token("x");
        assert!(
            authorizer
                .authorize(&who, Rpc::GetMessageContact, CONTACT, None)
                .is_ok()
        );
        assert!(
            authorizer
                .authorize(&who, Rpc::DeleteMessageContact, CONTACT, None)
                .is_err()
        );

        let next = path.with_extension("next");
        fs::write(&next, allow("resourcemanager:Delete*")).unwrap();
        fs::rename(&next, &path).unwrap();
        tokio::time::timeout(Duration::from_secs(10), reloads.changed())
            .await
            .unwrap()
            .unwrap();
        assert!(
            authorizer
                .authorize(&who, Rpc::GetMessageContact, CONTACT, None)
                .is_err()
        );
        assert!(
            authorizer
                .authorize(&who, Rpc::DeleteMessageContact, CONTACT, None)
                .is_ok()
        );

        // Not understood (an unknown operator): the last good policies stay in force.
        fs::write(
            &next,
            r#"{"Version": "1", "Policies": {"P": {"Version": "1", "Statement": [
                {"Effect": "Allow", "Action": "*", "Resource": "*",
                 "Condition": {"StringEquals": {"acs:SourceIp": "1.2.3.4"}}}]}},
                "Attachments": [{"Principal": "*", "Policies": ["P"]}]}"#,
        )
        .unwrap();
        fs::rename(&next, &path).unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!reloads.has_changed().unwrap());
        assert!(
            authorizer
                .authorize(&who, Rpc::GetMessageContact, CONTACT, None)
                .is_err()
        );
        assert!(
            authorizer
                .authorize(&who, Rpc::DeleteMessageContact, CONTACT, None)
                .is_ok()
        );
    }

    #[tokio::test]
    async fn a_policy_file_that_does_not_parse_refuses_to_start() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("policies.json");
        fs::write(
            &path,
            r#"{"Version": "2", "Policies": {}, "Attachments": []}"#,
        )
        .unwrap();
        let error = Authorizer::from_file(path.clone(), Duration::from_secs(1)).unwrap_err();
        assert!(
            error.ends_with(r#"Version: unsupported version "2" (expected "1")"#),
            "{error}"
        );
        fs::write(&path, [0xff, 0xfe]).unwrap();
        let error = Authorizer::from_file(path, Duration::from_secs(1)).unwrap_err();
        assert!(error.contains("not UTF-8"), "{error}");
    }
}
