//! Reading files into text for ingestion: plain text, Markdown, HTML and PDF.

use std::path::Path;

/// What kind of file a document came from; decides how its text is extracted and split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DocumentKind {
    /// `.txt`, `.text`: split by paragraphs and sentences.
    Text,
    /// `.md`, `.markdown`: split by headings, then paragraphs; front matter is read and dropped.
    Markdown,
    /// `.html`, `.htm`: rendered to Markdown-like text (headings kept), then split as Markdown.
    Html,
    /// `.pdf`: the text layer, page by page, split as text.
    Pdf,
}

impl DocumentKind {
    /// The kind of `path` by its extension, or `None` for files ingestion does not read.
    pub fn of(path: &Path) -> Option<Self> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "txt" | "text" => Some(Self::Text),
            "md" | "markdown" => Some(Self::Markdown),
            "html" | "htm" => Some(Self::Html),
            "pdf" => Some(Self::Pdf),
            _ => None,
        }
    }

    /// Whether the extracted text has Markdown headings to split on.
    pub fn has_headings(self) -> bool {
        matches!(self, Self::Markdown | Self::Html)
    }
}

/// A file's extracted text and what it says about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// Where it came from, as given to ingestion (the payload's `source`).
    pub source: String,
    /// Its kind.
    pub kind: DocumentKind,
    /// Front matter `title:`, else its first heading.
    pub title: Option<String>,
    /// Front matter `url:`, if any.
    pub url: Option<String>,
    /// The text to chunk.
    pub text: String,
}

/// Why a file could not be read; ingestion reports it and goes on with the next file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{source_path}: {message}")]
pub struct DocumentError {
    /// The file.
    pub source_path: String,
    /// What was wrong with it.
    pub message: String,
}

/// Reads `bytes`, the content of the file `source` of `kind`, into a [`Document`].
pub fn parse_document(
    source: &str,
    kind: DocumentKind,
    bytes: &[u8],
) -> Result<Document, DocumentError> {
    let error = |message: String| DocumentError {
        source_path: source.to_owned(),
        message,
    };
    let utf8 = |bytes: &[u8]| {
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|err| {
                error(format!(
                    "is not UTF-8 text (invalid byte at offset {})",
                    err.valid_up_to()
                ))
            })
    };
    let (text, mut title, url) = match kind {
        DocumentKind::Text => (utf8(bytes)?, None, None),
        DocumentKind::Markdown => {
            let text = utf8(bytes)?;
            let (front, body) = split_front_matter(&text);
            (
                body.to_owned(),
                front_matter_value(front, "title"),
                front_matter_value(front, "url"),
            )
        }
        DocumentKind::Html => {
            let text = html2text::config::plain()
                .string_from_read(bytes, 100)
                .map_err(|err| error(format!("is not readable HTML: {err}")))?;
            (text, None, None)
        }
        DocumentKind::Pdf => (pdf_text(bytes).map_err(error)?, None, None),
    };
    let text = text.replace("\r\n", "\n");
    if text.trim().is_empty() {
        return Err(error("has no text to ingest".to_owned()));
    }
    if title.is_none() && kind.has_headings() {
        title = text
            .lines()
            .find_map(|line| line.strip_prefix('#'))
            .map(|heading| heading.trim_start_matches('#').trim().to_owned())
            .filter(|heading| !heading.is_empty());
    }
    Ok(Document {
        source: source.to_owned(),
        kind,
        title,
        url,
        text,
    })
}

/// The PDF's text layer; pdf-extract panics on some malformed files, which is turned into an error.
#[cfg(feature = "pdf")]
fn pdf_text(bytes: &[u8]) -> Result<String, String> {
    if !bytes.starts_with(b"%PDF-") {
        return Err("is not a PDF (no %PDF- header)".to_owned());
    }
    match std::panic::catch_unwind(|| pdf_extract::extract_text_from_mem(bytes)) {
        Ok(Ok(text)) => Ok(text),
        Ok(Err(err)) => Err(format!("cannot extract the PDF's text: {err}")),
        Err(_) => Err("cannot extract the PDF's text: the file is malformed".to_owned()),
    }
}

/// Without the `pdf` feature, a PDF is a file that cannot be read (reported and skipped).
#[cfg(not(feature = "pdf"))]
fn pdf_text(_bytes: &[u8]) -> Result<String, String> {
    Err("cannot read PDF files: Sextant was built without the `pdf` feature".to_owned())
}

/// Splits `---\n…\n---\n` front matter off a Markdown file.
fn split_front_matter(text: &str) -> (&str, &str) {
    let Some(rest) = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))
    else {
        return ("", text);
    };
    match rest.find("\n---") {
        Some(end) => {
            let after = &rest[end + 4..];
            let body = after.split_once('\n').map_or("", |(_, body)| body);
            (&rest[..end], body)
        }
        None => ("", text),
    }
}

fn front_matter_value(front: &str, key: &str) -> Option<String> {
    front.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k.trim() == key)
            .then(|| v.trim().trim_matches('"').trim_matches('\'').to_owned())
            .filter(|v| !v.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_front_matter_gives_title_and_url_and_is_dropped() {
        let doc = parse_document(
            "a.md",
            DocumentKind::Markdown,
            b"---\ntitle: \"Spans\"\nurl: https://example.org/spans\n---\n# Heading\n\nBody.\n",
        )
        .unwrap();
        assert_eq!(doc.title.as_deref(), Some("Spans"));
        assert_eq!(doc.url.as_deref(), Some("https://example.org/spans"));
        assert!(doc.text.starts_with("# Heading"), "{:?}", doc.text);
    }

    #[test]
    fn markdown_without_front_matter_takes_its_first_heading_as_title() {
        let doc = parse_document(
            "a.md",
            DocumentKind::Markdown,
            b"intro\n\n## Retrieval\ntext",
        )
        .unwrap();
        assert_eq!(doc.title.as_deref(), Some("Retrieval"));
    }

    #[test]
    fn html_keeps_headings_and_drops_markup() {
        let doc = parse_document(
            "a.html",
            DocumentKind::Html,
            b"<html><body><h1>Vector search</h1><p>Finds <b>nearest</b> points.</p><script>x()</script></body></html>",
        )
        .unwrap();
        assert_eq!(doc.title.as_deref(), Some("Vector search"));
        // Rendered as Markdown: emphasis stays marked, which the Markdown splitter reads.
        assert!(
            doc.text.contains("Finds **nearest** points."),
            "{:?}",
            doc.text
        );
        assert!(!doc.text.contains("x()"), "{:?}", doc.text);
        assert!(!doc.text.contains('<'), "{:?}", doc.text);
    }

    #[test]
    fn bad_files_name_themselves_and_the_problem() {
        let err = parse_document("bad.txt", DocumentKind::Text, &[0x66, 0xff, 0xfe]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "bad.txt: is not UTF-8 text (invalid byte at offset 1)"
        );
        let err = parse_document("fake.pdf", DocumentKind::Pdf, b"hello").unwrap_err();
        assert!(err.to_string().contains("not a PDF"), "{err}");
        let err =
            parse_document("broken.pdf", DocumentKind::Pdf, b"%PDF-1.4\ngarbage").unwrap_err();
        assert!(
            err.to_string().starts_with("broken.pdf: cannot extract"),
            "{err}"
        );
        let err = parse_document("empty.md", DocumentKind::Markdown, b"  \n").unwrap_err();
        assert!(err.to_string().contains("no text"), "{err}");
    }

    #[test]
    fn kinds_come_from_extensions() {
        assert_eq!(
            DocumentKind::of(Path::new("A.MD")),
            Some(DocumentKind::Markdown)
        );
        assert_eq!(
            DocumentKind::of(Path::new("x.pdf")),
            Some(DocumentKind::Pdf)
        );
        assert_eq!(DocumentKind::of(Path::new("x.png")), None);
        assert_eq!(DocumentKind::of(Path::new("README")), None);
    }
}
