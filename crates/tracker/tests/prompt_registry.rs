//! The prompt registry's contract, run against both backends: the embedded SQLite registry always,
//! and a real MLflow tracking server in the `#[ignore]`d tests `cargo xtask test` runs (it starts
//! MLflow 3.17.2); plus the round trip with the Python `mlflow` client in both directions (the xtask
//! venv's interpreter), the cache's TTL and outage fallback, and concurrent registration.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use sextant_tracker::local::LocalPromptRegistry;
use sextant_tracker::mlflow::{MlflowClient, MlflowPromptRegistry};
use sextant_tracker::prompts::{
    CachedPromptRegistry, ChatMessageTemplate, NewPromptVersion, PromptFilter, PromptInfo,
    PromptRegistry, PromptTemplate, PromptUri, PromptVersion, PromptVersionRef, RegistryError,
    TemplateError,
};

use sextant_testkit::{mlflow_url, python};

mod support;
use support::unique;

fn mlflow_registry(url: &str) -> MlflowPromptRegistry {
    MlflowPromptRegistry::new(MlflowClient::new(url, None, Duration::from_secs(30)).unwrap())
}

fn chat_v1() -> NewPromptVersion {
    NewPromptVersion::new(PromptTemplate::chat([
        ChatMessageTemplate::new("system", "You are a {{ style }} assistant."),
        ChatMessageTemplate::new("user", "{{ question }}"),
    ]))
    .commit_message("Initial QA prompt template")
    .tag("task", "question-answering")
}

/// Every operation of the API, with the errors a user meets.
async fn contract(registry: &dyn PromptRegistry) {
    let name = unique("contract");
    let v1 = registry.register(&name, chat_v1()).await.unwrap();
    assert_eq!(v1.version, 1);
    assert_eq!(
        v1.commit_message.as_deref(),
        Some("Initial QA prompt template")
    );
    let mut text = NewPromptVersion::new(PromptTemplate::text(
        "Answer concisely: {{ question }} (context: {{context}})",
    ))
    .commit_message("second");
    text.response_format =
        Some(json!({"type": "object", "properties": {"answer": {"type": "string"}}}));
    text.model_config = Some(json!({"model_name": "SmolLM2-135M-Instruct", "temperature": 0.2}));
    let v2 = registry.register(&name, text.clone()).await.unwrap();
    assert_eq!(v2.version, 2, "versions are numbered per prompt, from 1");

    // Read back exactly what was written.
    let got = registry.get_version(&name, 1).await.unwrap();
    assert_eq!(got.template, chat_v1().template);
    assert_eq!(
        got.tags.get("task").map(String::as_str),
        Some("question-answering")
    );
    let got = registry.get_version(&name, 2).await.unwrap();
    assert!(got.same_content(&text), "{got:?}");
    assert_eq!(got.commit_message.as_deref(), Some("second"));
    assert!(
        got.tags
            .keys()
            .all(|k| !k.starts_with("mlflow.") && !k.starts_with("_mlflow"))
    );

    // latest, aliases, URIs.
    assert_eq!(registry.resolve_alias(&name, "latest").await.unwrap(), 2);
    registry.set_alias(&name, "production", 1).await.unwrap();
    let uri: PromptUri = format!("prompts:/{name}@production").parse().unwrap();
    let loaded = registry.load(&uri).await.unwrap();
    assert_eq!(loaded.version, 1);
    assert_eq!(loaded.aliases, ["production"]);
    let rendered = loaded
        .render(&json!({"style": "terse", "question": "Why is the sky blue?"}))
        .unwrap();
    assert_eq!(
        (rendered.name.as_str(), rendered.version),
        (name.as_str(), 1)
    );
    assert_eq!(rendered.messages()[0].content, "You are a terse assistant.");
    let missing = loaded.render(&json!({"question": "q"})).unwrap_err();
    assert!(
        matches!(&missing, TemplateError::MissingVariable { variable, prompt } if variable == "style" && prompt.ends_with("/1")),
        "{missing:?}"
    );
    registry.set_alias(&name, "production", 2).await.unwrap();
    assert_eq!(
        registry.resolve_alias(&name, "production").await.unwrap(),
        2
    );
    let latest = registry
        .load(&format!("prompts:/{name}").parse().unwrap())
        .await
        .unwrap();
    assert_eq!(latest.version, 2);

    // Listing, search, tags.
    let versions = registry.list_versions(&name).await.unwrap();
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(versions[1].aliases, ["production"]);
    registry
        .set_prompt_tag(&name, "team", "search")
        .await
        .unwrap();
    let info: PromptInfo = registry.get_prompt(&name).await.unwrap();
    assert_eq!(info.latest_version, Some(2));
    assert_eq!(info.aliases.get("production"), Some(&2));
    assert_eq!(info.tags.get("team").map(String::as_str), Some("search"));
    let by_name = registry
        .search(&PromptFilter {
            name_contains: Some(name.to_uppercase()),
            ..PromptFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(by_name.iter().map(|p| &p.name).collect::<Vec<_>>(), [&name]);
    let by_tag = registry
        .search(&PromptFilter {
            tags: BTreeMap::from([("team".into(), "search".into())]),
            ..PromptFilter::default()
        })
        .await
        .unwrap();
    assert!(by_tag.iter().any(|p| p.name == name));
    let none = registry
        .search(&PromptFilter {
            tags: BTreeMap::from([("team".into(), "nobody".into())]),
            ..PromptFilter::default()
        })
        .await
        .unwrap();
    assert!(none.iter().all(|p| p.name != name));

    // Errors name what is missing.
    let err = registry.get_version(&name, 9).await.unwrap_err();
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("version 9"), "{err}");
    let err = registry.resolve_alias(&name, "nope").await.unwrap_err();
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("nope"), "{err}");
    let err = registry.get_prompt(&unique("absent")).await.unwrap_err();
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err}");
    let err = registry
        .set_alias(&name, "production", 7)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err}");
    assert_eq!(
        registry.resolve_alias(&name, "production").await.unwrap(),
        2
    );
    let err = registry.set_alias(&name, "latest", 1).await.unwrap_err();
    assert!(matches!(err, RegistryError::Invalid { .. }), "{err}");
    let err = registry
        .register(
            &name,
            NewPromptVersion::new(PromptTemplate::text("{{#if x}}")),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Template(_)), "{err}");
    assert_eq!(registry.resolve_alias(&name, "latest").await.unwrap(), 2);

    registry.delete_alias(&name, "production").await.unwrap();
    let err = registry
        .resolve_alias(&name, "production")
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err}");
    let err = registry
        .delete_alias(&name, "production")
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn the_embedded_registry_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let registry = LocalPromptRegistry::open(dir.path().join("registry.db")).unwrap();
    contract(&registry).await;

    // Links between traces and versions are kept and readable.
    let trace = "0123456789abcdef0123456789abcdef";
    let name = unique("linked");
    let v1 = registry.register(&name, chat_v1()).await.unwrap();
    registry.link_trace(trace, &[v1.reference()]).await.unwrap();
    registry.link_trace(trace, &[v1.reference()]).await.unwrap();
    assert_eq!(
        registry.linked_traces(&v1.reference()).await.unwrap(),
        [trace]
    );
    let err = registry
        .link_trace(
            trace,
            &[PromptVersionRef {
                name: name.clone(),
                version: 5,
            }],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err}");
    assert!(registry.link_trace("xyz", &[]).await.is_err());
}

#[tokio::test]
#[ignore = "needs a real MLflow server: cargo xtask test"]
async fn the_mlflow_registry_keeps_the_contract() {
    contract(&mlflow_registry(&mlflow_url())).await;
}

const PY_LOAD: &str = r#"
import json, sys, mlflow
p = mlflow.genai.load_prompt(sys.argv[1])
print(json.dumps({"name": p.name, "version": p.version, "template": p.template,
                  "commit_message": p.commit_message, "tags": p.tags,
                  "response_format": p.response_format, "model_config": p.model_config}))
"#;

const PY_REGISTER: &str = r#"
import json, sys, mlflow
name = sys.argv[1]
p = mlflow.genai.register_prompt(name=name, template=json.loads(sys.argv[2]),
                                 commit_message="from python", tags={"origin": "python"})
mlflow.genai.set_prompt_alias(name, alias="production", version=p.version)
print(json.dumps({"version": p.version}))
"#;

#[tokio::test]
#[ignore = "needs a real MLflow server and its Python client: cargo xtask test"]
async fn prompts_round_trip_with_the_python_client_both_ways() {
    let url = mlflow_url();
    let registry = mlflow_registry(&url);

    // Rust writes, Python reads through the alias.
    let name = unique("rust-to-python");
    registry
        .register(
            &name,
            NewPromptVersion::new(PromptTemplate::text("old {{ question }}")),
        )
        .await
        .unwrap();
    let mut v2 = chat_v1();
    v2.commit_message = Some("Improved: ünïcode and \"quotes\"".into());
    v2.model_config = Some(json!({"temperature": 0.1, "max_tokens": 64}));
    let v2 = registry.register(&name, v2).await.unwrap();
    registry
        .set_alias(&name, "production", v2.version)
        .await
        .unwrap();
    let seen = python(&url, PY_LOAD, &[&format!("prompts:/{name}@production")]);
    assert_eq!(seen["version"], 2);
    assert_eq!(
        seen["template"],
        json!([
            {"role": "system", "content": "You are a {{ style }} assistant."},
            {"role": "user", "content": "{{ question }}"}
        ])
    );
    assert_eq!(seen["commit_message"], "Improved: ünïcode and \"quotes\"");
    assert_eq!(seen["tags"]["task"], "question-answering");
    assert_eq!(seen["model_config"]["max_tokens"], 64);

    // Python writes, Rust reads through the alias.
    let name = unique("python-to-rust");
    let template = json!([{"role": "user", "content": "Hi {{ name }}, {{ question }}"}]);
    python(&url, PY_REGISTER, &[&name, &template.to_string()]);
    let uri: PromptUri = format!("prompts:/{name}@production").parse().unwrap();
    let loaded: PromptVersion = registry.load(&uri).await.unwrap();
    assert_eq!(loaded.version, 1);
    assert_eq!(
        loaded.template,
        PromptTemplate::chat([ChatMessageTemplate::new(
            "user",
            "Hi {{ name }}, {{ question }}"
        )])
    );
    assert_eq!(loaded.commit_message.as_deref(), Some("from python"));
    assert_eq!(
        loaded.tags.get("origin").map(String::as_str),
        Some("python")
    );
    let rendered = loaded
        .render(&json!({"name": "Ada", "question": "ok?"}))
        .unwrap();
    assert_eq!(rendered.messages()[0].content, "Hi Ada, ok?");
}

/// Fault injection: a registry that can be switched into an outage, counting the calls that reach it.
struct OutageRegistryDouble {
    inner: LocalPromptRegistry,
    down: AtomicBool,
    alias_calls: AtomicUsize,
}

impl OutageRegistryDouble {
    fn check(&self) -> Result<(), RegistryError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(RegistryError::Unavailable {
                backend: "mlflow",
                location: "http://127.0.0.1:9".into(),
                message: "cannot connect".into(),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl PromptRegistry for OutageRegistryDouble {
    fn backend(&self) -> &'static str {
        "outage-double"
    }
    async fn register(
        &self,
        name: &str,
        v: NewPromptVersion,
    ) -> Result<PromptVersion, RegistryError> {
        self.check()?;
        self.inner.register(name, v).await
    }
    async fn get_version(&self, name: &str, version: u32) -> Result<PromptVersion, RegistryError> {
        self.check()?;
        self.inner.get_version(name, version).await
    }
    async fn resolve_alias(&self, name: &str, alias: &str) -> Result<u32, RegistryError> {
        self.alias_calls.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        self.inner.resolve_alias(name, alias).await
    }
    async fn set_alias(&self, name: &str, alias: &str, version: u32) -> Result<(), RegistryError> {
        self.check()?;
        self.inner.set_alias(name, alias, version).await
    }
    async fn delete_alias(&self, name: &str, alias: &str) -> Result<(), RegistryError> {
        self.check()?;
        self.inner.delete_alias(name, alias).await
    }
    async fn set_prompt_tag(
        &self,
        name: &str,
        key: &str,
        value: &str,
    ) -> Result<(), RegistryError> {
        self.check()?;
        self.inner.set_prompt_tag(name, key, value).await
    }
    async fn get_prompt(&self, name: &str) -> Result<PromptInfo, RegistryError> {
        self.check()?;
        self.inner.get_prompt(name).await
    }
    async fn search(&self, filter: &PromptFilter) -> Result<Vec<PromptInfo>, RegistryError> {
        self.check()?;
        self.inner.search(filter).await
    }
    async fn list_versions(&self, name: &str) -> Result<Vec<PromptVersion>, RegistryError> {
        self.check()?;
        self.inner.list_versions(name).await
    }
    async fn link_trace(
        &self,
        trace_id: &str,
        v: &[PromptVersionRef],
    ) -> Result<(), RegistryError> {
        self.check()?;
        self.inner.link_trace(trace_id, v).await
    }
}

#[tokio::test]
async fn the_cache_trusts_an_alias_for_its_ttl_and_serves_it_through_an_outage() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(OutageRegistryDouble {
        inner: LocalPromptRegistry::open(dir.path().join("registry.db")).unwrap(),
        down: AtomicBool::new(false),
        alias_calls: AtomicUsize::new(0),
    });
    for text in ["v1 {{ question }}", "v2 {{ question }}"] {
        backend
            .register("qa", NewPromptVersion::new(PromptTemplate::text(text)))
            .await
            .unwrap();
    }
    backend.set_alias("qa", "production", 1).await.unwrap();
    let ttl = Duration::from_millis(400);
    let cache = CachedPromptRegistry::with_alias_ttl(backend.clone(), ttl);
    let uri: PromptUri = "prompts:/qa@production".parse().unwrap();

    assert_eq!(cache.load(&uri).await.unwrap().version, 1);
    // Another process moves the alias; within the TTL the cache does not ask again.
    backend.set_alias("qa", "production", 2).await.unwrap();
    let calls = backend.alias_calls.load(Ordering::SeqCst);
    for _ in 0..5 {
        assert_eq!(cache.load(&uri).await.unwrap().version, 1);
    }
    assert_eq!(
        backend.alias_calls.load(Ordering::SeqCst),
        calls,
        "served from the cache"
    );
    tokio::time::sleep(ttl + Duration::from_millis(50)).await;
    assert_eq!(
        cache.load(&uri).await.unwrap().version,
        2,
        "the move is seen after the TTL"
    );

    // Outage: the expired alias and the cached version are served; an uncached one fails clearly.
    backend
        .register(
            "qa",
            NewPromptVersion::new(PromptTemplate::text("v3 {{ question }}")),
        )
        .await
        .unwrap();
    tokio::time::sleep(ttl + Duration::from_millis(50)).await;
    backend.down.store(true, Ordering::SeqCst);
    let served = cache.load(&uri).await.unwrap();
    assert_eq!(
        (served.version, served.template.to_stored_string().as_str()),
        (2, "v2 {{ question }}")
    );
    assert_eq!(
        cache
            .load(&"prompts:/qa/1".parse().unwrap())
            .await
            .unwrap()
            .version,
        1
    );
    let err = cache
        .load(&"prompts:/qa/3".parse().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unavailable { .. }), "{err}");
    let err = cache
        .load(&"prompts:/qa@staging".parse().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unavailable { .. }), "{err}");
}

#[tokio::test]
async fn an_unreachable_or_failing_mlflow_is_an_outage_not_a_missing_prompt() {
    // Nothing listens on a port we bound and closed.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let registry = mlflow_registry(&format!("http://127.0.0.1:{port}"));
    let err = registry.get_version("qa", 1).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unavailable { .. }), "{err}");
    assert!(err.to_string().contains(&port.to_string()), "{err}");

    // A server that answers 500 with a body that is not MLflow's error JSON.
    let server = ServerErrorDouble::start();
    let registry = MlflowPromptRegistry::new(
        MlflowClient::new(
            &server.url(),
            Some("s3cret-token".into()),
            Duration::from_secs(5),
        )
        .unwrap(),
    );
    let err = registry
        .resolve_alias("qa", "production")
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unavailable { .. }), "{err}");
    assert!(err.to_string().contains("500"), "{err}");
    assert!(
        !err.to_string().contains("s3cret"),
        "the token leaked: {err}"
    );
    assert!(!format!("{registry:?}").contains("s3cret"));
    assert!(
        server.saw_authorization("Bearer s3cret-token"),
        "the token is sent as a bearer header"
    );
}

/// Fault injection: an HTTP server that answers every request with 500 and records the headers.
struct ServerErrorDouble {
    addr: std::net::SocketAddr,
    headers: Arc<std::sync::Mutex<Vec<String>>>,
}

impl ServerErrorDouble {
    fn start() -> Self {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let headers = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = headers.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    seen.lock().unwrap().push(line.trim().to_owned());
                    line.clear();
                }
                let body = "internal error";
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 500 Internal Server Error\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Self { addr, headers }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn saw_authorization(&self, value: &str) -> bool {
        self.headers
            .lock()
            .unwrap()
            .iter()
            .any(|h| h.eq_ignore_ascii_case(&format!("authorization: {value}")))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_never_duplicate_or_lose_a_version_number() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    // Separate registries = separate SQLite connections, as separate processes have.
    let writers: Vec<LocalPromptRegistry> = (0..4)
        .map(|_| LocalPromptRegistry::open(&path).unwrap())
        .collect();
    let mut tasks = Vec::new();
    for (w, registry) in writers.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut numbers = Vec::new();
            for i in 0..10 {
                let text = format!("writer {w} version {i}: {{{{ question }}}}");
                let version = registry
                    .register(
                        "contended",
                        NewPromptVersion::new(PromptTemplate::text(text)),
                    )
                    .await
                    .unwrap();
                numbers.push(version.version);
            }
            numbers
        }));
    }
    let mut all: Vec<u32> = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(all, (1..=40).collect::<Vec<_>>());
    let registry = LocalPromptRegistry::open(&path).unwrap();
    let versions = registry.list_versions("contended").await.unwrap();
    assert_eq!(versions.len(), 40);
    for version in versions {
        let text = version.template.to_stored_string();
        assert!(text.starts_with("writer "), "{text}");
    }
}

#[tokio::test]
async fn push_registers_only_changed_templates_and_moves_aliases() {
    use sextant_tracker::prompts::{load_prompt_files, push};
    let dir = tempfile::tempdir().unwrap();
    let registry = LocalPromptRegistry::open(dir.path().join("registry.db")).unwrap();
    let files_dir = dir.path().join("prompts");
    std::fs::create_dir(&files_dir).unwrap();
    let file = files_dir.join("qa.toml");
    let write = |extra: &str, production: usize| {
        std::fs::write(
            &file,
            format!(
                r#"name = "qa"
tags = {{ task = "qa" }}
[[versions]]
commit_message = "first"
template = "v1 {{{{ question }}}}"
[[versions]]
commit_message = "second"
messages = [{{ role = "system", content = "be brief" }}, {{ role = "user", content = "{{{{ question }}}}" }}]
{extra}
[aliases]
production = {production}
"#
            ),
        )
        .unwrap();
    };
    write("", 2);
    let files = load_prompt_files(&files_dir).unwrap();
    let dry = push(&registry, &files, true).await.unwrap();
    assert_eq!(dry.registered(), 2);
    assert!(
        matches!(
            registry.get_prompt("qa").await,
            Err(RegistryError::NotFound { .. })
        ),
        "a dry run writes nothing"
    );

    let first = push(&registry, &files, false).await.unwrap();
    assert_eq!(first.registered(), 2);
    assert_eq!(
        first.aliases_set,
        [("qa".to_owned(), "production".to_owned(), 2)]
    );
    assert_eq!(
        registry
            .get_prompt("qa")
            .await
            .unwrap()
            .tags
            .get("task")
            .map(String::as_str),
        Some("qa")
    );
    let again = push(&registry, &files, false).await.unwrap();
    assert_eq!(again.registered(), 0, "{again:?}");
    assert!(again.aliases_set.is_empty());

    // A third version in the file: one registration; production follows the file.
    write(
        "[[versions]]\ncommit_message = \"third\"\ntemplate = \"v3 {{ question }}\"",
        3,
    );
    let files = load_prompt_files(&files_dir).unwrap();
    let third = push(&registry, &files, false).await.unwrap();
    assert_eq!(third.registered(), 1);
    assert_eq!(registry.resolve_alias("qa", "production").await.unwrap(), 3);
    assert_eq!(
        registry
            .get_version("qa", 3)
            .await
            .unwrap()
            .commit_message
            .as_deref(),
        Some("third")
    );

    // Bad files name the file and what is wrong.
    for (text, expected) in [
        (
            "name = \"qa\"\n[[versions]]\ntemplate = \"x\"\n[aliases]\nproduction = 4\n",
            "aliases.production",
        ),
        (
            "name = \"qa\"\n[[versions]]\ntemplate = \"x\"\nmessages = []\n",
            "not both",
        ),
        ("name = \"qa\"\n[[versions]]\ntemplat = \"x\"\n", "templat"),
        (
            "name = \"q a\"\n[[versions]]\ntemplate = \"x\"\n",
            "prompt name",
        ),
        ("name = \"qa\"\nversions = []\n", "at least one"),
    ] {
        std::fs::write(&file, text).unwrap();
        let err = load_prompt_files(&files_dir).unwrap_err().to_string();
        assert!(
            err.contains("qa.toml") && err.contains(expected),
            "{expected}: {err}"
        );
    }
}
