//! The deployment, checked without Docker: `docker-compose.yml` parses, its contactd services
//! set only real settings (which `config check` accepts, with the mounted files), the ports
//! agree between the replicas, the Dockerfile, nginx and what is published; the Dockerfile's
//! build command is a real cargo invocation of a real package, its health check and entry point
//! real commands; and the development token of the compose file is one the replicas accept.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::CommandFactory;
use contactd::settings::Cli;
use serde_json::Value;

use crate::support::*;

/// Variables a contactd service may set that are no setting of its own.
const NOT_SETTINGS: &[&str] = &["RUST_LOG"];

/// The replicas behind nginx.
const REPLICAS: &[&str] = &["contactd-1", "contactd-2"];

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repository().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The compose file as JSON, read by a YAML parser (with its anchors and merge keys).
fn compose() -> Value {
    let output = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)",
        ])
        .stdin(std::fs::File::open(repository().join("docker-compose.yml")).unwrap())
        .output()
        .expect("python3 with PyYAML reads the compose file");
    assert!(
        output.status.success(),
        "docker-compose.yml does not parse: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON")
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    compose["services"]
        .get(name)
        .unwrap_or_else(|| panic!("no service {name}"))
}

/// The services that run the image the Dockerfile builds.
fn contactd_services(compose: &Value) -> Vec<(String, &Value)> {
    let services = compose["services"].as_object().expect("services");
    services
        .iter()
        .filter(|(_, service)| service["build"] == ".")
        .map(|(name, service)| (name.clone(), service))
        .collect()
}

fn environment(service: &Value) -> BTreeMap<String, String> {
    service["environment"]
        .as_object()
        .map(|variables| {
            variables
                .iter()
                .map(|(name, value)| {
                    let text = match value {
                        Value::String(text) => text.clone(),
                        other => other.to_string(),
                    };
                    (name.clone(), text)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Every environment variable a flag of any subcommand reads.
fn setting_variables() -> BTreeSet<String> {
    let mut variables = BTreeSet::new();
    let mut commands = vec![Cli::command()];
    while let Some(command) = commands.pop() {
        for arg in command.get_arguments() {
            if let Some(env) = arg.get_env() {
                variables.insert(env.to_string_lossy().into_owned());
            }
        }
        commands.extend(command.get_subcommands().cloned());
    }
    variables
}

fn port_of(address: &str) -> u16 {
    address
        .rsplit(':')
        .next()
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("{address:?} has no port"))
}

/// `HOST:CONTAINER[:MODE]` bind mounts of a service, the host side in the repository.
fn bind_mounts(service: &Value) -> Vec<(PathBuf, String)> {
    service["volumes"]
        .as_array()
        .map(|volumes| {
            volumes
                .iter()
                .filter_map(Value::as_str)
                .filter(|volume| volume.starts_with("./"))
                .map(|volume| {
                    let mut parts = volume.split(':');
                    let host = parts.next().unwrap();
                    let container = parts.next().expect("a container path");
                    (repository().join(host), container.to_owned())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The image's command line of a service: the entry point, then its `command` or the
/// Dockerfile's `CMD`.
fn command_of(service: &Value, dockerfile: &Dockerfile) -> Vec<String> {
    let command = match service["command"].as_array() {
        Some(words) => words
            .iter()
            .map(|word| word.as_str().unwrap().to_owned())
            .collect(),
        None => dockerfile.cmd.clone(),
    };
    [&dockerfile.entrypoint[..], &command[..]].concat()
}

#[test]
fn every_contactd_service_sets_real_settings_that_config_check_accepts() {
    let compose = compose();
    let dockerfile = Dockerfile::read();
    let known = setting_variables();
    let services = contactd_services(&compose);
    assert!(
        services.len() >= 3,
        "migrate and two replicas: {services:?}"
    );
    for (name, service) in &services {
        let env = environment(service);
        for variable in env.keys() {
            assert!(
                known.contains(variable) || NOT_SETTINGS.contains(&variable.as_str()),
                "{name} sets {variable}, which no flag reads"
            );
        }
        let command = command_of(service, &dockerfile);
        assert_eq!(command[0], "contactd", "{name} runs the binary");
        // The command exists (`--help` parses it and stops).
        let help = Command::new(env!("CARGO_BIN_EXE_contactd"))
            .args(&command[1..])
            .arg("--help")
            .env_clear()
            .output()
            .unwrap();
        assert!(help.status.success(), "{name}: {command:?} is no command");
        if command[1] != "serve" {
            continue;
        }
        // The settings as the container sees them, its mounted files where they are here.
        let mounts = bind_mounts(service);
        let env: BTreeMap<String, String> = env
            .into_iter()
            .map(|(variable, value)| {
                let value = mounts
                    .iter()
                    .find(|(_, container)| *container == value)
                    .map(|(host, _)| host.display().to_string())
                    .unwrap_or(value);
                (variable, value)
            })
            .collect();
        let check = Command::new(env!("CARGO_BIN_EXE_contactd"))
            .args(["config", "check"])
            .args(&command[2..])
            .env_clear()
            .envs(&env)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{name}: config check refuses its settings:\n{}",
            String::from_utf8_lossy(&check.stderr)
        );
    }
    // One database, one code secret and one master key for both replicas.
    let replicas: Vec<BTreeMap<String, String>> = REPLICAS
        .iter()
        .map(|name| environment(service(&compose, name)))
        .collect();
    for shared in [
        "DATABASE_URL",
        "CONTACTD_CODE_SECRET",
        "CONTACTD_MASTER_KEY_FILE",
    ] {
        assert!(replicas[0].contains_key(shared), "{shared} is set");
        assert_eq!(
            replicas[0][shared], replicas[1][shared],
            "{shared} is shared"
        );
    }
    let migrate = environment(service(&compose, "migrate"));
    assert_eq!(migrate["DATABASE_URL"], replicas[0]["DATABASE_URL"]);
}

#[test]
fn the_ports_agree_between_the_replicas_the_image_nginx_and_what_is_published() {
    let compose = compose();
    let dockerfile = Dockerfile::read();
    let mut grpc_ports = BTreeSet::new();
    let mut http_ports = BTreeSet::new();
    for replica in REPLICAS {
        let env = environment(service(&compose, replica));
        grpc_ports.insert(port_of(&env["CONTACTD_LISTEN"]));
        http_ports.insert(port_of(&env["CONTACTD_HTTP_LISTEN"]));
        assert!(
            service(&compose, replica)["ports"].is_null(),
            "{replica} is reached through nginx only"
        );
    }
    assert_eq!(grpc_ports.len(), 1, "the replicas listen alike");
    assert_eq!(http_ports.len(), 1, "the replicas listen alike");
    let (grpc, http) = (
        grpc_ports.pop_first().unwrap(),
        http_ports.pop_first().unwrap(),
    );
    assert_eq!(
        dockerfile.expose,
        BTreeSet::from([grpc, http]),
        "the Dockerfile exposes the ports the replicas listen on"
    );

    // The health check asks the HTTP port.
    let probe = Cli::command();
    let probe = probe.find_subcommand("probe").unwrap();
    let url = probe
        .get_arguments()
        .find(|arg| arg.get_id() == "url")
        .and_then(|arg| arg.get_default_values().first())
        .map(|url| url.to_string_lossy().into_owned())
        .unwrap();
    assert_eq!(
        dockerfile.healthcheck,
        ["contactd", "probe"],
        "the probe asks its default URL"
    );
    assert_eq!(url, format!("http://127.0.0.1:{http}/readyz"));

    // nginx forwards to every replica on those ports, and listens where it is published.
    let nginx = read("deploy/nginx/nginx.conf");
    let upstream = |name: &str| -> BTreeSet<String> {
        let block = nginx
            .split(&format!("upstream {name} {{"))
            .nth(1)
            .unwrap_or_else(|| panic!("no upstream {name}"));
        let block = &block[..block.find('}').unwrap()];
        block
            .lines()
            .map(str::trim)
            .filter_map(|line| line.strip_prefix("server "))
            .map(|server| server.trim_end_matches(';').to_owned())
            .collect()
    };
    let servers = |port: u16| -> BTreeSet<String> {
        REPLICAS
            .iter()
            .map(|replica| format!("{replica}:{port}"))
            .collect()
    };
    assert_eq!(upstream("contactd_grpc"), servers(grpc));
    assert_eq!(upstream("contactd_http"), servers(http));
    assert!(nginx.contains("grpc_pass grpc://contactd_grpc;"));
    assert!(nginx.contains("proxy_pass http://contactd_http;"));
    let listens: BTreeSet<u16> = nginx
        .lines()
        .map(str::trim)
        .filter_map(|line| line.strip_prefix("listen "))
        .map(|port| port.trim_end_matches(';').parse().unwrap())
        .collect();
    assert_eq!(listens, BTreeSet::from([grpc, http]));
    let published: BTreeSet<(String, u16)> = service(&compose, "nginx")["ports"]
        .as_array()
        .expect("nginx publishes ports")
        .iter()
        .map(|port| {
            let parts: Vec<&str> = port.as_str().unwrap().split(':').collect();
            assert_eq!(parts.len(), 3, "{port}: HOST_IP:HOST_PORT:CONTAINER_PORT");
            assert_eq!(parts[1], parts[2], "{port}: the same port outside");
            (parts[0].to_owned(), parts[2].parse().unwrap())
        })
        .collect();
    assert_eq!(
        published,
        BTreeSet::from([
            ("127.0.0.1".to_owned(), grpc),
            ("127.0.0.1".to_owned(), http)
        ])
    );
    // The links in the emails lead to nginx's HTTP port.
    for replica in REPLICAS {
        let env = environment(service(&compose, replica));
        assert_eq!(
            env["CONTACTD_PUBLIC_URL"],
            format!("http://127.0.0.1:{http}")
        );
    }
}

#[test]
fn every_file_the_compose_file_mounts_is_in_the_repository() {
    let compose = compose();
    let services = compose["services"].as_object().unwrap();
    let mut mounted = 0;
    for (name, service) in services {
        for (host, _) in bind_mounts(service) {
            assert!(
                host.exists(),
                "{name} mounts {}, which is missing",
                host.display()
            );
            mounted += 1;
        }
    }
    assert!(
        mounted >= 6,
        "nginx, the token keys, Prometheus and Grafana: {mounted}"
    );
    let prometheus = read("deploy/prometheus/prometheus.yml");
    let http = port_of(&environment(service(&compose, REPLICAS[0]))["CONTACTD_HTTP_LISTEN"]);
    for replica in REPLICAS {
        assert!(
            prometheus.contains(&format!("{replica}:{http}")),
            "Prometheus scrapes {replica}:{http}"
        );
    }
    assert!(
        prometheus.contains("alerts.yml"),
        "Prometheus loads the alert rules"
    );
    // Grafana's provisioning reads the dashboards where they are mounted, from Prometheus.
    let grafana = service(&compose, "grafana");
    let dashboards = bind_mounts(grafana)
        .into_iter()
        .find(|(host, _)| host.ends_with("deploy/grafana/dashboards"))
        .map(|(_, container)| container)
        .expect("the dashboards are mounted");
    let provisioning: String = walk(&repository().join("deploy/grafana/provisioning"))
        .iter()
        .map(|file| std::fs::read_to_string(file).unwrap_or_default())
        .collect();
    assert!(
        provisioning.contains(&dashboards),
        "a dashboard provider reads {dashboards}"
    );
    assert!(
        provisioning.contains("http://prometheus:9090"),
        "the data source is the compose file's Prometheus"
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// The Dockerfile's instructions that can be checked here.
struct Dockerfile {
    from: Vec<String>,
    run: Vec<String>,
    user: Vec<String>,
    expose: BTreeSet<u16>,
    healthcheck: Vec<String>,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
}

impl Dockerfile {
    fn read() -> Self {
        let text = read("Dockerfile");
        // Continuation lines joined, comments dropped.
        let joined = text
            .lines()
            .filter(|line| !line.trim_start().starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
            .replace("\\\n", " ");
        let mut file = Self {
            from: Vec::new(),
            run: Vec::new(),
            user: Vec::new(),
            expose: BTreeSet::new(),
            healthcheck: Vec::new(),
            entrypoint: Vec::new(),
            cmd: Vec::new(),
        };
        let words = |json: &str| -> Vec<String> {
            serde_json::from_str(json.trim()).unwrap_or_else(|e| panic!("{json}: {e} (exec form)"))
        };
        for line in joined
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
        {
            let (instruction, rest) = line.split_once(' ').unwrap_or((line, ""));
            match instruction {
                "FROM" => file.from.push(rest.trim().to_owned()),
                "RUN" => file.run.push(rest.trim().to_owned()),
                "USER" => file.user.push(rest.trim().to_owned()),
                "EXPOSE" => file.expose.extend(
                    rest.split_whitespace()
                        .map(|port| port.parse::<u16>().unwrap()),
                ),
                "HEALTHCHECK" => {
                    let cmd = rest.split_once("CMD").expect("HEALTHCHECK … CMD").1;
                    file.healthcheck = words(cmd);
                }
                "ENTRYPOINT" => file.entrypoint = words(rest),
                "CMD" => file.cmd = words(rest),
                _ => {}
            }
        }
        file
    }
}

#[test]
fn the_dockerfile_builds_a_real_package_and_runs_real_commands() {
    let dockerfile = Dockerfile::read();
    assert_eq!(
        dockerfile.from.first().unwrap(),
        "rust:1.95-bookworm AS build"
    );
    assert_eq!(dockerfile.from.last().unwrap(), "debian:bookworm-slim");
    let user = dockerfile.user.last().expect("a USER");
    assert!(user != "root" && user != "0", "runs as {user}");

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let build = dockerfile
        .run
        .iter()
        .flat_map(|run| run.split("&&"))
        .map(str::trim)
        .find_map(|part| part.split_once("cargo build "))
        .map(|(_, arguments)| arguments.split_whitespace().collect::<Vec<_>>())
        .expect("a cargo build");
    let help = Command::new(&cargo)
        .args(["build", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let metadata = Command::new(&cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--locked"])
        .current_dir(repository())
        .output()
        .unwrap();
    assert!(
        metadata.status.success(),
        "--locked: {}",
        String::from_utf8_lossy(&metadata.stderr)
    );
    let metadata: Value = serde_json::from_slice(&metadata.stdout).unwrap();
    let mut package = None;
    let mut arguments = build.iter();
    while let Some(argument) = arguments.next() {
        assert!(
            help.contains(&format!("{argument} ")) || help.contains(&format!("{argument},")),
            "cargo build has no {argument}"
        );
        if *argument == "-p" || *argument == "--package" {
            package = arguments.next().copied();
        }
    }
    let package = package.expect("cargo build -p PACKAGE");
    let package = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == package)
        .unwrap_or_else(|| panic!("no package {package} in the workspace"));
    let binaries: Vec<&str> = package["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|target| {
            target["kind"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k == "bin")
        })
        .map(|target| target["name"].as_str().unwrap())
        .collect();
    assert_eq!(binaries, ["contactd"]);
    let copied = dockerfile
        .run
        .iter()
        .any(|run| run.contains("cp target/release/contactd "));
    assert!(copied, "the binary cargo built is the one copied");
    let installs: Vec<&str> = dockerfile
        .run
        .iter()
        .flat_map(|run| run.split("&&"))
        .filter_map(|part| part.trim().strip_prefix("apt-get install "))
        .flat_map(str::split_whitespace)
        .filter(|word| !word.starts_with('-'))
        .collect();
    assert_eq!(
        installs,
        ["ca-certificates"],
        "the runtime image has nothing else"
    );

    for command in [
        &dockerfile.healthcheck,
        &[&dockerfile.entrypoint[..], &dockerfile.cmd[..]].concat(),
    ] {
        assert_eq!(command[0], "contactd");
        let help = Command::new(env!("CARGO_BIN_EXE_contactd"))
            .args(&command[1..])
            .arg("--help")
            .env_clear()
            .output()
            .unwrap();
        assert!(help.status.success(), "{command:?} is no command");
    }
}

/// The token of `deploy/dev-identity` is one a server with the replicas' identity settings
/// accepts, so that the README's grpcurl line works against the deployment.
async fn the_development_token_is_accepted_as_the_replicas_are_configured(db: TestDb) {
    let compose = compose();
    let replica = service(&compose, REPLICAS[0]);
    let env = environment(replica);
    let mounts = bind_mounts(replica);
    let keys = mounts
        .iter()
        .find(|(_, container)| *container == env["CONTACTD_TOKEN_KEYS"])
        .map(|(host, _)| host.display().to_string())
        .expect("the token keys are mounted");
    let server = Process::start_with(
        &db,
        &[
            "--identity-mode",
            &env["CONTACTD_IDENTITY_MODE"],
            "--token-keys",
            &keys,
            "--token-issuer",
            &env["CONTACTD_TOKEN_ISSUER"],
            "--token-audience",
            &env["CONTACTD_TOKEN_AUDIENCE"],
        ],
        "warn",
    );
    let mut client = server.client().await;
    let token = read("deploy/dev-identity/token");
    let mut request = tonic::Request::new(add_request("Deployed"));
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", token.trim()).parse().unwrap(),
    );
    let added = client
        .add_message_contact(request)
        .await
        .expect("the development token is accepted")
        .into_inner();
    assert!(added.contact.is_some());
    let refused = client
        .add_message_contact(as_account(ACCOUNT, add_request("Untokened")))
        .await;
    assert!(refused.is_err(), "a header alone is not enough there");
}

both_backends!(the_development_token_is_accepted_as_the_replicas_are_configured);
