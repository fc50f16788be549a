//! Sessions through the agent loop, driven by the scripted model: the history window decides what
//! the model sees of earlier turns, answered turns are stored for the next process, and a failed
//! turn leaves the session as it was.

use std::sync::Arc;

use sextant_agent::session::{HistoryWindow, SessionError, SessionStore, run_session_turn};
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
    let mut session = store.create("assistant", Some("ada")).unwrap();
    let window = HistoryWindow::Turns { max_turns: 1 };

    run_session_turn(&store, &mut session, &agent, window, "I am Ada.", None)
        .await
        .unwrap();
    run_session_turn(
        &store,
        &mut session,
        &agent,
        window,
        "What is my name?",
        None,
    )
    .await
    .unwrap();
    let err = run_session_turn(&store, &mut session, &agent, window, "Too long", None)
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
    )
    .await
    .unwrap();

    let requests = requests.lock().unwrap();
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
    let resumed = SessionStore::open(&path).unwrap().get(&session.id).unwrap();
    assert_eq!(resumed, session);
    assert_eq!(resumed.turns.len(), 3);
    assert_eq!(resumed.turns[2].answer, "Paris.");
}
