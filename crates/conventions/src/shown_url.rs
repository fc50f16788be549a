//! How a URL is shown to people and to telemetry: never with its user-info (`user:password@`),
//! and — in errors, span status and logs, which are recorded whatever the content switch says —
//! never with its query string or fragment, which can carry API keys and the user's words.

/// Which parts of a URL [`shown_url`] keeps besides scheme, host, port and path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlParts {
    /// Scheme, host, port and path only: for errors, span status and logs.
    Location,
    /// The location with its query string and fragment: for [`URL_FULL`](crate::URL_FULL) when
    /// content capture is on.
    WithQuery,
}

/// `url` as people and telemetry may see it: without user name and password and, unless `parts`
/// is [`UrlParts::WithQuery`], without query string and fragment.
///
/// Text that is not a URL with a host (a mistyped configuration value) is cut the same way as
/// text: everything up to the last `@` of what would be its authority is dropped, and so is
/// everything from the first `?` or `#`.
///
/// ```
/// use sextant_conventions::{UrlParts, shown_url};
///
/// let url = "https://user:secret@index.example/simple/?token=abc#top";
/// assert_eq!(shown_url(url, UrlParts::Location), "https://index.example/simple/");
/// assert_eq!(
///     shown_url(url, UrlParts::WithQuery),
///     "https://index.example/simple/?token=abc#top"
/// );
/// ```
pub fn shown_url(url: &str, parts: UrlParts) -> String {
    let url = url.trim();
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.has_host() => {
            // Both only fail for URLs without a host, which this arm excludes.
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            if parts == UrlParts::Location {
                parsed.set_query(None);
                parsed.set_fragment(None);
            }
            parsed.to_string()
        }
        _ => shown_text(url, parts),
    }
}

/// [`shown_url`] for text the `url` crate does not read as a URL with a host.
fn shown_text(text: &str, parts: UrlParts) -> String {
    let (scheme, rest) = match text.find("://") {
        Some(at) => text.split_at(at + 3),
        None => ("", text),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let rest = match rest[..authority_end].rfind('@') {
        Some(at) => &rest[at + 1..],
        None => rest,
    };
    let rest = match parts {
        UrlParts::Location => &rest[..rest.find(['?', '#']).unwrap_or(rest.len())],
        UrlParts::WithQuery => rest,
    };
    format!("{scheme}{rest}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_survive_in_either_view() {
        for url in [
            "http://user:pass@127.0.0.1:3141/simple?x=1",
            "http://user@127.0.0.1:3141/simple",
            "http://:pass@127.0.0.1:3141/simple",
            "HTTPS://user:pass@Index.Example/simple",
        ] {
            for parts in [UrlParts::Location, UrlParts::WithQuery] {
                let shown = shown_url(url, parts);
                assert!(
                    !shown.contains("user") && !shown.contains("pass") && !shown.contains('@'),
                    "{url} shown as {shown}"
                );
            }
        }
        assert_eq!(
            shown_url(
                "http://user:pass@127.0.0.1:3141/simple?x=1",
                UrlParts::Location
            ),
            "http://127.0.0.1:3141/simple"
        );
    }

    #[test]
    fn the_location_drops_query_and_fragment_and_the_full_view_keeps_them() {
        let url = "https://api.example/v1/search?q=my+words&key=k-123#frag";
        assert_eq!(
            shown_url(url, UrlParts::Location),
            "https://api.example/v1/search"
        );
        assert_eq!(shown_url(url, UrlParts::WithQuery), url);
    }

    #[test]
    fn text_that_is_not_a_url_with_a_host_is_cut_as_text() {
        // Not URLs with a host for the `url` crate, yet they hold credentials and queries.
        for (text, shown) in [
            ("user:pass@qdrant:6334/x?api-key=1", "qdrant:6334/x"),
            ("http://us er:p@ss@host/p?q=1", "http://host/p"),
            ("http://[::1:pass@host/p", "http://host/p"),
            ("localhost:6334", "localhost:6334"),
            ("not a url?secret=1", "not a url"),
        ] {
            assert_eq!(shown_url(text, UrlParts::Location), shown, "{text}");
        }
        assert_eq!(
            shown_url("user:pass@qdrant:6334/x?api-key=1", UrlParts::WithQuery),
            "qdrant:6334/x?api-key=1"
        );
    }
}
