//! The settings' layers through the real binary: `config check` shows where each value came
//! from (flag over environment over file over default), reports every bad setting on a line of
//! its own with exit status 2, masks secrets; and the README's settings table matches the flags.

use std::path::Path;
use std::process::Output;

use clap::CommandFactory;
use contactd::settings::Cli;

/// `contactd ARGS` with only the environment given (none of the test run's own).
fn contactd(args: &[&str], env: &[(&str, &str)]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_contactd"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("run contactd")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn problems(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write a file");
    path.display().to_string()
}

/// The line `config check` printed for a setting.
fn line_of<'a>(printed: &'a str, name: &str) -> &'a str {
    printed
        .lines()
        .find(|line| line.starts_with(&format!("{name} = ")))
        .unwrap_or_else(|| panic!("no line for {name}:\n{printed}"))
}

#[test]
fn a_flag_wins_over_the_environment_which_wins_over_the_file_which_wins_over_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "contactd.toml",
        "max-contacts = 30\nmax-streams = 50\ncode-ttl-secs = 100\n",
    );
    let output = contactd(
        &["config", "check", "--config", &file, "--max-contacts", "50"],
        &[
            ("CONTACTD_MAX_CONTACTS", "40"),
            ("CONTACTD_MAX_STREAMS", "60"),
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{:?}", problems(&output));
    let printed = stdout(&output);
    assert_eq!(
        line_of(&printed, "max-contacts"),
        "max-contacts = \"50\"  # command line"
    );
    assert_eq!(
        line_of(&printed, "max-streams"),
        "max-streams = \"60\"  # environment CONTACTD_MAX_STREAMS"
    );
    assert_eq!(
        line_of(&printed, "code-ttl-secs"),
        format!("code-ttl-secs = \"100\"  # file {file} line 3")
    );
    assert_eq!(
        line_of(&printed, "listen"),
        "listen = \"127.0.0.1:50051\"  # default"
    );
    assert!(printed.contains("# code-secret is unset"), "{printed}");

    // The file named by the environment instead, and the printout read back as a file.
    let output = contactd(&["config", "check"], &[("CONTACTD_CONFIG", &file)]);
    assert_eq!(output.status.code(), Some(0), "{:?}", problems(&output));
    let printed = stdout(&output);
    assert_eq!(
        line_of(&printed, "max-contacts"),
        format!("max-contacts = \"30\"  # file {file} line 1")
    );
    let again = write(dir.path(), "printed.toml", &printed);
    let output = contactd(&["config", "check", "--config", &again], &[]);
    assert_eq!(output.status.code(), Some(0), "{:?}", problems(&output));
    assert!(
        line_of(&stdout(&output), "max-streams").starts_with("max-streams = \"50\"  # file"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn a_flag_the_file_turns_on_is_on_and_the_command_line_still_wins() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "c.toml",
        "no-migrate = true\nlog-format = \"json\"\n",
    );
    let output = contactd(&["config", "check", "--config", &file], &[]);
    assert_eq!(output.status.code(), Some(0), "{:?}", problems(&output));
    let printed = stdout(&output);
    assert!(
        line_of(&printed, "no-migrate").starts_with("no-migrate = \"true\"  # file"),
        "{printed}"
    );
    assert!(
        line_of(&printed, "log-format").starts_with("log-format = \"json\"  # file"),
        "{printed}"
    );
    let output = contactd(
        &["config", "check", "--config", &file, "--log-format", "text"],
        &[],
    );
    assert_eq!(
        line_of(&stdout(&output), "log-format"),
        "log-format = \"text\"  # command line"
    );
}

/// What a case is, its arguments, its environment and what its one line must say.
type Case<'a> = (&'a str, Vec<String>, Vec<(&'a str, &'a str)>, String);

/// Each kind of bad setting, alone: exit status 2 and one line that says what is wrong.
#[test]
fn every_kind_of_bad_setting_is_one_line_and_exit_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = write(d, "key.pem", "");
    let missing = d.join("missing.toml").display().to_string();
    let not_a_key = write(d, "not-a.key", "hunter2-is-no-key\n");
    let (_, good_text) = contactd_store_core::MasterKey::generate();
    let good_key = write(d, "good.key", &good_text);
    let previous_keys = format!("{good_key},/nonexistent/old.key");
    let cases: Vec<Case> = vec![
        (
            "a bad address",
            args(&["--http-listen", "abc"]),
            vec![],
            "command line: invalid value 'abc' for '--http-listen <HTTP_LISTEN>'".into(),
        ),
        (
            "a bad number",
            args(&["--max-contacts", "many"]),
            vec![],
            "invalid value 'many' for '--max-contacts <MAX_CONTACTS>'".into(),
        ),
        (
            "a number out of range",
            args(&["--max-contacts", "0"]),
            vec![],
            "0 is not in 1..=100000".into(),
        ),
        (
            "a bad duration from the environment",
            args(&[]),
            vec![("CONTACTD_CODE_TTL_SECS", "soon")],
            "environment CONTACTD_CODE_TTL_SECS: invalid value 'soon' for '--code-ttl-secs".into(),
        ),
        (
            "a switch neither on nor off",
            args(&[]),
            vec![("CONTACTD_NO_MIGRATE", "perhaps")],
            "environment CONTACTD_NO_MIGRATE: --no-migrate: \"perhaps\" is not true or false"
                .into(),
        ),
        (
            "an unknown enumeration value",
            args(&["--identity-mode", "anyone"]),
            vec![],
            "[possible values: trusted-header, token, mtls]".into(),
        ),
        (
            "an unknown file key, with its line",
            config(
                d,
                "unknown.toml",
                "listen = \"127.0.0.1:1\"\nmax-contact = 3\n",
            ),
            vec![],
            "unknown.toml line 2: unknown setting \"max-contact\"".into(),
        ),
        (
            "a bad value in the file, with its line",
            config(d, "bad.toml", "\n\nlisten = \"nowhere\"\n"),
            vec![],
            "bad.toml line 3: invalid value 'nowhere' for '--listen <LISTEN>'".into(),
        ),
        (
            "a table in the file",
            config(d, "table.toml", "[security]\nmax-streams = 3\n"),
            vec![],
            "table.toml line 1: \"security\" is a table".into(),
        ),
        (
            "malformed TOML",
            config(
                d,
                "malformed.toml",
                "listen = \"127.0.0.1:1\"\nmax-streams = = 3\n",
            ),
            vec![],
            "malformed.toml line 2: malformed TOML".into(),
        ),
        (
            "a missing file",
            args(&["--config", &missing]),
            vec![],
            format!("--config: cannot read {missing}"),
        ),
        (
            "a secret too short",
            args(&["--code-secret", "short"]),
            vec![],
            "--code-secret: must be at least 16 bytes".into(),
        ),
        (
            "a missing TLS file",
            args(&["--tls-cert", "/nonexistent/cert.pem", "--tls-key", &key]),
            vec![],
            "--tls-cert: cannot read /nonexistent/cert.pem".into(),
        ),
        (
            "a certificate without its key",
            args(&["--tls-cert", &key]),
            vec![],
            "the following required arguments were not provided: --tls-key <TLS_KEY>".into(),
        ),
        (
            "a lease shorter than two sends",
            args(&["--send-timeout-secs", "60", "--dispatch-lease-secs", "100"]),
            vec![],
            "--dispatch-lease-secs (100) must be at least twice --send-timeout-secs (60)".into(),
        ),
        (
            "an open address without an identity mode",
            args(&["--listen", "0.0.0.0:50051"]),
            vec![],
            "needs an explicit --identity-mode".into(),
        ),
        (
            "both ports on one address",
            args(&[
                "--listen",
                "127.0.0.1:7000",
                "--http-listen",
                "127.0.0.1:7000",
            ]),
            vec![],
            "--listen and --http-listen are both 127.0.0.1:7000".into(),
        ),
        (
            "a store no backend has",
            args(&["--database-url", "mysql://db/contactd"]),
            vec![],
            "--database-url: DATABASE_URL \"mysql://db/contactd\" names no store".into(),
        ),
        (
            "a master key file that is no key, never quoted",
            args(&["--master-key-file", &not_a_key]),
            vec![],
            format!(
                "--master-key-file: {not_a_key}: a master key file holds 64 hexadecimal digits"
            ),
        ),
        (
            "a previous master key that cannot be read, from the environment's list",
            args(&[]),
            vec![("CONTACTD_PREVIOUS_MASTER_KEY_FILES", previous_keys.as_str())],
            "--previous-master-key-file: cannot read /nonexistent/old.key".into(),
        ),
        (
            "an unknown flag",
            args(&["--max-contactz", "3"]),
            vec![],
            "unexpected argument '--max-contactz'".into(),
        ),
    ];
    for (what, args, env, expected) in cases {
        let mut all = vec!["config", "check"];
        all.extend(args.iter().map(String::as_str));
        let output = contactd(&all, &env);
        let said = problems(&output);
        assert_eq!(output.status.code(), Some(2), "{what}: {said:?}");
        assert_eq!(said.len(), 1, "{what}: one line: {said:?}");
        assert!(said[0].contains(&expected), "{what}: {said:?}");
        assert!(stdout(&output).is_empty(), "{what}: nothing printed");
        assert!(
            !said[0].contains("hunter2"),
            "{what}: a key file's text is never shown"
        );
        // `serve` refuses the same settings the same way, before it opens anything.
        all[0] = "serve";
        all.remove(1);
        let output = contactd(
            &all,
            &[&env[..], &[("CONTACTD_DATA_DIR", d.to_str().unwrap())]].concat(),
        );
        assert_eq!(output.status.code(), Some(2), "serve, {what}");
        assert_eq!(problems(&output), said, "serve, {what}");
    }
    assert!(!d.join("contactd.db").exists(), "nothing was opened");

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|arg| (*arg).to_owned()).collect()
    }
    fn config(dir: &Path, name: &str, text: &str) -> Vec<String> {
        vec!["--config".to_owned(), write(dir, name, text)]
    }
}

#[test]
fn several_bad_settings_are_all_reported_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "c.toml",
        "max-streams = 0\nno-such-setting = 1\nmail-from = \"ok <a@b.c>\"\n",
    );
    let output = contactd(
        &[
            "config",
            "check",
            "--config",
            &file,
            "--http-listen",
            "abc",
            "--code-secret",
            "short",
        ],
        &[("CONTACTD_PUBLISH_TIMEOUT_SECS", "forever")],
    );
    assert_eq!(output.status.code(), Some(2));
    let said = problems(&output);
    let expected = [
        format!("{file} line 2: unknown setting \"no-such-setting\""),
        "command line: invalid value 'abc' for '--http-listen".to_owned(),
        "environment CONTACTD_PUBLISH_TIMEOUT_SECS: invalid value 'forever'".to_owned(),
        format!("file {file} line 1: invalid value '0' for '--max-streams"),
        "--code-secret: must be at least 16 bytes".to_owned(),
    ];
    assert_eq!(said.len(), expected.len(), "{said:#?}");
    for expected in expected {
        assert!(
            said.iter().any(|line| line.contains(&expected)),
            "{expected:?} not in {said:#?}"
        );
    }
}

#[test]
fn config_check_masks_every_secret() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "c.toml",
        "smtp-url = \"smtp://mailer:mail-password@smtp.example:587\"\n\
         sms-webhook-url = \"https://sms.example/hook?key=webhook-key\"\n",
    );
    let output = contactd(
        &[
            "config",
            "check",
            "--config",
            &file,
            "--code-secret",
            "the-code-secret-itself",
        ],
        &[
            (
                "DATABASE_URL",
                "postgres://app:database-password@db:5432/contactd",
            ),
            ("CONTACTD_NATS_URL", "nats://nats-token@nats:4222"),
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{:?}", problems(&output));
    let printed = stdout(&output);
    for secret in [
        "the-code-secret-itself",
        "database-password",
        "mail-password",
        "webhook-key",
        "nats-token",
    ] {
        assert!(!printed.contains(secret), "{secret} shown:\n{printed}");
    }
    assert_eq!(
        line_of(&printed, "code-secret"),
        "code-secret = \"***\"  # command line"
    );
    assert_eq!(
        line_of(&printed, "database-url"),
        "database-url = \"postgres://app:***@db:5432/contactd\"  # environment DATABASE_URL"
    );
    assert!(line_of(&printed, "smtp-url").contains("smtp://mailer:***@smtp.example:587"));
    assert!(line_of(&printed, "nats-url").contains("nats://***@nats:4222"));
}

/// The master key files are named by their paths, which are no secret; the keys in them
/// never appear. The previous ones, given flag by flag, are one list.
#[test]
fn config_check_names_the_master_key_files_never_their_keys() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let texts: Vec<String> = (0..3)
        .map(|_| contactd_store_core::MasterKey::generate().1)
        .collect();
    let current = write(d, "current.key", &texts[0]);
    let old = write(d, "old.key", &texts[1]);
    let older = write(d, "older.key", &texts[2]);
    let output = contactd(
        &[
            "config",
            "check",
            "--master-key-file",
            &current,
            "--previous-master-key-file",
            &old,
            "--previous-master-key-file",
            &older,
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(0), "{:?}", problems(&output));
    let printed = stdout(&output);
    assert_eq!(
        line_of(&printed, "master-key-file"),
        format!("master-key-file = \"{current}\"  # command line")
    );
    assert_eq!(
        line_of(&printed, "previous-master-key-file"),
        format!("previous-master-key-file = \"{old},{older}\"  # command line")
    );
    for text in &texts {
        assert!(!printed.contains(text.trim()), "a key shown:\n{printed}");
    }
    let from_environment = contactd(
        &["config", "check"],
        &[(
            "CONTACTD_PREVIOUS_MASTER_KEY_FILES",
            &format!("{old},{older}"),
        )],
    );
    assert_eq!(
        line_of(&stdout(&from_environment), "previous-master-key-file"),
        format!(
            "previous-master-key-file = \"{old},{older}\"  # environment \
             CONTACTD_PREVIOUS_MASTER_KEY_FILES"
        )
    );
}

/// The README's settings table and the flags agree: every flag with an environment variable
/// has its row, with that variable and its default; every row names real flags.
#[test]
fn the_readme_settings_table_matches_the_flags() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("the README");
    let table = readme
        .split("\n## Settings\n")
        .nth(1)
        .expect("a Settings section");
    struct Row {
        flags: Vec<String>,
        variables: Vec<String>,
        default: String,
    }
    let code_spans = |cell: &str| -> Vec<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    };
    let rows: Vec<Row> = table
        .lines()
        .skip_while(|line| !line.starts_with("| flag"))
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .map(|line| {
            let cells: Vec<&str> = line.split(" | ").collect();
            Row {
                flags: code_spans(cells[0]),
                variables: code_spans(cells[1]),
                default: cells[2].trim().to_owned(),
            }
        })
        .collect();
    assert!(rows.len() > 40, "the table was found");

    let mut seen = std::collections::BTreeSet::new();
    let mut commands = vec![Cli::command()];
    while let Some(command) = commands.pop() {
        for arg in command.get_arguments() {
            let (Some(long), Some(env)) = (arg.get_long(), arg.get_env()) else {
                continue;
            };
            let flag = format!("--{long}");
            let env = env.to_string_lossy().into_owned();
            let row = rows
                .iter()
                .find(|row| row.flags.contains(&flag))
                .unwrap_or_else(|| panic!("no README row for {flag}"));
            let at = row.flags.iter().position(|f| *f == flag).unwrap();
            assert_eq!(row.variables.get(at), Some(&env), "{flag}'s variable");
            let defaults: Vec<String> = arg
                .get_default_values()
                .iter()
                .map(|value| value.to_string_lossy().into_owned())
                .collect();
            let takes_value = arg.get_action().takes_values();
            match defaults.as_slice() {
                [default] if takes_value => assert!(
                    row.default.starts_with(&format!("`{default}`")),
                    "{flag}: default `{default}`, the README says {}",
                    row.default
                ),
                _ if !takes_value => assert_eq!(row.default, "off", "{flag} is a switch"),
                _ => assert!(
                    !(row.default.starts_with('`')
                        && row.default.ends_with('`')
                        && row.default.matches('`').count() == 2),
                    "{flag} has no default, the README says {}",
                    row.default
                ),
            }
            seen.insert(flag);
        }
        commands.extend(command.get_subcommands().cloned());
    }
    for row in &rows {
        for flag in &row.flags {
            assert!(seen.contains(flag), "the README's {flag} is no flag");
        }
    }
}
