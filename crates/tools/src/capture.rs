//! Whether the tool running now may record message content (queries, URLs, documents) on its
//! spans. The agent knows the content switch; a tool's own child spans consult it here, so content
//! stays off spans unless the configuration allows it.

use std::future::Future;

tokio::task_local! {
    static CAPTURE_CONTENT: bool;
}

/// Runs `future` with content capture on or off for the tool spans it creates.
pub async fn with_content_capture<F: Future>(capture: bool, future: F) -> F::Output {
    CAPTURE_CONTENT.scope(capture, future).await
}

/// Whether content may be recorded on spans here (off outside [`with_content_capture`]).
pub fn content_capture_enabled() -> bool {
    CAPTURE_CONTENT
        .try_with(|capture| *capture)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn capture_is_off_unless_switched_on() {
        assert!(!content_capture_enabled());
        assert!(with_content_capture(true, async { content_capture_enabled() }).await);
        assert!(!with_content_capture(false, async { content_capture_enabled() }).await);
    }
}
