//! Secrets and personal data out of text before it leaves memory.
//!
//! [`detect`] finds what a [`Kind`] describes (API-key shapes, bearer tokens, credentials in URLs,
//! emails, phone numbers, payment cards that pass the Luhn check, IBANs that pass their mod-97
//! check, IP addresses), each a [`Finding`] with its byte range. A [`Redactor`] built from a
//! [`RedactionConfig`] replaces them with typed placeholders (`<EMAIL_1>`), numbered through a
//! [`Placeholders`] that the caller keeps for one trace, so the same address reads `<EMAIL_1>` in
//! every span of that trace and a reader can still follow it.
//!
//! ```
//! use sextant_redaction::{Placeholders, RedactionConfig, Redactor};
//!
//! let redactor = Redactor::new(&RedactionConfig { pii: true, ..RedactionConfig::default() }).unwrap();
//! let mut trace = Placeholders::default();
//! let first = redactor.redact("Mail ada@example.com, card 4111 1111 1111 1111.", &mut trace);
//! assert_eq!(first.text, "Mail <EMAIL_1>, card <CARD_1>.");
//! assert_eq!(first.count, 2);
//! let second = redactor.redact("Reply to ada@example.com", &mut trace);
//! assert_eq!(second.text, "Reply to <EMAIL_1>");
//! ```
#![deny(missing_docs)]

mod detector;
mod redactor;

pub use detector::{Finding, Kind, detect};
pub use redactor::{
    PatternConfig, Placeholders, Redacted, RedactionConfig, RedactionConfigError, Redactor,
};
