//! `http_fetch` against real HTTP servers on loopback: pages come back as text, and the address
//! guard refuses loopback, private and metadata targets — named directly, reached by a redirect, or
//! behind a host name — before any request reaches them.

mod support;

use sextant_tools::builtin::HttpFetch;
use sextant_tools::config::HttpFetchConfig;
use sextant_tools::{Tool, ToolError};
use support::{LocalServer, Reply};

const PAGE: &str = r#"<!doctype html><html><head><title>Span kinds</title>
<script>var tracking = "do not read";</script></head>
<body><nav>Home | Docs</nav><main><h1>Span kinds</h1>
<p>A span is <em>client</em>, <em>server</em> or <em>internal</em>.</p></main></body></html>"#;

async fn site() -> LocalServer {
    LocalServer::start(|path| match path {
        "/page" => Reply::ok("text/html; charset=utf-8", PAGE),
        "/to-page" => Reply::redirect("/page"),
        "/loop" => Reply::redirect("/loop"),
        "/big" => Reply::ok("text/plain", "x".repeat(100_000)),
        "/image" => Reply::ok("image/png", vec![0x89, b'P', b'N', b'G']),
        "/metadata" => Reply::redirect("http://169.254.169.254/latest/meta-data/"),
        path if path.starts_with("/to-loopback/") => Reply::redirect(&format!(
            "http://127.0.0.1:{}/secret",
            &path["/to-loopback/".len()..]
        )),
        "/secret" => Reply::ok("text/plain", "internal admin token"),
        _ => Reply::status(404, "no such page"),
    })
    .await
}

/// A fetch tool that trusts the host `localhost` (the test site) and nothing else private.
fn fetch_allowing_localhost() -> HttpFetch {
    HttpFetch::from_config(&HttpFetchConfig {
        allowed_hosts: vec!["localhost".into()],
        ..HttpFetchConfig::default()
    })
    .unwrap()
}

async fn fetch(tool: &HttpFetch, url: &str) -> Result<String, ToolError> {
    tool.call(serde_json::json!({ "url": url })).await
}

#[tokio::test]
async fn a_page_comes_back_as_readable_text() {
    let site = site().await;
    let text = fetch(
        &fetch_allowing_localhost(),
        &format!("http://localhost:{}/page", site.port()),
    )
    .await
    .unwrap();
    assert!(
        text.starts_with("Title: Span kinds\nURL: http://localhost:"),
        "{text}"
    );
    assert!(
        text.contains("# Span kinds\n\nA span is client, server or internal."),
        "{text}"
    );
    assert!(
        !text.contains("do not read") && !text.contains("Home | Docs"),
        "{text}"
    );
    let request = site.last_request();
    assert!(request.contains("user-agent: sextant/"), "{request}");
}

#[tokio::test]
async fn loopback_is_refused_by_default_and_nothing_is_sent() {
    let site = site().await;
    let tool = HttpFetch::from_config(&HttpFetchConfig::default()).unwrap();
    for url in [
        format!("http://127.0.0.1:{}/page", site.port()),
        format!("http://localhost:{}/page", site.port()),
        format!("http://[::ffff:127.0.0.1]:{}/page", site.port()),
    ] {
        let err = fetch(&tool, &url).await.unwrap_err();
        assert!(matches!(err, ToolError::Refused(_)), "{url}: {err}");
        assert_eq!(err.error_type(), "refused");
    }
    assert_eq!(site.total_hits(), 0);
}

#[tokio::test]
async fn a_redirect_to_loopback_or_metadata_is_refused_before_it_is_followed() {
    let site = site().await;
    let tool = fetch_allowing_localhost();
    let base = format!("http://localhost:{}", site.port());

    let err = fetch(&tool, &format!("{base}/to-loopback/{}", site.port()))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ToolError::Refused(m) if m.contains("127.0.0.1") && m.contains("loopback")),
        "{err}"
    );
    assert_eq!(site.hits("/secret"), 0, "the guarded target was reached");

    let err = fetch(&tool, &format!("{base}/metadata")).await.unwrap_err();
    assert!(
        matches!(&err, ToolError::Refused(m) if m.contains("169.254.169.254") && m.contains("metadata")),
        "{err}"
    );
}

#[tokio::test]
async fn a_host_name_that_resolves_to_a_private_address_is_refused() {
    // This machine's own name resolves to a loopback or private address on most hosts and
    // containers; that is the DNS path of the guard (the name itself is not suspicious).
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let hostname = hostname.trim();
    let resolved: Vec<std::net::IpAddr> = match tokio::net::lookup_host((hostname, 0)).await {
        Ok(addrs) => addrs.map(|a| a.ip()).collect(),
        Err(_) => Vec::new(),
    };
    let private = |ip: &std::net::IpAddr| match ip {
        std::net::IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        std::net::IpAddr::V6(v6) => v6.is_loopback(),
    };
    if hostname.is_empty() || hostname == "localhost" || !resolved.iter().any(private) {
        eprintln!(
            "skipped: this machine's name ({hostname:?}) does not resolve to a private address ({resolved:?})"
        );
        return;
    }
    let site = site().await;
    let tool = HttpFetch::from_config(&HttpFetchConfig::default()).unwrap();
    let err = fetch(&tool, &format!("http://{hostname}:{}/page", site.port()))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ToolError::Refused(m) if m.contains("resolves to")),
        "{err}"
    );
    assert_eq!(site.total_hits(), 0);

    // The same name, allowed by configuration, is fetched.
    let allowed = HttpFetch::from_config(&HttpFetchConfig {
        allowed_hosts: vec![hostname.to_owned()],
        ..HttpFetchConfig::default()
    })
    .unwrap();
    assert!(
        fetch(&allowed, &format!("http://{hostname}:{}/page", site.port()))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn redirects_are_followed_up_to_the_limit() {
    let site = site().await;
    let tool = fetch_allowing_localhost();
    let base = format!("http://localhost:{}", site.port());
    let text = fetch(&tool, &format!("{base}/to-page")).await.unwrap();
    assert!(text.contains(&format!("URL: {base}/page")), "{text}");

    let err = fetch(&tool, &format!("{base}/loop")).await.unwrap_err();
    assert!(
        err.to_string().contains("stopped after 5 redirects"),
        "{err}"
    );
    assert_eq!(site.hits("/loop"), 6);
}

#[tokio::test]
async fn bodies_past_the_size_limit_are_not_read() {
    let site = site().await;
    let tool = HttpFetch::from_config(&HttpFetchConfig {
        allowed_hosts: vec!["localhost".into()],
        max_bytes: 1000,
        ..HttpFetchConfig::default()
    })
    .unwrap();
    let text = fetch(&tool, &format!("http://localhost:{}/big", site.port()))
        .await
        .unwrap();
    assert!(
        text.ends_with("[page cut: only the first 1000 bytes were read]"),
        "{}",
        &text[text.len() - 80..]
    );
    assert!(text.len() < 1200);
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let hanging_server_double = LocalServer::start(|_| Reply::Hang).await;
    let tool = HttpFetch::from_config(&HttpFetchConfig {
        allowed_hosts: vec!["localhost".into()],
        timeout_secs: 0.3,
        ..HttpFetchConfig::default()
    })
    .unwrap();
    let started = std::time::Instant::now();
    let err = fetch(
        &tool,
        &format!("http://localhost:{}/", hanging_server_double.port()),
    )
    .await
    .unwrap_err();
    assert_eq!(err.error_type(), "timeout", "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[tokio::test]
async fn binary_bodies_and_error_statuses_are_explained() {
    let site = site().await;
    let tool = fetch_allowing_localhost();
    let base = format!("http://localhost:{}", site.port());
    let err = fetch(&tool, &format!("{base}/image")).await.unwrap_err();
    assert!(err.to_string().contains("image/png, not a page"), "{err}");
    let err = fetch(&tool, &format!("{base}/missing")).await.unwrap_err();
    assert_eq!(err.error_type(), "upstream_error");
    assert!(err.to_string().contains("404"), "{err}");
    let err = fetch(&tool, "not a url").await.unwrap_err();
    assert_eq!(err.error_type(), "invalid_arguments");
}
