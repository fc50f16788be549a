//! Two evaluations side by side: per scorer, the pass rate and mean of each and the change; the
//! rows whose verdict changed; and a self-contained HTML page with a bar chart of the per-scorer
//! pass rates (`sextant eval compare RUN_A RUN_B`).
//!
//! Rows are matched by position when both runs used the same dataset (same digest), by question
//! otherwise; rows only one run has are counted, not compared.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use serde::Serialize;

use super::run::{EvalReport, RowResult, ScoreOutcome};

/// One scorer in both runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScorerComparison {
    /// The scorer.
    pub name: String,
    /// Pass rate in A (`None`: A did not use it or judged no row).
    pub pass_rate_a: Option<f64>,
    /// Pass rate in B.
    pub pass_rate_b: Option<f64>,
    /// Mean in A.
    pub mean_a: Option<f64>,
    /// Mean in B.
    pub mean_b: Option<f64>,
    /// Rows A could not judge.
    pub errors_a: usize,
    /// Rows B could not judge.
    pub errors_b: usize,
}

impl ScorerComparison {
    /// B's pass rate minus A's.
    pub fn delta(&self) -> Option<f64> {
        Some(self.pass_rate_b? - self.pass_rate_a?)
    }
}

/// One row whose verdict of one scorer differs between the runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangedVerdict {
    /// The row in A (from 1).
    pub row: usize,
    /// What was asked.
    pub question: String,
    /// The scorer.
    pub scorer: String,
    /// A's verdict: `pass`, `fail` or `error`.
    pub before: &'static str,
    /// B's verdict.
    pub after: &'static str,
    /// B's rationale, if any.
    pub rationale: Option<String>,
}

/// Two evaluations compared; see the [module docs](self).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// A's label (a run id or name).
    pub label_a: String,
    /// B's label.
    pub label_b: String,
    /// Whether both used the same dataset (by digest).
    pub same_dataset: bool,
    /// Per scorer, by name.
    pub scorers: Vec<ScorerComparison>,
    /// Rows whose verdict changed, by row then scorer.
    pub changed: Vec<ChangedVerdict>,
    /// Rows found in both runs.
    pub matched_rows: usize,
    /// Rows only A has.
    pub only_in_a: usize,
    /// Rows only B has.
    pub only_in_b: usize,
    /// Median latency (ms) of A and B.
    pub latency_p50_ms: (f64, f64),
    /// Output tokens of A and B.
    pub output_tokens: (u64, u64),
}

fn verdict(score: Option<&ScoreOutcome>) -> &'static str {
    match score.and_then(|s| s.value.as_ref()) {
        Some(value) if value.passed() => "pass",
        Some(_) => "fail",
        None if score.is_some() => "error",
        None => "-",
    }
}

/// Compares evaluation `a` (labelled `label_a`) with `b`.
pub fn compare(label_a: &str, a: &EvalReport, label_b: &str, b: &EvalReport) -> Comparison {
    let names: BTreeSet<&String> = a.scorers.keys().chain(b.scorers.keys()).collect();
    let scorers = names
        .iter()
        .map(|name| {
            let (sa, sb) = (a.scorers.get(*name), b.scorers.get(*name));
            ScorerComparison {
                name: (*name).clone(),
                pass_rate_a: sa.and_then(|s| s.pass_rate),
                pass_rate_b: sb.and_then(|s| s.pass_rate),
                mean_a: sa.and_then(|s| s.mean),
                mean_b: sb.and_then(|s| s.mean),
                errors_a: sa.map_or(0, |s| s.errors),
                errors_b: sb.map_or(0, |s| s.errors),
            }
        })
        .collect();

    let same_dataset = a.dataset_digest == b.dataset_digest;
    let pairs: Vec<(&RowResult, &RowResult)> = if same_dataset {
        a.rows.iter().zip(&b.rows).collect()
    } else {
        // By question; a question asked twice pairs in order.
        let mut by_question: HashMap<&str, Vec<&RowResult>> = HashMap::new();
        for row in b.rows.iter().rev() {
            by_question.entry(&row.question).or_default().push(row);
        }
        a.rows
            .iter()
            .filter_map(|row| Some((row, by_question.get_mut(row.question.as_str())?.pop()?)))
            .collect()
    };
    let mut changed = Vec::new();
    for (ra, rb) in &pairs {
        for name in &names {
            let (before, after) = (verdict(ra.scores.get(*name)), verdict(rb.scores.get(*name)));
            if before != after && before != "-" && after != "-" {
                changed.push(ChangedVerdict {
                    row: ra.row,
                    question: ra.question.clone(),
                    scorer: (*name).clone(),
                    before,
                    after,
                    rationale: rb.scores.get(*name).and_then(|s| s.rationale.clone()),
                });
            }
        }
    }
    Comparison {
        label_a: label_a.to_owned(),
        label_b: label_b.to_owned(),
        same_dataset,
        scorers,
        changed,
        matched_rows: pairs.len(),
        only_in_a: a.rows.len() - pairs.len(),
        only_in_b: b.rows.len() - pairs.len(),
        latency_p50_ms: (a.latency_p50_ms, b.latency_p50_ms),
        output_tokens: (a.output_tokens, b.output_tokens),
    }
}

fn percent(rate: Option<f64>) -> String {
    rate.map_or("-".into(), |r| format!("{:.0}%", r * 100.0))
}

impl Comparison {
    /// The side-by-side table (A = `label_a`, B = `label_b`) and the changed rows, for a
    /// terminal.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<24} {:>10} {:>10} {:>8}   errors A/B",
            "scorer", "A", "B", "change"
        );
        for s in &self.scorers {
            let delta = s.delta().map_or("-".into(), |d| {
                format!("{:+.0} pt", d * 100.0).replace("+0 pt", "0 pt")
            });
            let _ = writeln!(
                out,
                "{:<24} {:>10} {:>10} {:>8}   {}/{}",
                s.name,
                percent(s.pass_rate_a),
                percent(s.pass_rate_b),
                delta,
                s.errors_a,
                s.errors_b
            );
        }
        let _ = writeln!(
            out,
            "{:<24} {:>10.0} {:>10.0}",
            "latency p50 (ms)", self.latency_p50_ms.0, self.latency_p50_ms.1
        );
        let _ = writeln!(
            out,
            "{:<24} {:>10} {:>10}",
            "output tokens", self.output_tokens.0, self.output_tokens.1
        );
        let _ = writeln!(out);
        let matching = if self.same_dataset {
            "same dataset"
        } else {
            "different datasets, rows matched by question"
        };
        let _ = writeln!(
            out,
            "{} rows compared ({matching}); only in A: {}, only in B: {}",
            self.matched_rows, self.only_in_a, self.only_in_b
        );
        if self.changed.is_empty() {
            let _ = writeln!(out, "no verdict changed");
        } else {
            let _ = writeln!(out, "{} verdicts changed:", self.changed.len());
            for c in &self.changed {
                let question: String = c.question.chars().take(48).collect();
                let _ = writeln!(
                    out,
                    "  row {:>3}  {:<20} {:>5} -> {:<5}  {question}",
                    c.row, c.scorer, c.before, c.after
                );
            }
        }
        out
    }

    /// A self-contained HTML page: a grouped bar chart (SVG) of each scorer's pass rate in A and
    /// B, the table, and the changed rows.
    pub fn render_html(&self) -> String {
        const BAR: f64 = 28.0;
        const GAP: f64 = 36.0;
        const HEIGHT: f64 = 200.0;
        // Wide enough for the bars and for the legend's labels.
        let width = (60.0 + self.scorers.len() as f64 * (2.0 * BAR + GAP)).max(520.0);
        let mut svg = String::new();
        let _ = write!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{}" role="img" aria-label="pass rate per scorer">"#,
            HEIGHT + 80.0
        );
        for tick in [0, 25, 50, 75, 100] {
            let y = 10.0 + HEIGHT * (1.0 - f64::from(tick) / 100.0);
            let _ = write!(
                svg,
                r##"<line x1="40" x2="{width}" y1="{y}" y2="{y}" stroke="#ddd"/><text x="34" y="{}" font-size="10" text-anchor="end">{tick}%</text>"##,
                y + 3.0
            );
        }
        for (i, s) in self.scorers.iter().enumerate() {
            let x = 50.0 + i as f64 * (2.0 * BAR + GAP);
            for (j, (rate, colour)) in [(s.pass_rate_a, "#8da0cb"), (s.pass_rate_b, "#fc8d62")]
                .into_iter()
                .enumerate()
            {
                let h = rate.unwrap_or(0.0) * HEIGHT;
                let bx = x + j as f64 * BAR;
                let _ = write!(
                    svg,
                    r#"<rect x="{bx}" y="{}" width="{}" height="{h}" fill="{colour}"><title>{}: {}</title></rect><text x="{}" y="{}" font-size="10" text-anchor="middle">{}</text>"#,
                    10.0 + HEIGHT - h,
                    BAR - 2.0,
                    escape(&s.name),
                    percent(rate),
                    bx + BAR / 2.0 - 1.0,
                    6.0 + HEIGHT - h,
                    percent(rate),
                );
            }
            let _ = write!(
                svg,
                r#"<text x="{}" y="{}" font-size="11" text-anchor="middle">{}</text>"#,
                x + BAR,
                HEIGHT + 28.0,
                escape(&s.name)
            );
        }
        // The legend, one line per run (labels are long run ids).
        for (i, (label, colour)) in [(&self.label_a, "#8da0cb"), (&self.label_b, "#fc8d62")]
            .into_iter()
            .enumerate()
        {
            let y = HEIGHT + 40.0 + i as f64 * 16.0;
            let _ = write!(
                svg,
                r#"<rect x="50" y="{y}" width="12" height="12" fill="{colour}"/><text x="66" y="{}" font-size="11">{} {}</text>"#,
                y + 10.0,
                ["A", "B"][i],
                escape(label),
            );
        }
        svg.push_str("</svg>");

        let mut rows = String::new();
        for s in &self.scorers {
            let _ = write!(
                rows,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}/{}</td></tr>",
                escape(&s.name),
                percent(s.pass_rate_a),
                percent(s.pass_rate_b),
                s.delta()
                    .map_or("-".into(), |d| format!("{:+.0} pt", d * 100.0)),
                s.errors_a,
                s.errors_b
            );
        }
        let mut changed = String::new();
        for c in &self.changed {
            let _ = write!(
                changed,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} → {}</td><td>{}</td></tr>",
                c.row,
                escape(&c.question),
                escape(&c.scorer),
                c.before,
                c.after,
                escape(c.rationale.as_deref().unwrap_or(""))
            );
        }
        format!(
            r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Evaluation: {a} vs {b}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}</style>
</head><body>
<h1>Evaluation comparison</h1>
<p>A: <code>{a}</code> &nbsp; B: <code>{b}</code> &nbsp; {matched} rows compared{dataset}</p>
{svg}
<h2>Pass rate per scorer</h2>
<table><tr><th>scorer</th><th>A</th><th>B</th><th>change</th><th>errors A/B</th></tr>{rows}</table>
<h2>Changed verdicts ({n})</h2>
<table><tr><th>row</th><th>question</th><th>scorer</th><th>verdict</th><th>B's rationale</th></tr>{changed}</table>
</body></html>
"#,
            a = escape(&self.label_a),
            b = escape(&self.label_b),
            matched = self.matched_rows,
            dataset = if self.same_dataset {
                ""
            } else {
                " (different datasets: matched by question)"
            },
            n = self.changed.len(),
        )
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Per scorer name, the comparison (for callers that look one up).
pub fn by_scorer(comparison: &Comparison) -> BTreeMap<&str, &ScorerComparison> {
    comparison
        .scorers
        .iter()
        .map(|s| (s.name.as_str(), s))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::run::ScorerSummary;
    use crate::eval::scorer::{ScorerKind, Verdict};

    fn outcome(value: Option<bool>) -> ScoreOutcome {
        ScoreOutcome {
            source: ScorerKind::Code,
            source_id: "is_concise".into(),
            value: value.map(Verdict::Bool),
            rationale: Some("because".into()),
            error: value.is_none().then(|| "no verdict".into()),
            metadata: Default::default(),
        }
    }

    fn report(digest: &str, rows: &[(&str, Option<bool>)]) -> EvalReport {
        let rows: Vec<RowResult> = rows
            .iter()
            .enumerate()
            .map(|(i, (question, value))| RowResult {
                row: i + 1,
                question: (*question).into(),
                answer: Some("a".into()),
                error: None,
                trace_id: None,
                latency_ms: 100.0,
                usage: Default::default(),
                scores: [("is_concise".to_owned(), outcome(*value))].into(),
            })
            .collect();
        let judged: Vec<bool> = rows
            .iter()
            .filter_map(|r| r.scores["is_concise"].value.as_ref().map(|v| v.passed()))
            .collect();
        let rate = judged.iter().filter(|p| **p).count() as f64 / judged.len() as f64;
        EvalReport {
            dataset: "qa".into(),
            dataset_digest: digest.into(),
            agent: "rag".into(),
            scorers: [(
                "is_concise".to_owned(),
                ScorerSummary {
                    source: ScorerKind::Code,
                    judged: judged.len(),
                    errors: rows.len() - judged.len(),
                    pass_rate: Some(rate),
                    mean: Some(rate),
                },
            )]
            .into(),
            rows,
            failed_turns: 0,
            latency_p50_ms: 100.0,
            latency_p95_ms: 100.0,
            input_tokens: 0,
            output_tokens: 0,
            cost: None,
        }
    }

    #[test]
    fn changed_verdicts_and_deltas_on_the_same_dataset() {
        let a = report(
            "d",
            &[("q1", Some(true)), ("q2", Some(false)), ("q3", None)],
        );
        let b = report(
            "d",
            &[("q1", Some(false)), ("q2", Some(false)), ("q3", Some(true))],
        );
        let c = compare("run-a", &a, "run-b", &b);
        assert!(c.same_dataset);
        assert_eq!(c.matched_rows, 3);
        let changes: Vec<(usize, &str, &str)> = c
            .changed
            .iter()
            .map(|c| (c.row, c.before, c.after))
            .collect();
        assert_eq!(changes, [(1, "pass", "fail"), (3, "error", "pass")]);
        let s = by_scorer(&c)["is_concise"];
        // A: 1 of 2 judged passed; B: 1 of 3.
        assert!((s.delta().unwrap() - (1.0 / 3.0 - 0.5)).abs() < 1e-9);
        assert_eq!((s.errors_a, s.errors_b), (1, 0));
        let text = c.render_text();
        assert!(text.contains("2 verdicts changed"), "{text}");
        assert!(text.contains("-17 pt"), "{text}");
    }

    #[test]
    fn other_datasets_match_rows_by_question() {
        let a = report("d1", &[("q1", Some(true)), ("q2", Some(true))]);
        let b = report("d2", &[("q2", Some(false)), ("q9", Some(true))]);
        let c = compare("a", &a, "b", &b);
        assert!(!c.same_dataset);
        assert_eq!((c.matched_rows, c.only_in_a, c.only_in_b), (1, 1, 1));
        assert_eq!(c.changed.len(), 1);
        assert_eq!(
            (c.changed[0].row, c.changed[0].question.as_str()),
            (2, "q2")
        );
    }

    #[test]
    fn the_html_page_is_self_contained_and_escapes_text() {
        let a = report("d", &[("<b>q1</b>", Some(true))]);
        let b = report("d", &[("<b>q1</b>", Some(false))]);
        let html = compare("a", &a, "b", &b).render_html();
        assert!(html.starts_with("<!doctype html>"));
        assert!(html.contains("<svg") && html.contains("</svg>"));
        // Two bars per scorer plus two legend swatches.
        assert_eq!(html.matches("<rect").count(), 4);
        assert!(html.contains("&lt;b&gt;q1&lt;/b&gt;") && !html.contains("<b>q1"));
    }
}
