//! Who is calling: the account from metadata `x-acs-account-id` (identity mode
//! `trusted-header`), and the call's context with a fresh request id.

use contactd_app::CallContext;
use contactd_domain::AccountId;
use tonic::metadata::MetadataMap;

pub(crate) const ACCOUNT_HEADER: &str = "x-acs-account-id";
pub(crate) const CORRELATION_HEADER: &str = "x-acs-correlation-id";

/// The caller's account is missing, malformed or given more than once.
#[derive(Debug)]
pub(crate) struct Unauthenticated;

/// Builds the call's context from its metadata. The account header must appear exactly once
/// and hold 1 to 32 ASCII digits.
pub(crate) fn call_context(metadata: &MetadataMap) -> Result<CallContext, Unauthenticated> {
    let mut values = metadata.get_all(ACCOUNT_HEADER).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(Unauthenticated);
    };
    let account_id = value
        .to_str()
        .ok()
        .and_then(|raw| AccountId::parse(raw).ok())
        .ok_or(Unauthenticated)?;
    Ok(CallContext::new(account_id, correlation_id(metadata)))
}

/// A correlation id the caller passes along, if it is a short printable token; otherwise the
/// request id stands in for it.
fn correlation_id(metadata: &MetadataMap) -> Option<String> {
    let raw = metadata.get(CORRELATION_HEADER)?.to_str().ok()?;
    let printable = (1..=128).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_graphic());
    printable.then(|| raw.to_owned())
}
