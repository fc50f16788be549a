//! Evaluation: LLM output is judged, not unit-tested. A [`dataset::Dataset`] of `{inputs,
//! expectations}` rows, [`scorer::Scorer`]s — plain Rust functions ([`scorers`], or your own with
//! [`scorer::code_scorer`]) and LLM judges ([`judges`]) — and [`run::evaluate`], which answers
//! every row with an agent and scores each answer with its trace; each score becomes an
//! assessment of that trace ([`run::EvalReport::assessments`]), and [`compare::compare`] sets two
//! evaluations side by side.

pub mod compare;
pub mod dataset;
pub mod judges;
pub mod run;
pub mod scorer;
pub mod scorers;
