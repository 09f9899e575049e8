//! Access control, free of the wire format: which RPC a call is, with its RAM action and
//! resource (`rpc`). Who a caller is: the bearer tokens it may show (`token`, whose docs give
//! the key file and the claims) and the accounts client certificates act for
//! (`certificates`, with its file). What they may do: RAM-style policies (`policy`, whose docs
//! give the file) applied by the `authorizer`, and how often: rate limits (`limits`). Files
//! are reloaded when they change (`watched`).

mod authorizer;
mod certificates;
mod limits;
mod policy;
mod rpc;
mod token;
mod watched;

pub use authorizer::{Authorizer, Denied};
pub use certificates::CertificateAccounts;
pub use limits::{RateLimit, RateLimiter, RateLimits, RetryAfter};
pub use policy::{AccessRequest, Decision, PolicyError, PolicySet};
pub use rpc::{Rpc, RpcClass};
pub use token::{
    ACCOUNT_CLAIM, DEFAULT_ALGORITHMS, InvalidToken, KeySource, MAX_TOKEN_BYTES, TokenKeys,
    TokenRejection, TokenSettings, TokenVerifier, bearer, parse_algorithms,
};
pub use watched::Watched;

/// Token keys reloaded from their file.
impl KeySource for Watched<TokenKeys> {
    fn current(&self) -> std::sync::Arc<TokenKeys> {
        Watched::current(self)
    }
}
