//! The tools that come with Sextant.

mod calculator;

pub use calculator::{Calculator, evaluate};
