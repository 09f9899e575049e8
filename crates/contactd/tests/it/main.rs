//! End-to-end tests: the real server on port 0, a fresh PostgreSQL database per test, called
//! over gRPC with the generated client.

mod contacts;
mod errors;
mod grpcurl;
mod support;
