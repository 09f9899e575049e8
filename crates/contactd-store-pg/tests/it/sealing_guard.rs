//! The append-only trigger's one exception (ADR 13): sealing in place moves an event from a
//! clear schema version to its sealed twin, changing nothing else, and only along the moves of
//! `sealing_moves()`. Every move is tried, and what lies around them.

use contactd_store_core::sealing::sealing_moves;
use sqlx::PgPool;
use uuid::Uuid;

async fn insert(pool: &PgPool, event_type: &str, schema_version: i32) -> Uuid {
    let event_id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO events (event_id, account_id, stream_id, stream_version, event_type, schema_version, payload, \
         request_id, caller, correlation_id, causation_id, recorded_at) \
         VALUES ($1, '1', $2, 1, $3, $4, '{\"name\":\"Tom\"}', 'r', 'c', 'c', 'c', now())",
    )
    .bind(event_id)
    .bind(format!("c-{}", event_id.simple()))
    .bind(event_type)
    .bind(schema_version)
    .execute(pool)
    .await
    .unwrap();
    event_id
}

async fn set_version(pool: &PgPool, event_id: Uuid, schema_version: i32) -> Result<(), String> {
    sqlx::query(
        "UPDATE events SET schema_version = $2, payload = '{\"name\":\"sealed\"}' WHERE event_id = $1",
    )
    .bind(event_id)
    .bind(schema_version)
    .execute(pool)
    .await
    .map(|_| ())
    .map_err(|e| e.to_string())
}

#[sqlx::test(migrator = "contactd_store_pg::MIGRATOR")]
async fn the_guard_lets_each_sealing_move_through_once_and_nothing_else(pool: PgPool) {
    let moves: Vec<_> = sealing_moves().collect();
    assert!(moves.len() >= 10, "every type that names a person");
    for (event_type, from, to) in moves {
        let event = insert(&pool, event_type, from).await;
        // Not to another version than the sealed twin.
        for wrong in [from + 1, to + 1, to - 1] {
            if wrong != to {
                let refused = set_version(&pool, event, wrong).await.unwrap_err();
                assert!(
                    refused.contains("append-only"),
                    "{event_type} v{from} → v{wrong}: {refused}"
                );
            }
        }
        set_version(&pool, event, to).await.unwrap();
        // Sealed once: never again, and never back.
        for again in [to, from, to + 100] {
            let refused = set_version(&pool, event, again).await.unwrap_err();
            assert!(
                refused.contains("append-only"),
                "{event_type} v{to} → v{again}"
            );
        }
    }
    // A move that changes anything else is refused too.
    let event = insert(&pool, "MessageContactRenamed", 1).await;
    let refused = sqlx::query(
        "UPDATE events SET schema_version = 101, caller = 'someone else' WHERE event_id = $1",
    )
    .bind(event)
    .execute(&pool)
    .await
    .unwrap_err();
    assert!(refused.to_string().contains("append-only"));
    // And an event that names no one has no sealed twin.
    let event = insert(&pool, "TitleChanged", 1).await;
    assert!(set_version(&pool, event, 101).await.is_err());
}
