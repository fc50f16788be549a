//! Span names, attribute keys and span kinds: the `sextant-conventions` crate, re-exported so the
//! tracker's callers read them where they read the rest of the telemetry API. Memory and tools,
//! which do not depend on the tracker, use that crate directly; every crate spells a name the same
//! way because there is only one place it is spelled.
//!
//! ```
//! use sextant_tracker::conventions::{self, operation};
//!
//! let span = tracing::info_span!(
//!     operation::CHAT,
//!     { conventions::GEN_AI_OPERATION_NAME } = operation::CHAT,
//!     { conventions::GEN_AI_USAGE_INPUT_TOKENS } = tracing::field::Empty,
//! );
//! span.record(conventions::GEN_AI_USAGE_INPUT_TOKENS, 42_i64);
//! ```

pub use sextant_conventions::*;
