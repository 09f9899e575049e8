//! One test per error code reachable in Add, Update, Get and List, and the contract's check
//! order.

use tonic::Code;

use crate::support::*;

#[sqlx::test(migrator = "contactd_store::MIGRATOR")]
async fn a_call_without_an_account_is_unauthenticated(pool: sqlx::PgPool) {
    let mut server = TestServer::start(pool).await;
    let status = server
        .client
        .add_message_contact(add_request("Tom"))
        .await
        .unwrap_err();
    assert_error(
        &status,
        Code::Unauthenticated,
        "Unauthenticated",
        "The caller identity is missing or invalid.",
        None,
    );
}
