//! Sessions through the agent loop, driven by the scripted model: the history window decides what
//! the model sees of earlier turns, answered turns are stored for the next process, and a failed
//! turn leaves the session as it was.

use std::sync::Arc;

use sextant_agent::session::{
    HistoryWindow, SessionError, SessionStore, SessionsConfig, run_session_turn,
};
use sextant_agent::testing::ScriptedChatModel;
use sextant_agent::{Agent, ChatError, Role};

#[tokio::test]
async fn turns_see_their_window_of_history_and_are_stored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.db");
    let store = SessionStore::open(&path).unwrap();
    let model = ScriptedChatModel::new()
        .then_text("Hello Ada.")
        .then_text("You said your name is Ada.")
        .then_error(ChatError::Http {
            provider: "scripted".into(),
            status: 400,
            message: "context length exceeded".into(),
        })
        .then_text("Paris.");
    let requests = model.requests();
    let agent = Agent::builder("assistant", Arc::new(model))
        .system_prompt("Be brief.")
        .build();
    let mut session = store.create("assistant", Some("ada")).await.unwrap();
    let window = &SessionsConfig {
        window: HistoryWindow::Turns { max_turns: 1 },
        ..SessionsConfig::default()
    };

    run_session_turn(
        &store,
        &mut session,
        &agent,
        window,
        "I am Ada.",
        None,
        None,
    )
    .await
    .unwrap();
    run_session_turn(
        &store,
        &mut session,
        &agent,
        window,
        "What is my name?",
        None,
        None,
    )
    .await
    .unwrap();
    let err = run_session_turn(&store, &mut session, &agent, window, "Too long", None, None)
        .await
        .unwrap_err();
    assert!(matches!(err, SessionError::Turn(_)), "{err}");
    assert_eq!(session.turns.len(), 2, "a failed turn is not stored");
    run_session_turn(
        &store,
        &mut session,
        &agent,
        window,
        "Capital of France?",
        None,
        None,
    )
    .await
    .unwrap();

    let requests = requests.lock().unwrap().clone();
    let roles_and_text = |i: usize| -> Vec<(Role, String)> {
        requests[i]
            .messages
            .iter()
            .map(|m| (m.role, m.content.clone()))
            .collect()
    };
    assert_eq!(
        roles_and_text(1),
        [
            (Role::System, "Be brief.".to_owned()),
            (Role::User, "I am Ada.".to_owned()),
            (Role::Assistant, "Hello Ada.".to_owned()),
            (Role::User, "What is my name?".to_owned()),
        ]
    );
    // One turn of history: the first turn has left the window.
    assert_eq!(
        roles_and_text(3)[1..],
        [
            (Role::User, "What is my name?".to_owned()),
            (Role::Assistant, "You said your name is Ada.".to_owned()),
            (Role::User, "Capital of France?".to_owned()),
        ]
    );

    // Another process resumes the same conversation.
    let resumed = SessionStore::open(&path)
        .unwrap()
        .get(&session.id)
        .await
        .unwrap();
    assert_eq!(resumed, session);
    assert_eq!(resumed.turns.len(), 3);
    assert_eq!(resumed.turns[2].answer, "Paris.");
}

#[tokio::test]
async fn turns_that_leave_the_window_are_folded_into_a_stored_summary() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.db");
    let store = SessionStore::open(&path).unwrap();
    // Turn 1, turn 2, then the summary of turn 1 (it left the window), turn 3, then the summary
    // extended with turn 2, turn 4.
    let model = ScriptedChatModel::new()
        .then_text("Hello Ada.")
        .then_text("Rust is a language.")
        .then_text("SUMMARY-1: the user is Ada.")
        .then_text("Yes.")
        .then_text("SUMMARY-2: the user is Ada; she asked about Rust.")
        .then_text("You are Ada.");
    let requests = model.requests();
    let agent = Agent::builder("assistant", Arc::new(model))
        .system_prompt("Be brief.")
        .build();
    let settings = SessionsConfig {
        window: HistoryWindow::Turns { max_turns: 1 },
        summarize: true,
        summary_max_tokens: 40,
    };
    let mut session = store.create("assistant", Some("ada")).await.unwrap();
    for question in ["I am Ada.", "What is Rust?", "Is it fast?", "Who am I?"] {
        run_session_turn(
            &store,
            &mut session,
            &agent,
            &settings,
            question,
            None,
            None,
        )
        .await
        .unwrap();
    }
    let requests = requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 6);
    // The summary request holds the turn that left the window, and asks for few tokens.
    let first_summary = &requests[2];
    assert_eq!(first_summary.options.max_tokens, Some(40));
    assert!(
        first_summary.messages[1]
            .content
            .contains("User: I am Ada.")
    );
    assert!(!first_summary.messages[1].content.contains("What is Rust?"));
    // The second extends the first with the next turn that left.
    let second_summary = &requests[4].messages[1].content;
    assert!(second_summary.contains("SUMMARY-1") && second_summary.contains("User: What is Rust?"));
    // The last turn saw: its system prompt, the summary, the one turn in the window, the question.
    let last: Vec<(Role, &str)> = requests[5]
        .messages
        .iter()
        .map(|m| (m.role, m.content.as_str()))
        .collect();
    assert_eq!(last.len(), 5, "{last:?}");
    assert_eq!(last[0], (Role::System, "Be brief."));
    assert_eq!(last[1].0, Role::System);
    assert!(last[1].1.contains("SUMMARY-2"), "{last:?}");
    assert_eq!(last[2], (Role::User, "Is it fast?"));
    assert_eq!(last[4], (Role::User, "Who am I?"));

    // The summary is stored: another process resumes with it and does not summarise again.
    let resumed = SessionStore::open(&path)
        .unwrap()
        .get(&session.id)
        .await
        .unwrap();
    assert_eq!(resumed.summarized_turns, 2);
    assert!(resumed.summary.unwrap().starts_with("SUMMARY-2"));
    assert_eq!(resumed.turns.len(), 4);
}

#[tokio::test]
async fn a_failed_summary_costs_the_summary_not_the_turn() {
    let dir = tempfile::tempdir().unwrap();
    let store = SessionStore::open(dir.path().join("sessions.db")).unwrap();
    let model = ScriptedChatModel::new()
        .then_text("one")
        .then_error(ChatError::Http {
            provider: "scripted".into(),
            status: 500,
            message: "down".into(),
        })
        .then_text("two");
    let agent = Agent::builder("assistant", Arc::new(model)).build();
    let settings = SessionsConfig {
        window: HistoryWindow::Turns { max_turns: 0 },
        summarize: true,
        summary_max_tokens: 40,
    };
    let mut session = store.create("assistant", None).await.unwrap();
    run_session_turn(&store, &mut session, &agent, &settings, "first", None, None)
        .await
        .unwrap();
    let outcome = run_session_turn(
        &store,
        &mut session,
        &agent,
        &settings,
        "second",
        None,
        None,
    )
    .await
    .unwrap();
    assert_eq!(outcome.answer, "two");
    assert_eq!(session.summarized_turns, 0);
    assert!(session.summary.is_none());
}
