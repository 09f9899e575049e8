//! The life cycle of the real binary: `contactd probe` against a running server (started from a
//! `--config` file alone), and a SIGTERM whose drain is held up by a peer that never answers:
//! the process exits all the same once `--shutdown-timeout-secs` has passed, naming what still
//! ran.

use contactd_testkit::SilentPeer;

use crate::support::*;

fn probe(url: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_contactd"))
        .args(["probe", "--url", url, "--timeout-secs", "10"])
        .env_clear()
        .output()
        .expect("run contactd probe")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn a_server_configured_by_its_file_alone_is_ready_to_the_probe(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let (port, http_port) = (free_port(), free_port());
    let file = dir.path().join("contactd.toml");
    std::fs::write(
        &file,
        format!(
            "listen = \"127.0.0.1:{port}\"\nhttp-listen = \"127.0.0.1:{http_port}\"\n\
             database-url = \"{}\"\ncode-secret = \"{TEST_CODE_SECRET}\"\ndata-dir = \"{}\"\n",
            db.url(),
            dir.path().display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("contactd.log")).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_contactd"))
        .arg("serve")
        .env_clear()
        .env("CONTACTD_CONFIG", &file)
        .stderr(log)
        .spawn()
        .expect("start contactd");
    let ready = format!("http://127.0.0.1:{http_port}/readyz");
    let answered = until(
        "the probe passes",
        std::time::Duration::from_secs(30),
        async || {
            let output = probe(&ready);
            output.status.success().then_some(output)
        },
    )
    .await;
    assert!(answered.stderr.is_empty());

    let unknown = probe(&format!("http://127.0.0.1:{http_port}/no-such-page"));
    assert_eq!(unknown.status.code(), Some(1));
    let said = String::from_utf8_lossy(&unknown.stderr);
    assert!(said.contains("404"), "{said}");

    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = until(
        "contactd exits",
        std::time::Duration::from_secs(30),
        async || child.try_wait().unwrap(),
    )
    .await;
    assert!(status.success(), "{status:?}");
    let nobody = probe(&ready);
    assert_eq!(nobody.status.code(), Some(1));
    let said = String::from_utf8_lossy(&nobody.stderr);
    assert!(said.contains("cannot connect"), "{said}");
}

async fn a_shutdown_held_up_by_a_silent_peer_ends_at_its_bound_naming_what_still_ran(db: TestDb) {
    // An SMTP server that accepts and never says a word: the send waits on it.
    let silent = SilentPeer::start().await;
    let smtp = format!("smtp://{}", silent.addr());
    let mut server = Process::start_with(
        &db,
        &[
            "--smtp-url",
            &smtp,
            "--send-timeout-secs",
            "600",
            "--dispatch-lease-secs",
            "1200",
            "--shutdown-timeout-secs",
            "1",
        ],
        "info",
    );
    let mut client = server.client().await;
    let email = "held.up@example.com";
    let contact_id = add_with_email(&mut client, ACCOUNT, "HeldUp", email).await;
    send_email(&mut client, ACCOUNT, &contact_id, email)
        .await
        .expect("send");
    until(
        "the send is in flight",
        std::time::Duration::from_secs(30),
        async || {
            db.optional_scalar::<Option<String>>(
                "SELECT lease_owner FROM outbox_messages WHERE recorded = 0",
                &[],
            )
            .await
            .flatten()
        },
    )
    .await;

    // Without the bound it would wait for the send's 600 s; `terminate` waits 30 s at most.
    let status = server.terminate().await;
    assert_eq!(status.code(), Some(1), "{}", server.log());
    let log = server.log();
    assert!(
        log.contains("shutdown did not finish within --shutdown-timeout-secs"),
        "{log}"
    );
    let overdue = log
        .lines()
        .find(|line| line.contains("still_running"))
        .unwrap_or_else(|| panic!("what still ran is logged:\n{log}"));
    assert!(overdue.contains("the dispatcher"), "{overdue}");
    assert!(
        !overdue.contains("the gRPC server"),
        "the calls drained: {overdue}"
    );
}

both_backends!(
    a_server_configured_by_its_file_alone_is_ready_to_the_probe,
    a_shutdown_held_up_by_a_silent_peer_ends_at_its_bound_naming_what_still_ran
);
