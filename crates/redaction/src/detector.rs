//! The detectors: one per [`Kind`], each a pattern for candidates and a check that throws out what
//! only looks like one (a card number that fails the Luhn check or belongs to no card issuer, an
//! IBAN that fails mod 97, an "address" with an octet over 255, a date shaped like a phone number).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;
use std::sync::LazyLock;

use regex::{Captures, Regex};

/// What a detector finds. The first three are secrets (redacted by default); the rest are personal
/// data (redacted when PII redaction is on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// An API key, access token or private key of a known shape (OpenAI, Anthropic, GitHub, AWS,
    /// Google, Slack, Stripe, Hugging Face, JWTs, PEM private keys), or the value of an assignment
    /// such as `password=…` or `"api_key": "…"`.
    Secret,
    /// The token of an `Authorization` header value or of `Bearer …`.
    BearerToken,
    /// The `user:password` part of a URL.
    UrlCredentials,
    /// An email address.
    Email,
    /// A phone number: international (`+44 20 7946 0958`), North American (`(555) 123-4567`) or
    /// national with a trunk 0 (`06 12 34 56 78`).
    Phone,
    /// A payment card number: 13 to 19 digits of a known issuer that pass the Luhn check.
    PaymentCard,
    /// An IBAN that passes its mod-97 check.
    Iban,
    /// An IPv4 or IPv6 address.
    IpAddress,
}

impl Kind {
    /// The secrets, redacted unless turned off.
    pub const SECRETS: [Kind; 3] = [Kind::Secret, Kind::BearerToken, Kind::UrlCredentials];
    /// The personal data, redacted when PII redaction is on.
    pub const PII: [Kind; 5] = [
        Kind::Email,
        Kind::Phone,
        Kind::PaymentCard,
        Kind::Iban,
        Kind::IpAddress,
    ];

    /// The word in this kind's placeholders: `EMAIL` in `<EMAIL_1>`.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Secret => "SECRET",
            Kind::BearerToken => "TOKEN",
            Kind::UrlCredentials => "CREDENTIALS",
            Kind::Email => "EMAIL",
            Kind::Phone => "PHONE",
            Kind::PaymentCard => "CARD",
            Kind::Iban => "IBAN",
            Kind::IpAddress => "IP",
        }
    }
}

/// One thing found: what it is and where, as a byte range of the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What was found.
    pub kind: Kind,
    /// Its bytes in the text.
    pub range: Range<usize>,
}

/// Everything of `kinds` in `text`, in order, without overlaps (where two overlap, the one that
/// starts first wins, then the longer, then the secret).
pub fn detect(text: &str, kinds: &[Kind]) -> Vec<Finding> {
    let mut found = Vec::new();
    for &kind in kinds {
        let ranges = match kind {
            Kind::Secret => secrets(text),
            Kind::BearerToken => bearer_tokens(text),
            Kind::UrlCredentials => url_credentials(text),
            Kind::Email => EMAIL.find_iter(text).map(|m| m.range()).collect(),
            Kind::Phone => phones(text),
            Kind::PaymentCard => payment_cards(text),
            Kind::Iban => ibans(text),
            Kind::IpAddress => ip_addresses(text),
        };
        found.extend(ranges.into_iter().map(|range| Finding { kind, range }));
    }
    without_overlaps(found)
}

/// `found` sorted, keeping the first of any overlapping pair.
fn without_overlaps(found: Vec<Finding>) -> Vec<Finding> {
    keep_first(found, |f| (f.range.clone(), f.kind as u8))
}

/// `found` in order of the range `key` gives, keeping of any overlapping pair the one that starts
/// first, then the longer, then the lower rank.
pub(crate) fn keep_first<T>(mut found: Vec<T>, key: impl Fn(&T) -> (Range<usize>, u8)) -> Vec<T> {
    found.sort_by_key(|f| {
        let (range, rank) = key(f);
        (range.start, std::cmp::Reverse(range.end), rank)
    });
    let mut kept: Vec<T> = Vec::with_capacity(found.len());
    let mut end = 0;
    for finding in found {
        let (range, _) = key(&finding);
        if kept.is_empty() || range.start >= end {
            end = range.end;
            kept.push(finding);
        }
    }
    kept
}

fn regex(pattern: &str) -> Regex {
    Regex::new(pattern).expect("a built-in detector's pattern compiles")
}

/// Secret shapes of the common providers. Each is random, so a candidate without a digit is prose
/// (`sk-learn-compatible-estimators`), not a key.
static SECRET_SHAPES: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?x)
          \b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}
        | \bsk-(?:ant-|proj-)?[A-Za-z0-9_-]{20,}
        | \bgh[pousr]_[A-Za-z0-9]{30,}
        | \bgithub_pat_[A-Za-z0-9_]{22,}
        | \b(?:AKIA|ASIA)[0-9A-Z]{16}\b
        | \bAIza[0-9A-Za-z_-]{35}
        | \bxox[abprs]-[A-Za-z0-9-]{10,}
        | \bhf_[A-Za-z0-9]{30,}
        | \beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
    )
});

static PRIVATE_KEY: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"-----BEGIN[A-Z ]*PRIVATE KEY-----[\s\S]*?-----END[A-Z ]*PRIVATE KEY-----")
});

/// `password=…`, `"api_key": "…"`, `client_secret: …`: the value (group 1).
static SECRET_ASSIGNMENT: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r#"(?i)\b(?:api[_-]?key|client[_-]?secret|secret[_-]?key|secret|access[_-]?token|auth[_-]?token|refresh[_-]?token|password|passwd)["']?\s*[:=]\s*["']?([^\s"',;&}]{6,})"#,
    )
});

fn secrets(text: &str) -> Vec<Range<usize>> {
    let shaped = SECRET_SHAPES
        .find_iter(text)
        .filter(|m| has_digit(m.as_str()))
        .map(|m| m.range());
    let keys = PRIVATE_KEY.find_iter(text).map(|m| m.range());
    let assigned = SECRET_ASSIGNMENT
        .captures_iter(text)
        .filter_map(|c| group(&c, 1));
    shaped.chain(keys).chain(assigned).collect()
}

/// Whether `token` has a digit: random keys and tokens nearly always do, hyphenated prose does not.
fn has_digit(token: &str) -> bool {
    token.bytes().any(|b| b.is_ascii_digit())
}

fn group(captures: &Captures<'_>, index: usize) -> Option<Range<usize>> {
    captures.get(index).map(|m| m.range())
}

/// `Authorization: Bearer x`, `Authorization: x`, and `Bearer x` anywhere: the token (group 1).
static AUTHORIZATION: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r#"(?i)\bauthorization["']?\s*[:=]\s*["']?(?:(?:bearer|basic|token)\s+)?([A-Za-z0-9._~+/=-]{8,})"#,
    )
});
static BEARER: LazyLock<Regex> =
    LazyLock::new(|| regex(r"(?i)\bbearer\s+([A-Za-z0-9._~+/=-]{16,})"));

fn bearer_tokens(text: &str) -> Vec<Range<usize>> {
    let headers = AUTHORIZATION
        .captures_iter(text)
        .filter_map(|c| group(&c, 1));
    // Outside a header, only a token with a digit in it: "bearer bonds-and-equity-derivatives" is prose.
    let loose = BEARER
        .captures_iter(text)
        .filter_map(|c| c.get(1))
        .filter(|m| has_digit(m.as_str()))
        .map(|m| m.range());
    headers.chain(loose).collect()
}

/// `scheme://user:password@`: the `user:password` (group 1).
static URL_CREDENTIALS: LazyLock<Regex> =
    LazyLock::new(|| regex(r"(?i)\b[a-z][a-z0-9+.-]*://([^\s/@:]+:[^\s/@]+)@"));

fn url_credentials(text: &str) -> Vec<Range<usize>> {
    URL_CREDENTIALS
        .captures_iter(text)
        .filter_map(|c| group(&c, 1))
        .collect()
}

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)\b[a-z0-9][a-z0-9._%+-]*@[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*\.[a-z]{2,24}\b",
    )
});

/// `+CC …` with 8 to 15 digits; `(555) 123-4567` and `555-123-4567`; `0…` national numbers in
/// three to five groups with 9 to 11 digits (so `01.02.2026` is a date, not a phone number).
static INTERNATIONAL_PHONE: LazyLock<Regex> =
    LazyLock::new(|| regex(r"\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,6}"));
static NORTH_AMERICAN_PHONE: LazyLock<Regex> =
    LazyLock::new(|| regex(r"(?:\(\d{3}\)\s?|\b\d{3}[ .-])\d{3}[ .-]\d{4}\b"));
static NATIONAL_PHONE: LazyLock<Regex> =
    LazyLock::new(|| regex(r"\b0\d{1,4}(?:[ .-]\d{2,4}){2,4}\b"));

fn phones(text: &str) -> Vec<Range<usize>> {
    let digits = |range: &Range<usize>| {
        text[range.clone()]
            .bytes()
            .filter(u8::is_ascii_digit)
            .count()
    };
    let international = INTERNATIONAL_PHONE
        .find_iter(text)
        .map(|m| m.range())
        .filter(|r| (8..=15).contains(&digits(r)));
    let north_american = NORTH_AMERICAN_PHONE.find_iter(text).map(|m| m.range());
    let national = NATIONAL_PHONE
        .find_iter(text)
        .map(|m| m.range())
        .filter(|r| (9..=11).contains(&digits(r)));
    international
        .chain(north_american)
        .chain(national)
        .filter(|r| stands_alone(text, r))
        .collect()
}

/// Neither end of `range` continues a longer number (`1.2.3.4.5`, `12345-555-123-4567`).
fn stands_alone(text: &str, range: &Range<usize>) -> bool {
    let before = text[..range.start]
        .chars()
        .rev()
        .take(2)
        .collect::<Vec<_>>();
    let after = text[range.end..].chars().take(2).collect::<Vec<_>>();
    let continues = |near: &[char]| match near {
        [c, ..] if c.is_ascii_alphanumeric() => true,
        ['.' | '-' | ':', d, ..] if d.is_ascii_digit() => true,
        _ => false,
    };
    !continues(&before) && !continues(&after)
}

static CARD_CANDIDATE: LazyLock<Regex> = LazyLock::new(|| regex(r"\b\d(?:[ -]?\d){12,18}\b"));

fn payment_cards(text: &str) -> Vec<Range<usize>> {
    longest_valid(text, &CARD_CANDIDATE, &[' ', '-'], |candidate| {
        let digits: String = candidate.chars().filter(char::is_ascii_digit).collect();
        digits.len() >= 13 && luhn(&digits) && card_issuer(&digits)
    })
    .into_iter()
    .filter(|r| stands_alone(text, r))
    .collect()
}

/// For each match of `candidates`, the longest of it, whole or cut back at one of `separators`,
/// that passes `valid`. A pattern may run on past what it looks for ("… 1111 12/29" after a card
/// number, "… 0130 00 AND" after an IBAN), and the check decides where the value ends.
fn longest_valid(
    text: &str,
    candidates: &Regex,
    separators: &[char],
    valid: impl Fn(&str) -> bool,
) -> Vec<Range<usize>> {
    candidates
        .find_iter(text)
        .filter_map(|m| {
            let candidate = m.as_str();
            let ends = std::iter::once(candidate.len())
                .chain(candidate.match_indices(separators).map(|(at, _)| at).rev());
            ends.filter(|&end| valid(&candidate[..end]))
                .map(|end| m.start()..m.start() + end)
                .next()
        })
        .collect()
}

/// The Luhn checksum of a string of ASCII digits.
pub(crate) fn luhn(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// The number's prefix and length belong to a card issuer (Visa, Mastercard, American Express,
/// Discover, JCB, Diners Club, UnionPay): an order number that happens to pass Luhn seldom does.
fn card_issuer(digits: &str) -> bool {
    let prefix = |n: usize| digits[..n].parse::<u32>().unwrap_or(0);
    let length = digits.len();
    (digits.starts_with('4') && matches!(length, 13 | 16 | 19))
        || (((51..=55).contains(&prefix(2)) || (2221..=2720).contains(&prefix(4))) && length == 16)
        || (matches!(prefix(2), 34 | 37) && length == 15)
        || ((digits.starts_with("6011")
            || digits.starts_with("65")
            || (644..=649).contains(&prefix(3)))
            && (16..=19).contains(&length))
        || ((3528..=3589).contains(&prefix(4)) && (16..=19).contains(&length))
        || ((matches!(prefix(2), 36 | 38 | 39) || (300..=305).contains(&prefix(3)))
            && (14..=19).contains(&length))
        || (digits.starts_with("62") && (16..=19).contains(&length))
}

static IBAN_CANDIDATE: LazyLock<Regex> =
    LazyLock::new(|| regex(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b"));

fn ibans(text: &str) -> Vec<Range<usize>> {
    longest_valid(text, &IBAN_CANDIDATE, &[' '], iban_checks)
}

/// The ISO 13616 check: country letters and check digits moved to the end, letters as numbers,
/// the whole mod 97 is 1.
pub(crate) fn iban_checks(candidate: &str) -> bool {
    let compact: Vec<u8> = candidate.bytes().filter(|b| *b != b' ').collect();
    if !(15..=34).contains(&compact.len()) {
        return false;
    }
    let rearranged = compact[4..].iter().chain(&compact[..4]);
    let mut remainder = 0u32;
    for &b in rearranged {
        let value = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            _ => return false,
        };
        remainder = if value >= 10 {
            (remainder * 100 + value) % 97
        } else {
            (remainder * 10 + value) % 97
        };
    }
    remainder == 1
}

static IPV4_CANDIDATE: LazyLock<Regex> = LazyLock::new(|| regex(r"\b\d{1,3}(?:\.\d{1,3}){3}\b"));
static IPV6_CANDIDATE: LazyLock<Regex> = LazyLock::new(|| regex(r"[0-9A-Fa-f:][0-9A-Fa-f:.]+"));

fn ip_addresses(text: &str) -> Vec<Range<usize>> {
    let v4 = IPV4_CANDIDATE
        .find_iter(text)
        .filter(|m| {
            // Rust's parser refuses octets with leading zeros, as inet_pton does.
            m.as_str().parse::<Ipv4Addr>().is_ok()
        })
        .map(|m| m.range())
        .filter(|r| stands_alone(text, r));
    let v6 = IPV6_CANDIDATE.find_iter(text).filter_map(|m| {
        let trimmed = m.as_str().trim_end_matches('.');
        let range = m.start()..m.start() + trimmed.len();
        let before = text[..range.start].chars().next_back();
        let after = text[range.end..].chars().next();
        let glued = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        // The parser wants two colons at least, so "a:b" and dotted quads are not candidates.
        (!glued(before) && !glued(after) && trimmed.parse::<Ipv6Addr>().is_ok()).then_some(range)
    });
    v4.chain(v6).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_accepts_test_cards_and_refuses_one_digit_off() {
        assert!(luhn("4111111111111111"));
        assert!(luhn("378282246310005"));
        assert!(!luhn("4111111111111112"));
    }

    #[test]
    fn iban_check_accepts_published_examples_and_refuses_a_changed_digit() {
        assert!(iban_checks("GB82 WEST 1234 5698 7654 32"));
        assert!(iban_checks("DE89370400440532013000"));
        assert!(!iban_checks("DE89370400440532013001"));
    }

    #[test]
    fn overlaps_keep_the_earlier_then_the_longer() {
        let f = |kind, range| Finding { kind, range };
        let kept = without_overlaps(vec![
            f(Kind::Email, 5..20),
            f(Kind::UrlCredentials, 0..10),
            f(Kind::IpAddress, 30..40),
            f(Kind::Phone, 30..35),
        ]);
        assert_eq!(
            kept,
            vec![f(Kind::UrlCredentials, 0..10), f(Kind::IpAddress, 30..40)]
        );
    }
}
