//! The state store's contract, for both backends: sessions (turns in order, counts, unknown ids)
//! and turn state (leases that keep other holders out until they run out, atomic decisions,
//! filters, what a crash leaves) — on the embedded SQLite file, and on a real PostgreSQL server
//! (`cargo xtask test` starts one), where two replicas racing for one turn get it once.

use std::sync::Arc;
use std::time::Duration;

use sextant_agent::Message;
use sextant_agent::ToolCall;
use sextant_agent::approval::Decision;
use sextant_agent::session::{SessionError, SessionStore, SessionTurn};
use sextant_agent::turn_state::{CallStatus, PendingCall, TurnState, TurnStatus};
use sextant_agent::turn_store::{StateConfig, TurnFilter, TurnStore, TurnStoreError};

fn turn(question: &str, at: i64) -> SessionTurn {
    SessionTurn {
        question: question.into(),
        answer: format!("answer to {question}"),
        trace_id: None,
        created_at_ms: at,
        usage: sextant_agent::Usage {
            input_tokens: 3,
            output_tokens: 2,
            cost_nanos: Some(5),
            ..Default::default()
        },
    }
}

async fn sessions_contract(store: &SessionStore) {
    let session = store.create("assistant", Some("ada")).await.unwrap();
    for (i, q) in ["one", "two", "three"].into_iter().enumerate() {
        store
            .append(&session.id, &turn(q, 100 + i as i64))
            .await
            .unwrap();
    }
    let got = store.get(&session.id).await.unwrap();
    assert_eq!(got.user_id.as_deref(), Some("ada"));
    let questions: Vec<&str> = got.turns.iter().map(|t| t.question.as_str()).collect();
    assert_eq!(questions, ["one", "two", "three"]);
    // A client-chosen id: created once, found after.
    let chosen = store
        .get_or_create("ada/s1", "assistant", Some("ada"))
        .await
        .unwrap();
    assert!(chosen.turns.is_empty());
    store.append("ada/s1", &turn("hi", 500)).await.unwrap();
    let again = store.get_or_create("ada/s1", "other", None).await.unwrap();
    assert_eq!((again.agent.as_str(), again.turns.len()), ("assistant", 1));
    store
        .set_summary(&session.id, "they counted", 2)
        .await
        .unwrap();
    let summarised = store.get(&session.id).await.unwrap();
    assert_eq!(summarised.summary.as_deref(), Some("they counted"));
    assert_eq!(summarised.summarized_turns, 2);
    let listed = store.list(10).await.unwrap();
    assert_eq!(listed[0].0.id, "ada/s1", "the most recently active first");
    let counted = listed.iter().find(|(s, _)| s.id == session.id).unwrap();
    assert_eq!(counted.1, 3);
    assert!(matches!(
        store.get("nope").await,
        Err(SessionError::NotFound(_))
    ));
    assert!(matches!(
        store.append("nope", &turn("q", 1)).await,
        Err(SessionError::NotFound(_))
    ));
    assert!(matches!(
        store.set_summary("nope", "x", 1).await,
        Err(SessionError::NotFound(_))
    ));
}

fn paused_turn(owner: &str) -> TurnState {
    let mut state = TurnState::new("payer", "Pay Ada.", vec![Message::user("Pay Ada.")]);
    state.owner = Some(owner.into());
    state.status = TurnStatus::AwaitingApproval;
    state.pending = vec![PendingCall {
        call: ToolCall {
            id: "c1".into(),
            name: "pay".into(),
            arguments: "{}".into(),
        },
        status: CallStatus::AwaitingApproval {
            reason: "always".into(),
        },
    }];
    state
}

async fn turns_contract(store: &Arc<dyn TurnStore>) {
    let minute = Duration::from_secs(60);
    // A running turn held by "one".
    let running = TurnState::new("payer", "q", vec![Message::user("q")]);
    store.save(&running, "one", minute).await.unwrap();
    let taken = store.claim(&running.id, "two", minute).await.unwrap_err();
    assert!(
        matches!(&taken, TurnStoreError::Leased { holder, .. } if holder == "one"),
        "{taken}"
    );
    assert!(matches!(
        store.update(&running.id, &mut |_| Ok(())).await,
        Err(TurnStoreError::Leased { .. })
    ));
    assert!(!store.orphaned().await.unwrap().contains(&running.id));
    store.renew(&running.id, "one", minute).await.unwrap();
    // Its holder stops: the lease runs out and the turn is an orphan another holder takes.
    store
        .save(&running, "one", Duration::from_millis(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(store.orphaned().await.unwrap().contains(&running.id));
    let claimed = store.claim(&running.id, "two", minute).await.unwrap();
    assert_eq!(claimed, running);

    // A paused turn (no lease): decisions are atomic, and a rejected one changes nothing.
    let paused = paused_turn("ada");
    store.save(&paused, "one", Duration::ZERO).await.unwrap();
    let rejected = store
        .update(&paused.id, &mut |s| s.decide("zz", Decision::Approve, None))
        .await
        .unwrap_err();
    assert!(matches!(rejected, TurnStoreError::Rejected(_)));
    assert_eq!(store.load(&paused.id).await.unwrap(), paused);
    let decided = store
        .update(&paused.id, &mut |s| {
            s.decide("c1", Decision::Approve, Some("ops".into()))
        })
        .await
        .unwrap();
    assert_eq!(decided.status, TurnStatus::Running);
    assert_eq!(
        store.load(&paused.id).await.unwrap().pending[0].status,
        CallStatus::Decided {
            decision: Decision::Approve,
            by: Some("ops".into())
        }
    );
    let waiting = paused_turn("bob");
    store.save(&waiting, "one", Duration::ZERO).await.unwrap();
    let bobs = store
        .list(&TurnFilter {
            status: Some(TurnStatus::AwaitingApproval),
            owner: Some("bob".into()),
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(bobs.len(), 1);
    assert_eq!(
        (bobs[0].id.as_str(), bobs[0].pending_approvals),
        (waiting.id.as_str(), 1)
    );
    assert!(matches!(
        store.load("nope").await,
        Err(TurnStoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn the_embedded_sqlite_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let stores = StateConfig::default().open(dir.path()).await.unwrap();
    sessions_contract(&stores.sessions).await;
    turns_contract(&stores.turns).await;
}

#[tokio::test]
async fn a_url_that_is_neither_sqlite_nor_postgres_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let config = StateConfig {
        url: Some("mysql://root:hunter2@db.internal/sextant".into()),
        ..StateConfig::default()
    };
    let error = config.open(dir.path()).await.err().unwrap().to_string();
    assert!(error.contains("must be a SQLite file path"), "{error}");
    assert!(!error.contains("hunter2"), "no password in errors: {error}");
}

#[tokio::test]
#[ignore = "needs a PostgreSQL server: cargo xtask test"]
async fn postgres_keeps_the_contract_and_two_replicas_take_a_turn_once() {
    let url = sextant_testkit::fresh_postgres_database().await;
    let config = StateConfig {
        url: Some(url.clone()),
        ..StateConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    // Two replicas start together: the schema is created once, without a race.
    let (one, two) = tokio::join!(config.open(dir.path()), config.open(dir.path()));
    let (one, two) = (one.unwrap(), two.unwrap());
    sessions_contract(&one.sessions).await;
    turns_contract(&one.turns).await;
    // The other replica sees the same sessions.
    assert_eq!(two.sessions.get("ada/s1").await.unwrap().turns.len(), 1);

    // An orphaned turn, claimed by both replicas at once: exactly one gets it.
    let orphan = TurnState::new("payer", "q", vec![Message::user("q")]);
    one.turns
        .save(&orphan, "dead", Duration::ZERO)
        .await
        .unwrap();
    for _ in 0..10 {
        let minute = Duration::from_secs(60);
        let (a, b) = tokio::join!(
            one.turns.claim(&orphan.id, "replica-a", minute),
            two.turns.claim(&orphan.id, "replica-b", minute)
        );
        assert!(
            a.is_ok() != b.is_ok(),
            "exactly one replica takes the turn: {:?} / {:?}",
            a.err(),
            b.err()
        );
        // Released again for the next round.
        let winner = if a.is_ok() { "replica-a" } else { "replica-b" };
        one.turns
            .save(&orphan, winner, Duration::ZERO)
            .await
            .unwrap();
    }

    // The password never reaches an error.
    let wrong = url.replacen("postgres://sextant@", "postgres://sextant:s3cret@", 1);
    let bad = StateConfig {
        url: Some(wrong.replace("/sextant_test", "/no_such_database_")),
        ..StateConfig::default()
    };
    let error = bad.open(dir.path()).await.err().unwrap().to_string();
    assert!(error.contains("no_such_database_"), "{error}");
    assert!(!error.contains("s3cret"), "{error}");
}
