//! The docker-compose stack, checked without Docker (these machines have none): the compose file,
//! the collector's configuration and the service's configuration are parsed, and every address
//! one of them names must be a service of the stack on a port that service listens on.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_norway::Value as Yaml;

mod support;
use support::repo;

fn yaml(path: &str) -> Yaml {
    let text = std::fs::read_to_string(repo().join(path)).unwrap();
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{path} is not valid YAML: {e}"))
}

fn toml_file(path: &str) -> toml::Value {
    let text = std::fs::read_to_string(repo().join(path)).unwrap();
    toml::from_str(&text).unwrap_or_else(|e| panic!("{path} is not valid TOML: {e}"))
}

fn strings(value: &Yaml) -> Vec<String> {
    value
        .as_sequence()
        .map(|items| {
            items
                .iter()
                .map(|v| match v {
                    Yaml::String(s) => s.clone(),
                    Yaml::Number(n) => n.to_string(),
                    other => panic!("expected a string, got {other:?}"),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// (host, port) of `http://host:port/…` or `host:port`.
fn host_port(address: &str) -> (String, u16) {
    let rest = address.split_once("://").map_or(address, |(_, r)| r);
    let authority = rest.split('/').next().unwrap();
    let (host, port) = authority
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("`{address}` names no port"));
    (host.to_owned(), port.parse().unwrap())
}

struct Stack {
    services: BTreeMap<String, Yaml>,
}

impl Stack {
    fn load() -> Self {
        let compose = yaml("docker-compose.yml");
        let services = compose["services"]
            .as_mapping()
            .expect("docker-compose.yml has services")
            .iter()
            .map(|(k, v)| (k.as_str().unwrap().to_owned(), v.clone()))
            .collect();
        Self { services }
    }

    /// The ports a service listens on inside the network: the container side of `ports`, and
    /// `expose`.
    fn container_ports(&self, service: &str) -> BTreeSet<u16> {
        let spec = &self.services[service];
        let mut ports: BTreeSet<u16> = strings(&spec["ports"])
            .iter()
            .map(|p| p.rsplit(':').next().unwrap().parse().unwrap())
            .collect();
        ports.extend(
            strings(&spec["expose"])
                .iter()
                .map(|p| p.parse::<u16>().unwrap()),
        );
        ports
    }

    /// An address the stack serves: its host is a service that listens on its port.
    fn assert_serves(&self, address: &str, expected_service: &str, from: &str) {
        let (host, port) = host_port(address);
        assert_eq!(host, expected_service, "{from}: `{address}`");
        assert!(
            self.services.contains_key(&host),
            "{from}: `{address}` names `{host}`, which is not a service of docker-compose.yml"
        );
        assert!(
            self.container_ports(&host).contains(&port),
            "{from}: `{address}`: {host} listens on {:?}, not {port}",
            self.container_ports(&host)
        );
    }

    /// The container path that a bind mount of `source` (relative to the repo) lands on.
    fn mount_target(&self, service: &str, source: &str) -> String {
        strings(&self.services[service]["volumes"])
            .iter()
            .find_map(|v| {
                let mut parts = v.split(':');
                (parts.next() == Some(source)).then(|| parts.next().unwrap().to_owned())
            })
            .unwrap_or_else(|| panic!("{service} does not mount {source}"))
    }
}

#[test]
fn the_compose_file_is_a_complete_consistent_stack() {
    let stack = Stack::load();
    for required in [
        "sextant",
        "ollama",
        "qdrant",
        "mlflow",
        "postgres",
        "rustfs",
        "otel-collector",
        "jaeger",
        "searxng",
    ] {
        assert!(
            stack.services.contains_key(required),
            "no `{required}` service"
        );
    }
    let compose = yaml("docker-compose.yml");
    let volumes: BTreeSet<String> = compose["volumes"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    let mut host_ports = BTreeSet::new();
    for (name, spec) in &stack.services {
        assert!(
            spec.get("image").is_some() || spec.get("build").is_some(),
            "{name} has neither image nor build"
        );
        if let Some(depends) = spec.get("depends_on").and_then(Yaml::as_mapping) {
            for dependency in depends.keys() {
                let dependency = dependency.as_str().unwrap();
                assert!(
                    stack.services.contains_key(dependency),
                    "{name} depends on `{dependency}`, which is not a service"
                );
            }
        }
        for volume in strings(&spec["volumes"]) {
            let source = volume.split(':').next().unwrap();
            if source.starts_with("./") {
                assert!(
                    repo().join(source).exists(),
                    "{name} mounts {source}, which is not in the repository"
                );
            } else {
                assert!(
                    volumes.contains(source),
                    "{name} uses undeclared volume `{source}`"
                );
            }
        }
        for port in strings(&spec["ports"]) {
            // Published on loopback only: 127.0.0.1:HOST:CONTAINER.
            let parts: Vec<&str> = port.split(':').collect();
            assert!(
                parts.len() == 3 && parts[0] == "127.0.0.1",
                "{name} publishes `{port}` beyond loopback; publish as 127.0.0.1:HOST:CONTAINER"
            );
            let host = parts[1].to_owned();
            assert!(
                host_ports.insert(host.clone()),
                "host port {host} is published twice"
            );
        }
    }
    assert!(
        Path::new(&repo().join("Dockerfile")).is_file(),
        "the sextant service builds from Dockerfile"
    );

    // MLflow: the version the suite tests against, PostgreSQL backend, S3-compatible artifacts
    // on RustFS, proxied.
    let mlflow = &stack.services["mlflow"];
    let tested = std::fs::read_to_string(repo().join("xtask/src/venv.rs")).unwrap();
    let image = mlflow["image"].as_str().unwrap();
    let version = image.rsplit(":v").next().unwrap();
    assert!(
        tested.contains(&format!("mlflow=={version}")),
        "the stack runs {image}, but the tests run another MLflow"
    );
    let command = strings(&mlflow["entrypoint"]).join(" ");
    let backend = command
        .split_whitespace()
        .skip_while(|w| *w != "--backend-store-uri")
        .nth(1)
        .expect("a backend store");
    assert!(backend.starts_with("postgresql://"), "{backend}");
    let (_, at) = backend.split_once('@').unwrap();
    stack.assert_serves(at, "postgres", "mlflow --backend-store-uri");
    assert!(
        command.contains("--artifacts-destination s3://") && command.contains("--serve-artifacts")
    );
    let s3 = mlflow["environment"]["MLFLOW_S3_ENDPOINT_URL"]
        .as_str()
        .unwrap();
    stack.assert_serves(s3, "rustfs", "mlflow MLFLOW_S3_ENDPOINT_URL");
}

#[test]
fn the_collector_takes_otlp_and_exports_to_jaeger_and_mlflow() {
    let stack = Stack::load();
    let collector = yaml("configs/otel-collector.yaml");
    let section = |name: &str| -> BTreeSet<String> {
        collector[name]
            .as_mapping()
            .unwrap_or_else(|| panic!("no `{name}` section"))
            .keys()
            .map(|k| k.as_str().unwrap().to_owned())
            .collect()
    };
    let (receivers, processors, exporters) = (
        section("receivers"),
        section("processors"),
        section("exporters"),
    );
    let pipelines = collector["service"]["pipelines"].as_mapping().unwrap();
    for (name, pipeline) in pipelines {
        let name = name.as_str().unwrap();
        for (kind, defined) in [
            ("receivers", &receivers),
            ("processors", &processors),
            ("exporters", &exporters),
        ] {
            for component in strings(&pipeline[kind]) {
                assert!(
                    defined.contains(&component),
                    "pipeline {name} uses {kind} `{component}`, which is not defined"
                );
            }
        }
    }
    let traces = &collector["service"]["pipelines"]["traces"];
    assert_eq!(strings(&traces["receivers"]), ["otlp"]);
    assert!(strings(&traces["processors"]).contains(&"batch".to_owned()));

    // OTLP in, on ports the collector's service publishes.
    for protocol in ["grpc", "http"] {
        let endpoint = collector["receivers"]["otlp"]["protocols"][protocol]["endpoint"]
            .as_str()
            .unwrap();
        let (_, port) = host_port(endpoint);
        assert!(
            stack.container_ports("otel-collector").contains(&port),
            "{protocol} {port}"
        );
    }
    // Out to Jaeger over OTLP and to MLflow's /v1/traces with the experiment header.
    let exported = strings(&traces["exporters"]);
    let jaeger = exported
        .iter()
        .find(|e| e.starts_with("otlp/") || e.as_str() == "otlp")
        .expect("an OTLP exporter in the traces pipeline");
    let endpoint = collector["exporters"][jaeger.as_str()]["endpoint"]
        .as_str()
        .unwrap();
    stack.assert_serves(endpoint, "jaeger", "the collector's Jaeger exporter");
    let mlflow = exported
        .iter()
        .find(|e| e.starts_with("otlphttp"))
        .expect("an OTLP/HTTP exporter in the traces pipeline");
    let exporter = &collector["exporters"][mlflow.as_str()];
    let url = exporter["traces_endpoint"].as_str().unwrap();
    assert!(url.ends_with("/v1/traces"), "{url}");
    stack.assert_serves(url, "mlflow", "the collector's MLflow exporter");
    let experiment = exporter["headers"]["x-mlflow-experiment-id"]
        .as_str()
        .unwrap();
    assert!(
        experiment.parse::<u64>().is_ok(),
        "MLflow needs a numeric experiment id: {experiment}"
    );
}

#[test]
fn the_service_configuration_names_the_stacks_services() {
    let stack = Stack::load();
    let path = repo().join("configs/sextant.compose.toml");
    // The real loader validates it: unknown keys and bad values fail here.
    let config = sextant_runtime::SextantConfig::load_with_env(Some(&path), false)
        .unwrap_or_else(|e| panic!("configs/sextant.compose.toml: {e}"));
    let file = toml_file("configs/sextant.compose.toml");
    let from = "configs/sextant.compose.toml";
    stack.assert_serves(
        file["telemetry"]["otlp"]["endpoint"].as_str().unwrap(),
        "otel-collector",
        from,
    );
    stack.assert_serves(&config.providers.ollama.host, "ollama", from);
    stack.assert_serves(
        file["memory"]["qdrant"]["url"].as_str().unwrap(),
        "qdrant",
        from,
    );
    assert_eq!(file["memory"]["store"].as_str(), Some("qdrant"));
    stack.assert_serves(
        file["tools"]["web_search"]["searxng"]["url"]
            .as_str()
            .unwrap(),
        "searxng",
        from,
    );
    stack.assert_serves(config.tracking.uri.as_deref().unwrap(), "mlflow", from);
    // The service reads its own section, with its own validation.
    let serve: sextant_server::ServeConfig = config.section("serve").unwrap();
    let (_, port) = host_port(&serve.addr);
    assert!(
        stack.container_ports("sextant").contains(&port),
        "the service publishes {port}"
    );

    // The service container reads this file and the agents the file points at.
    let sextant = &stack.services["sextant"];
    let config_path = sextant["environment"]["SEXTANT_CONFIG"].as_str().unwrap();
    assert_eq!(
        stack.mount_target("sextant", "./configs/sextant.compose.toml"),
        config_path
    );
    let agents_dir = serve.agents_dir.as_ref().unwrap();
    assert_eq!(
        stack.mount_target("sextant", "./configs/agents"),
        agents_dir.display().to_string()
    );
    let default = serve.default_agent.as_deref().unwrap();
    let agent =
        sextant_agent::AgentConfig::load(&repo().join(format!("configs/agents/{default}.toml")))
            .unwrap();
    assert_eq!(
        format!("{:?}", agent.model.provider).to_lowercase(),
        "ollama"
    );
    // The models the agent and the embedder use are the ones the stack pulls.
    let pull = strings(&stack.services["ollama-pull"]["entrypoint"]).join(" ");
    assert!(
        pull.contains(&format!("ollama pull {}", agent.model.name)),
        "{pull}"
    );
    assert!(
        pull.contains(&format!("ollama pull {}", config.memory.embedder.model)),
        "{pull}"
    );
    // Runs go to the experiment whose id the collector sends the traces to (Default = 0).
    assert_eq!(config.tracking.experiment, "Default");
    // The service listens beyond loopback inside its container, so it has API keys, and every
    // key it reads from the environment is one compose sets.
    assert!(
        !serve.auth.keys.is_empty(),
        "the compose service declares API keys"
    );
    for key in &serve.auth.keys {
        let key_env = key
            .key_env
            .as_deref()
            .expect("compose keys come from the environment");
        assert!(
            sextant["environment"].get(key_env).is_some(),
            "compose sets {key_env}"
        );
    }

    // SearXNG answers the JSON the web_search tool reads.
    let searxng = yaml("configs/searxng/settings.yml");
    assert!(strings(&searxng["search"]["formats"]).contains(&"json".to_owned()));
    assert_eq!(
        stack.mount_target("searxng", "./configs/searxng/settings.yml"),
        "/etc/searxng/settings.yml"
    );
}
