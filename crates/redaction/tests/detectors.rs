//! The detectors, case by case: what each must find (exactly that span of the text) and the
//! look-alikes it must leave alone (order numbers, dates, version strings, times, prose).

use sextant_redaction::{Kind, detect};

/// `text` with what `kind` finds in it, as strings.
fn found(kind: Kind, text: &str) -> Vec<String> {
    detect(text, &[kind])
        .into_iter()
        .map(|f| text[f.range].to_owned())
        .collect()
}

/// Each case: the text, then exactly what must be found in it (empty: nothing).
fn check(kind: Kind, cases: &[(&str, &[&str])]) {
    let mut wrong = Vec::new();
    for (text, expected) in cases {
        let got = found(kind, text);
        if got != *expected {
            wrong.push(format!(
                "{kind:?} in {text:?}: found {got:?}, expected {expected:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[test]
fn emails() {
    check(
        Kind::Email,
        &[
            ("Write to ada@example.com today", &["ada@example.com"]),
            (
                "<Grace.Hopper+navy@mail.us.example.org>",
                &["Grace.Hopper+navy@mail.us.example.org"],
            ),
            ("a@b.co and c_d@e-f.io", &["a@b.co", "c_d@e-f.io"]),
            // Look-alikes.
            ("ping @ada on chat", &[]),
            ("root@localhost", &[]),
            ("pkg@1.2.3 is out", &[]),
            ("x@y.z", &[]),
        ],
    );
}

#[test]
fn phone_numbers() {
    check(
        Kind::Phone,
        &[
            ("Call +44 20 7946 0958.", &["+44 20 7946 0958"]),
            ("+1 (555) 123-4567", &["+1 (555) 123-4567"]),
            ("+33612345678", &["+33612345678"]),
            ("office (555) 123-4567", &["(555) 123-4567"]),
            (
                "cell 555-123-4567 or 555.987.6543",
                &["555-123-4567", "555.987.6543"],
            ),
            ("mobile 06 12 34 56 78", &["06 12 34 56 78"]),
            ("London 020 7946 0958", &["020 7946 0958"]),
            // Look-alikes: dates, times, order numbers, versions, short codes.
            ("on 2026-12-03 at 14:30:00", &[]),
            ("due 01.02.2026 or 05-12-2026", &[]),
            ("order 20261203-0042 shipped", &[]),
            ("order number 4815162342", &[]),
            ("version 1.2.3 and 0.10.12", &[]),
            ("ISBN 978-3-16-148410-0", &[]),
            ("+1 is a vote", &[]),
            ("id 12345-555-123-4567", &[]),
        ],
    );
}

#[test]
fn payment_cards() {
    check(
        Kind::PaymentCard,
        &[
            (
                "card 4111 1111 1111 1111 exp 12/29",
                &["4111 1111 1111 1111"],
            ),
            ("4111-1111-1111-1111", &["4111-1111-1111-1111"]),
            ("Mastercard 5555555555554444", &["5555555555554444"]),
            ("Amex 3782 822463 10005", &["3782 822463 10005"]),
            (
                "new Mastercard range 2223003122003222",
                &["2223003122003222"],
            ),
            ("Discover 6011111111111117", &["6011111111111117"]),
            // Look-alikes: one digit off (Luhn fails), an order number that passes Luhn but
            // belongs to no issuer, a longer run of digits, a timestamp.
            ("card 4111 1111 1111 1112", &[]),
            ("order 1234567812345670", &[]),
            ("trace 41111111111111110000", &[]),
            ("epoch ms 1764770000000", &[]),
        ],
    );
}

#[test]
fn ibans() {
    check(
        Kind::Iban,
        &[
            (
                "IBAN GB82 WEST 1234 5698 7654 32 please",
                &["GB82 WEST 1234 5698 7654 32"],
            ),
            ("to DE89370400440532013000.", &["DE89370400440532013000"]),
            (
                "FR14 2004 1010 0505 0001 3M02 606 AND THEN",
                &["FR14 2004 1010 0505 0001 3M02 606"],
            ),
            // Look-alikes: a changed digit, an SKU, a part number.
            ("DE89370400440532013001", &[]),
            ("SKU AB12CDEF34567890", &[]),
            ("part XY99 ABCD EFGH IJKL", &[]),
        ],
    );
}

#[test]
fn ip_addresses() {
    check(
        Kind::IpAddress,
        &[
            ("from 203.0.113.7 at noon", &["203.0.113.7"]),
            (
                "hosts 10.0.0.1, 192.168.1.254.",
                &["10.0.0.1", "192.168.1.254"],
            ),
            (
                "v6 2001:db8::8a2e:370:7334 and ::1",
                &["2001:db8::8a2e:370:7334", "::1"],
            ),
            ("mapped ::ffff:192.0.2.128 here", &["::ffff:192.0.2.128"]),
            ("[fe80::1]:8080", &["fe80::1"]),
            // Look-alikes: versions, an octet over 255, leading zeros, times, MACs, Rust paths.
            ("v1.2.3.4 and 1.2.3", &[]),
            ("build 10.0.19041.1 or 1.2.3.4.5", &[]),
            ("999.1.1.1 and 01.02.03.04", &[]),
            ("at 12:30:45", &[]),
            ("mac 00:1A:2B:3C:4D:5E", &[]),
            ("std::fmt::Display and Vec::new", &[]),
        ],
    );
}

#[test]
fn secrets() {
    let github = format!("ghp_{}", "a1B2c3D4e5".repeat(4));
    let aws = "AKIAIOSFODNN7EXAMPLE";
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
    let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n-----END RSA PRIVATE KEY-----";
    check(
        Kind::Secret,
        &[
            (
                "key sk-proj-4fT9xQ2mZ8vL1nR7kW3yB6 ok",
                &["sk-proj-4fT9xQ2mZ8vL1nR7kW3yB6"],
            ),
            (
                "sk-ant-api03-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2",
                &["sk-ant-api03-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2"],
            ),
            (&format!("token {github}"), &[github.as_str()]),
            (&format!("aws {aws}"), &[aws]),
            (&format!("Cookie jwt={jwt}"), &[jwt]),
            (&format!("key:\n{pem}\n"), &[pem]),
            (
                "stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc",
                &["sk_live_4eC39HqLyjWDarjtT1zdp7dc"],
            ),
            (r#"{"api_key": "abc123def456"}"#, &["abc123def456"]),
            ("password=hunter22&user=ada", &["hunter22"]),
            ("CLIENT_SECRET: s3cr3t-value", &["s3cr3t-value"]),
            // Look-alikes: prose with the same prefixes, short or numeric settings.
            ("use sk-learn-compatible-estimators-and-pipelines", &[]),
            ("the task-runner-for-background-jobs-in-rust", &[]),
            ("max_tokens=512, secret: no", &[]),
            ("the password field is required", &[]),
        ],
    );
}

#[test]
fn bearer_tokens_and_url_credentials() {
    check(
        Kind::BearerToken,
        &[
            (
                "Authorization: Bearer abc.DEF-123_xyz",
                &["abc.DEF-123_xyz"],
            ),
            (
                r#""authorization": "Basic dXNlcjpwYXNzd29yZA==""#,
                &["dXNlcjpwYXNzd29yZA=="],
            ),
            (
                "curl -H 'bearer 0123456789abcdefXYZ'",
                &["0123456789abcdefXYZ"],
            ),
            ("bearer bonds-and-equity-derivatives", &[]),
        ],
    );
    check(
        Kind::UrlCredentials,
        &[
            ("postgres://app:pa55w0rd@db:5432/x", &["app:pa55w0rd"]),
            ("https://user:tok@github.com/o/r.git", &["user:tok"]),
            ("ssh://git@github.com/o/r", &[]),
            ("http://127.0.0.1:5000/api", &[]),
        ],
    );
}

#[test]
fn everything_at_once_without_overlaps() {
    let text = "Mail ada@example.com from 10.0.0.1 with card 4111111111111111 and \
                postgres://app:pa55w0rd@db.example.com/x";
    let all: Vec<Kind> = Kind::SECRETS.into_iter().chain(Kind::PII).collect();
    let kinds: Vec<(Kind, &str)> = detect(text, &all)
        .into_iter()
        .map(|f| (f.kind, &text[f.range]))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (Kind::Email, "ada@example.com"),
            (Kind::IpAddress, "10.0.0.1"),
            (Kind::PaymentCard, "4111111111111111"),
            (Kind::UrlCredentials, "app:pa55w0rd"),
        ]
    );
}
