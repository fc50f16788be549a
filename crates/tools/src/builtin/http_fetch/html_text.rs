//! HTML to readable text: the page's main content (its `<main>` or `<article>` when it has one)
//! with headings, paragraphs and list items on their own lines, and scripts, styles, navigation
//! and forms left out.

use ego_tree::iter::Edge;
use scraper::{ElementRef, Html, Node, Selector};

/// Elements whose content is never text a reader wants.
const SKIPPED: &[&str] = &[
    "script", "style", "noscript", "template", "svg", "canvas", "iframe", "object", "head", "nav",
    "form", "button", "select", "textarea", "aside", "footer",
];

/// Elements that end a line.
const LINE: &[&str] = &[
    "div",
    "section",
    "article",
    "main",
    "header",
    "li",
    "tr",
    "dt",
    "dd",
    "figcaption",
    "caption",
    "address",
    "details",
    "summary",
];

/// Elements set apart by a blank line.
const PARAGRAPH: &[&str] = &[
    "p",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "pre",
    "blockquote",
    "table",
    "ul",
    "ol",
    "dl",
    "hr",
    "figure",
];

/// A page as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PageText {
    /// The `<title>`.
    pub title: Option<String>,
    /// The readable text.
    pub text: String,
}

/// Reads `html` as text.
pub(crate) fn html_to_text(html: &str) -> PageText {
    let document = Html::parse_document(html);
    let select = |css: &str| {
        let selector = Selector::parse(css).expect("a valid selector");
        document.select(&selector).next()
    };
    let title = select("title")
        .map(|t| collapse(&t.text().collect::<String>()))
        .filter(|t| !t.is_empty());
    let root = select("main")
        .or_else(|| select("article"))
        .or_else(|| select("[role=main]"))
        .or_else(|| select("body"))
        .unwrap_or_else(|| document.root_element());
    PageText {
        title,
        text: render(root),
    }
}

fn render(root: ElementRef<'_>) -> String {
    let mut out = Writer::default();
    let mut skipping = 0usize;
    let mut preformatted = 0usize;
    for edge in root.traverse() {
        match edge {
            Edge::Open(node) => match node.value() {
                Node::Element(element) => {
                    let name = element.name();
                    if skipping > 0 || SKIPPED.contains(&name) || element.attr("hidden").is_some() {
                        skipping += 1;
                        continue;
                    }
                    if PARAGRAPH.contains(&name) {
                        out.blank_line();
                    } else if LINE.contains(&name) || name == "br" {
                        out.line_break();
                    }
                    match name {
                        "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
                            let level = usize::from(name.as_bytes()[1] - b'0');
                            out.raw(&format!("{} ", "#".repeat(level)));
                        }
                        "li" => out.raw("- "),
                        "pre" => preformatted += 1,
                        "td" | "th" => out.space(),
                        "img" => {
                            if let Some(alt) =
                                element.attr("alt").map(collapse).filter(|a| !a.is_empty())
                            {
                                out.text(&format!("[{alt}]"));
                            }
                        }
                        _ => {}
                    }
                }
                Node::Text(text) if skipping == 0 => {
                    if preformatted > 0 {
                        out.raw(text);
                    } else {
                        out.text(text);
                    }
                }
                _ => {}
            },
            Edge::Close(node) => {
                if let Node::Element(element) = node.value() {
                    let name = element.name();
                    if skipping > 0 {
                        skipping -= 1;
                        continue;
                    }
                    if name == "pre" {
                        preformatted = preformatted.saturating_sub(1);
                    }
                    if PARAGRAPH.contains(&name) {
                        out.blank_line();
                    } else if LINE.contains(&name) {
                        out.line_break();
                    }
                }
            }
        }
    }
    out.finish()
}

/// Builds text from a stream of words and breaks, collapsing whitespace the way a browser does.
#[derive(Default)]
struct Writer {
    out: String,
    pending_space: bool,
}

impl Writer {
    fn text(&mut self, text: &str) {
        if text.starts_with(char::is_whitespace) {
            self.pending_space = true;
        }
        let mut words = text.split_whitespace().peekable();
        while let Some(word) = words.next() {
            if self.pending_space && !self.out.is_empty() && !self.out.ends_with(['\n', ' ']) {
                self.out.push(' ');
            }
            self.out.push_str(word);
            self.pending_space = words.peek().is_some();
        }
        if text.ends_with(char::is_whitespace) {
            self.pending_space = true;
        }
    }

    fn raw(&mut self, text: &str) {
        self.out.push_str(text);
        self.pending_space = false;
    }

    fn space(&mut self) {
        self.pending_space = true;
    }

    fn line_break(&mut self) {
        if !self.out.is_empty() && !self.out.ends_with('\n') {
            self.out.push('\n');
        }
        self.pending_space = false;
    }

    fn blank_line(&mut self) {
        self.line_break();
        if !self.out.is_empty() && !self.out.ends_with("\n\n") {
            self.out.push('\n');
        }
    }

    fn finish(self) -> String {
        let mut text = String::with_capacity(self.out.len());
        let mut blank_lines = 0;
        for line in self.out.lines().map(str::trim_end) {
            if line.trim().is_empty() {
                blank_lines += 1;
                if blank_lines > 1 || text.is_empty() {
                    continue;
                }
            } else {
                blank_lines = 0;
            }
            text.push_str(line);
            text.push('\n');
        }
        text.trim_end().to_owned()
    }
}

fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_main_content_is_kept_with_its_structure() {
        let page = html_to_text(
            r#"<!doctype html><html><head><title> Qdrant &amp; HNSW </title><style>p{}</style></head>
            <body><nav><a href="/">Home</a> <a href="/docs">Docs</a></nav>
            <main><h1>Indexing</h1><p>Qdrant builds an <b>HNSW</b>
            graph   per segment.</p><ul><li>m = 16</li><li>ef_construct = 100</li></ul>
            <script>alert("x")</script><pre>let x = 1;
let y = 2;</pre><p hidden>secret</p><img alt="diagram" src="a.png"></main>
            <footer>© 2025</footer></body></html>"#,
        );
        assert_eq!(page.title.as_deref(), Some("Qdrant & HNSW"));
        assert_eq!(
            page.text,
            "# Indexing\n\nQdrant builds an HNSW graph per segment.\n\n- m = 16\n- ef_construct = 100\n\nlet x = 1;\nlet y = 2;\n\n[diagram]"
        );
    }

    #[test]
    fn a_page_without_main_uses_its_body_without_navigation() {
        let page = html_to_text(
            "<html><body><header>Site</header><nav>Menu</nav><div>First<br>Second</div><table><tr><td>a</td><td>b</td></tr></table></body></html>",
        );
        assert_eq!(page.title, None);
        assert_eq!(page.text, "Site\nFirst\nSecond\n\na b");
    }
}
