//! The redactor: what each switch covers, placeholders consistent within a trace and fresh in the
//! next, the user's own patterns, and configuration errors that name the pattern.

use sextant_redaction::{PatternConfig, Placeholders, RedactionConfig, Redactor};

const QUESTION: &str = "I'm ada@example.com, card 4111 1111 1111 1111, key sk-proj-4fT9xQ2mZ8vL1nR7kW3yB6; \
                        write to ada@example.com or grace@example.org.";

fn redactor(config: RedactionConfig) -> Redactor {
    Redactor::new(&config).unwrap()
}

#[test]
fn by_default_only_secrets_are_redacted() {
    let redacted =
        redactor(RedactionConfig::default()).redact(QUESTION, &mut Placeholders::default());
    assert_eq!(redacted.count, 1);
    assert!(
        redacted.text.contains("key <SECRET_1>;"),
        "{}",
        redacted.text
    );
    assert!(
        redacted.text.contains("ada@example.com"),
        "PII stays without the switch"
    );
    assert!(!redacted.text.contains("sk-proj"));
}

#[test]
fn with_pii_the_same_value_keeps_its_placeholder_across_texts_of_one_trace() {
    let redactor = redactor(RedactionConfig {
        pii: true,
        ..RedactionConfig::default()
    });
    let mut trace = Placeholders::default();
    let first = redactor.redact(QUESTION, &mut trace);
    assert_eq!(
        first.text,
        "I'm <EMAIL_1>, card <CARD_1>, key <SECRET_1>; write to <EMAIL_1> or <EMAIL_2>."
    );
    assert_eq!(first.count, 5);
    // Another span of the same trace: the same address, the same placeholder; a new one, the next.
    let second = redactor.redact("from grace@example.org to alan@example.net", &mut trace);
    assert_eq!(second.text, "from <EMAIL_2> to <EMAIL_3>");
    assert_eq!(trace.len(), 5);
    // The next trace numbers from 1 again.
    let next = redactor.redact("alan@example.net", &mut Placeholders::default());
    assert_eq!(next.text, "<EMAIL_1>");
}

#[test]
fn text_without_findings_comes_back_unchanged() {
    let redactor = redactor(RedactionConfig {
        pii: true,
        ..RedactionConfig::default()
    });
    let text = "Version 1.2.3 shipped on 2026-12-03 for order 20261203-0042.";
    let redacted = redactor.redact(text, &mut Placeholders::default());
    assert_eq!((redacted.text.as_str(), redacted.count), (text, 0));
}

#[test]
fn own_patterns_get_their_name_as_label_and_yield_to_built_in_findings_that_start_first() {
    let redactor = redactor(RedactionConfig {
        secrets: false,
        pii: true,
        patterns: vec![PatternConfig {
            name: "employee_id".into(),
            regex: r"EMP-\d{6}".into(),
        }],
    });
    let redacted = redactor.redact(
        "EMP-004211 and EMP-004212 (ada@example.com), EMP-004211 again; key sk-proj-4fT9xQ2mZ8vL1nR7kW3yB6",
        &mut Placeholders::default(),
    );
    assert_eq!(
        redacted.text,
        "<EMPLOYEE_ID_1> and <EMPLOYEE_ID_2> (<EMAIL_1>), <EMPLOYEE_ID_1> again; key sk-proj-4fT9xQ2mZ8vL1nR7kW3yB6",
        "secrets = false leaves keys alone"
    );
}

#[test]
fn nothing_on_is_inactive() {
    assert!(
        !redactor(RedactionConfig {
            secrets: false,
            ..RedactionConfig::default()
        })
        .is_active()
    );
    assert!(redactor(RedactionConfig::default()).is_active());
}

#[test]
fn a_bad_pattern_is_an_error_naming_it() {
    let with = |name: &str, regex: &str| RedactionConfig {
        patterns: vec![
            PatternConfig {
                name: "fine".into(),
                regex: "x+".into(),
            },
            PatternConfig {
                name: name.into(),
                regex: regex.into(),
            },
        ],
        ..RedactionConfig::default()
    };
    let error = Redactor::new(&with("ticket", "TKT-(")).unwrap_err();
    assert_eq!((error.index, error.name.as_str()), (1, "ticket"));
    assert!(
        error
            .to_string()
            .starts_with("patterns[1] (\"ticket\"): the regex does not compile"),
        "{error}"
    );
    let error = Redactor::new(&with("anything", "a*")).unwrap_err();
    assert!(error.problem.contains("empty string"), "{error}");
    let error = Redactor::new(&with("has space", "x")).unwrap_err();
    assert!(error.problem.contains("letters, digits and _"), "{error}");
}

#[test]
fn the_configuration_reads_from_toml_and_refuses_unknown_keys() {
    let config: RedactionConfig = toml::from_str("pii = true").unwrap();
    assert_eq!(
        config,
        RedactionConfig {
            pii: true,
            ..RedactionConfig::default()
        }
    );
    let error = toml::from_str::<RedactionConfig>("pi = true").unwrap_err();
    assert!(error.to_string().contains("unknown field `pi`"), "{error}");
}

#[test]
fn the_default_redactor_is_the_default_configuration() {
    let configured = Redactor::new(&RedactionConfig::default()).unwrap();
    assert_eq!(Redactor::default(), configured);
    let mut trace = Placeholders::default();
    let out = Redactor::default().redact(
        "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl for ada@example.com",
        &mut trace,
    );
    assert_eq!(out.count, 1, "secrets only: {}", out.text);
    assert!(out.text.ends_with("for ada@example.com"), "{}", out.text);
}

#[test]
fn json_is_redacted_value_by_value_and_stays_json() {
    let redactor = Redactor::new(&RedactionConfig {
        pii: true,
        ..RedactionConfig::default()
    })
    .unwrap();
    let mut trace = Placeholders::default();
    // Raw text redaction would take `nada@example.com` after the `\n` escape and leave `\<`.
    let json = r#"{"b":["x\nada@example.com"],"a":{"card":"4111 1111 1111 1111","n":3}}"#;
    let out = redactor.redact_json_or_text(json, &mut trace);
    assert_eq!(out.count, 2);
    let value: serde_json::Value = serde_json::from_str(&out.text).expect("still JSON");
    assert_eq!(
        value,
        serde_json::json!({"b": ["x\n<EMAIL_1>"], "a": {"card": "<CARD_1>", "n": 3}})
    );
    // Not JSON after all: redacted as text.
    let out = redactor.redact_json_or_text("[ada@example.com", &mut trace);
    assert_eq!(out.text, "[<EMAIL_1>");
    // Nothing found: the text comes back as it was, key order and spacing included.
    let clean = r#"{ "z": 1, "a": "hello" }"#;
    assert_eq!(redactor.redact_json_or_text(clean, &mut trace).text, clean);
}

#[test]
fn json_secrets_known_by_their_key_keys_and_numbers_are_redacted_too() {
    let mut trace = Placeholders::default();
    let secrets = Redactor::default();
    for json in [
        r#"{"password":"hunter2xyz"}"#,
        r#"{"headers":{"Authorization":"Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"}}"#,
    ] {
        let out = secrets.redact_json_or_text(json, &mut trace);
        assert!(out.count >= 1, "{json} → {}", out.text);
        assert!(
            !out.text.contains("hunter2xyz") && !out.text.contains("c2lnbmF0dXJl"),
            "{}",
            out.text
        );
    }
    let pii = Redactor::new(&RedactionConfig {
        pii: true,
        ..RedactionConfig::default()
    })
    .unwrap();
    let out = pii.redact_json_or_text(
        r#"{"ada@example.com": {"card": 4111111111111111}}"#,
        &mut trace,
    );
    assert!(!out.text.contains("ada@example.com"), "{}", out.text);
    assert!(!out.text.contains("4111111111111111"), "{}", out.text);
}
