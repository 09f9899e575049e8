//! Access control, free of the wire format: which RPC a call is, with its RAM action and
//! resource (`rpc`).

mod rpc;

pub use rpc::{Rpc, RpcClass};
