//! `scope`: reasons and names. A cancel may say why, a scope may have a name, and the
//! sentence of an interrupt names the budget that ran out and the scope that owned it.
//! Under tokio's paused clock.

use std::error::Error as _;
use std::future::pending;
use std::time::Duration;

use hangfree::prelude::*;
use hangfree::{CancelScope, Cause, Interrupted};
use tokio::time::{Instant, advance};
use tokio_util::sync::CancellationToken;

const SECOND: Duration = Duration::from_secs(1);

async fn interrupt_of(scope: &CancelScope) -> Interrupted {
    pending::<()>().within(scope).await.unwrap_err()
}

#[tokio::test(start_paused = true)]
async fn a_cancel_with_a_reason_says_it() {
    let service = CancelScope::new();
    service.cancel_with("service stopping (SIGTERM)");
    let why = service.check().unwrap_err();
    assert_eq!(why.cause(), Cause::Cancelled);
    assert_eq!(why.reason(), Some("service stopping (SIGTERM)"));
    assert_eq!(why.to_string(), "cancelled: service stopping (SIGTERM)");
    // An owned reason works the same.
    let job = CancelScope::new();
    job.cancel_with(format!("table {} failed", 3));
    assert_eq!(job.check().unwrap_err().reason(), Some("table 3 failed"));
}

#[tokio::test(start_paused = true)]
async fn a_plain_cancel_and_a_cancel_through_a_token_have_no_reason() {
    let scope = CancelScope::new();
    scope.cancel();
    assert_eq!(scope.check().unwrap_err().reason(), None);
    assert_eq!(scope.check().unwrap_err().to_string(), "cancelled");

    let shutdown = CancellationToken::new();
    let from_token = CancelScope::from_token(&shutdown);
    shutdown.cancel();
    assert_eq!(from_token.check().unwrap_err().reason(), None);
}

#[tokio::test(start_paused = true)]
async fn a_descendant_carries_its_ancestors_reason() {
    let service = CancelScope::new();
    let request = service.child().with_name("GET /export");
    let query = request.child();
    let mut waiting = tokio_test::task::spawn(pending::<()>().within(&query));
    tokio_test::assert_pending!(waiting.poll());
    service.cancel_with("service stopping (SIGTERM)");
    let why = tokio_test::assert_ready!(waiting.poll()).unwrap_err();
    assert_eq!(why.reason(), Some("service stopping (SIGTERM)"));
    assert_eq!(why.scope_name(), None, "the unnamed service was cancelled");
    assert_eq!(why.to_string(), "cancelled: service stopping (SIGTERM)");
    assert_eq!(request.check().unwrap_err(), why);
}

#[tokio::test(start_paused = true)]
async fn the_first_cancel_wins_for_good() {
    let parent = CancelScope::new();
    let scope = parent.child().with_timeout(5 * SECOND);
    scope.cancel_with("first");
    scope.cancel_with("second");
    scope.cancel();
    parent.cancel_with("from above, later");
    advance(10 * SECOND).await; // and the deadline passes
    let why = scope.check().unwrap_err();
    assert_eq!(
        (why.cause(), why.reason()),
        (Cause::Cancelled, Some("first"))
    );
    assert_eq!(interrupt_of(&scope).await, why);

    let plain = CancelScope::new();
    plain.cancel();
    plain.cancel_with("too late");
    assert_eq!(plain.check().unwrap_err().reason(), None);
}

#[tokio::test(start_paused = true)]
async fn with_name_returns_a_named_child_and_leaves_the_parent_as_it_was() {
    let parent = CancelScope::new();
    let named = parent.clone().with_name("nightly export");
    assert_eq!(named.name(), Some("nightly export"));
    assert_eq!(parent.name(), None);
    named.cancel();
    assert!(!parent.is_cancelled(), "a child: its cancel stays below");
    parent.cancel();
    assert!(named.is_cancelled());
}

#[tokio::test(start_paused = true)]
async fn children_inherit_a_name_unless_given_their_own_and_deadlines_keep_it() {
    let request = CancelScope::new().with_name("GET /export");
    assert_eq!(request.child().name(), Some("GET /export"));
    assert_eq!(request.child().child().name(), Some("GET /export"));
    assert_eq!(
        request.clone().with_timeout(SECOND).name(),
        Some("GET /export")
    );
    assert_eq!(
        request
            .clone()
            .with_deadline(Instant::now() + SECOND)
            .name(),
        Some("GET /export")
    );
    let step = request.child().with_name("query");
    assert_eq!(step.name(), Some("query"));
    assert_eq!(step.child().name(), Some("query"));
    assert_eq!(request.shield(SECOND).name(), Some("GET /export"));
}

#[tokio::test(start_paused = true)]
async fn the_sentence_names_the_scope_that_owns_the_budget_that_ran_out() {
    let two = 2 * SECOND;
    // Own deadline, unnamed and named.
    let own = CancelScope::new().with_timeout(two);
    assert_eq!(
        interrupt_of(&own).await.to_string(),
        "deadline of 2s exceeded"
    );
    let named = CancelScope::new()
        .with_name("GET /export")
        .with_timeout(two);
    let why = interrupt_of(&named).await;
    assert_eq!(why.to_string(), "deadline of 2s of 'GET /export' exceeded");
    assert_eq!(why.scope_name(), Some("GET /export"));

    // Inherited: through the owner's name, whatever the child is called.
    let owner = CancelScope::new()
        .with_name("GET /export")
        .with_timeout(two);
    let below = owner.child().with_name("query");
    assert_eq!(
        interrupt_of(&below).await.to_string(),
        "deadline of 2s of 'GET /export' exceeded (inherited from an outer scope)"
    );
    // A budget owned by an unnamed scope above every name stays unnamed.
    let unnamed_owner = CancelScope::new().with_timeout(two).with_name("query");
    assert_eq!(
        interrupt_of(&unnamed_owner).await.to_string(),
        "deadline of 2s exceeded (inherited from an outer scope)"
    );

    // A cancel names the scope that was cancelled.
    let request = CancelScope::new().with_name("GET /export");
    let handler = request.child().with_name("handler");
    request.cancel_with("client went away");
    assert_eq!(
        handler.check().unwrap_err().to_string(),
        "'GET /export' cancelled: client went away"
    );
    let plain = CancelScope::new().with_name("GET /export");
    plain.cancel();
    assert_eq!(
        plain.check().unwrap_err().to_string(),
        "'GET /export' cancelled"
    );
}

#[tokio::test(start_paused = true)]
async fn a_shields_sentence_says_its_grace_ran_out_and_its_source_says_why() {
    let consumer = CancelScope::new();
    let flush = consumer.shield(5 * SECOND);
    consumer.cancel_with("service stopping (SIGTERM)");
    let why = interrupt_of(&flush).await;
    assert_eq!(
        why.to_string(),
        "grace of 5s exceeded after the outer scope was interrupted"
    );
    assert_eq!(
        why.source().unwrap().to_string(),
        "cancelled: service stopping (SIGTERM)"
    );
    let named = CancelScope::new().with_name("ack flush");
    let shield = named.shield(SECOND);
    named.cancel();
    assert_eq!(
        interrupt_of(&shield).await.to_string(),
        "grace of 1s of 'ack flush' exceeded after the outer scope was interrupted"
    );
}

#[tokio::test(start_paused = true)]
async fn debug_shows_the_reason_and_the_name() {
    let scope = CancelScope::new().with_name("GET /export");
    scope.cancel_with("client went away");
    let text = format!("{:?}", scope.check().unwrap_err());
    assert!(
        text.contains(r#"reason: "client went away""#)
            && text.contains(r#"scope_name: "GET /export""#),
        "{text}"
    );
    assert!(format!("{scope:?}").contains(r#"name: Some("GET /export")"#));
}
