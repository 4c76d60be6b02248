//! Every refusal a fan can meet says in words what its ErrorInfo reason says, under
//! each protocol: a person reading only the message (a log line, `txn show`, a pie
//! slice) reaches the same cause as a program reading the reason.
//!
//! This file walks, per protocol, the refusals of a purchase on a plain event and on
//! one with a waiting room, a purchase aborted because payments did not answer, and a
//! saga's lost hold. The rest are walked where they
//! arise, and every test that reads a reason through `common::reason` checks its
//! message too: INTERRUPTED and STALE_FENCING_TOKEN in the crash tests (a coordinator
//! killed or paused), RATE_LIMITED in `rate.rs`, UNAUTHENTICATED, SCOPE_REQUIRED and
//! OTHER_USER in `auth.rs`, ADMISSION_EXPIRED in `room.rs`. The participants' own
//! refusals (TXN_ABORTED, STEP_COMPENSATED, INVALID_STATE, AMOUNT_EXCEEDED, which only
//! the coordinator sees) are checked variant by variant in each service's `error.rs`.

use std::collections::BTreeSet;
use std::time::Duration;

use local_mesh::MeshOptions;
use proto::v1::*;
use tonic::Code;

use crate::common::*;

/// The refusal's code and reason, after `reason` has checked its words.
fn refusal(result: Result<tonic::Response<PurchaseResponse>, tonic::Status>) -> (Code, String) {
    let status = result.expect_err("refused");
    let (code, reason, _) = reason(&status);
    (code, reason)
}

fn best_available(protocol: Protocol, event: &str, key: &str) -> PurchaseRequest {
    PurchaseRequest {
        quantity: 1,
        ..purchase(protocol, event, &[], "tok_visa", key)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_refusal_of_a_purchase_says_what_its_reason_says_under_each_protocol() {
    let world = World::start(MeshOptions::default()).await;
    let mut coordinator = world.coordinator.clone();
    for protocol in PROTOCOLS {
        let p = short(protocol);
        let event = format!("words-{p}");
        world.event(&event, 1, 2, 1_000).await;
        let key = |name: &str| format!("{p}-{name}");
        let mut seen = BTreeSet::new();
        let mut expect = |what: &str, got: (Code, String), code: Code, reason: &str| {
            assert_eq!(got, (code, reason.to_owned()), "{p}: {what}");
            seen.insert(got.1);
        };

        let mut too_many = best_available(protocol, &event, &key("too-many"));
        too_many.quantity = 11;
        expect(
            "eleven seats",
            refusal(coordinator.purchase(too_many).await),
            Code::InvalidArgument,
            "INVALID_FIELD",
        );

        world
            .buy(protocol, &event, &["A-1-1"], "tok_visa", &key("first"))
            .await
            .expect("the first fan buys A-1-1");
        expect(
            "a rival names the sold seat",
            refusal(
                coordinator
                    .purchase(purchase(
                        protocol,
                        &event,
                        &["A-1-1"],
                        "tok_visa",
                        &key("rival"),
                    ))
                    .await,
            ),
            Code::FailedPrecondition,
            "SEAT_TAKEN",
        );
        expect(
            "the first key, another seat",
            refusal(
                coordinator
                    .purchase(purchase(
                        protocol,
                        &event,
                        &["A-1-2"],
                        "tok_visa",
                        &key("first"),
                    ))
                    .await,
            ),
            Code::FailedPrecondition,
            "IDEMPOTENCY_KEY_REUSED",
        );
        let declined = purchase(
            protocol,
            &event,
            &["A-1-2"],
            "tok_declined",
            &key("declined"),
        );
        expect(
            "a declined card",
            refusal(coordinator.purchase(declined.clone()).await),
            Code::FailedPrecondition,
            "CARD_DECLINED",
        );
        expect(
            "the declined purchase's key, retried",
            refusal(coordinator.purchase(declined).await),
            Code::FailedPrecondition,
            "CARD_DECLINED",
        );

        // A slow card (1.5 s) past a 300 ms deadline: the outcome is not known yet.
        let slow = purchase(protocol, &event, &["A-1-2"], "tok_slow", &key("slow"));
        expect(
            "a purchase past its deadline",
            refusal(
                coordinator
                    .purchase(PurchaseRequest {
                        deadline: Some(prost_types::Duration {
                            seconds: 0,
                            nanos: 300_000_000,
                        }),
                        ..slow.clone()
                    })
                    .await,
            ),
            Code::DeadlineExceeded,
            "OUTCOME_UNKNOWN",
        );
        // While it runs, its seat is the last unsold one: not sold out, taken for now.
        expect(
            "best available while the last seat is being bought",
            refusal(
                coordinator
                    .purchase(best_available(protocol, &event, &key("eager")))
                    .await,
            ),
            Code::Aborted,
            "SEAT_TAKEN",
        );
        // The same key waits for the slow purchase's own outcome: it bought A-1-2.
        let bought = coordinator
            .purchase(slow)
            .await
            .expect("the slow purchase committed")
            .into_inner();
        assert!(bought.replayed, "{p}: the retry replays the first purchase");

        // Every seat sold, nothing in flight: sold out, from the protocol and then from
        // the coordinator's memory of it.
        for late in ["late-1", "late-2"] {
            expect(
                "best available once every seat is sold",
                refusal(
                    coordinator
                        .purchase(best_available(protocol, &event, &key(late)))
                        .await,
                ),
                Code::FailedPrecondition,
                "SOLD_OUT",
            );
        }

        // An event with a waiting room.
        let gated = format!("gated-{p}");
        world.event(&gated, 1, 2, 1_000).await;
        world.open_room(&gated, 5, Duration::from_secs(30)).await;
        expect(
            "no admission token",
            refusal(
                coordinator
                    .purchase(best_available(protocol, &gated, &key("no-admission")))
                    .await,
            ),
            Code::PermissionDenied,
            "ADMISSION_REQUIRED",
        );
        expect(
            "a token that is not one",
            refusal(
                coordinator
                    .purchase(PurchaseRequest {
                        admission_token: "eyJ.not.a-token".into(),
                        ..best_available(protocol, &gated, &key("bad-admission"))
                    })
                    .await,
            ),
            Code::PermissionDenied,
            "ADMISSION_INVALID",
        );
        let admitted = key("admitted");
        let token = world.admitted(&gated, &user(&admitted)).await;
        coordinator
            .purchase(PurchaseRequest {
                admission_token: token.clone(),
                ..best_available(protocol, &gated, &admitted)
            })
            .await
            .expect("the admitted fan buys");
        expect(
            "the same admission, a second purchase",
            refusal(
                coordinator
                    .purchase(PurchaseRequest {
                        user_id: user(&admitted),
                        admission_token: token,
                        ..best_available(protocol, &gated, &key("admitted-again"))
                    })
                    .await,
            ),
            Code::PermissionDenied,
            "ADMISSION_USED",
        );

        assert_eq!(
            seen.into_iter().collect::<Vec<_>>(),
            [
                "ADMISSION_INVALID",
                "ADMISSION_REQUIRED",
                "ADMISSION_USED",
                "CARD_DECLINED",
                "IDEMPOTENCY_KEY_REUSED",
                "INVALID_FIELD",
                "OUTCOME_UNKNOWN",
                "SEAT_TAKEN",
                "SOLD_OUT",
            ],
            "{p}: the reasons walked"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saga_whose_hold_expires_before_the_charge_ends_is_refused_hold_lost_in_words() {
    // Holds last 1 s; every card-network call takes 1.5 s.
    let world = World::start(MeshOptions {
        coordinator_args: vec!["--hold-ttl-secs", "1"],
        ..MeshOptions::default()
    })
    .await;
    world.slow_card_network(Duration::from_millis(1_500)).await;
    world.event("expiring", 1, 1, 1_000).await;

    let status = world
        .buy(
            Protocol::Saga,
            "expiring",
            &["A-1-1"],
            "tok_visa",
            "late-confirm",
        )
        .await
        .expect_err("the hold expired before the confirmation");
    let (code, reason, metadata) = reason(&status);
    assert_eq!(
        (code, reason.as_str()),
        (Code::FailedPrecondition, "HOLD_LOST"),
        "{status:?}"
    );
    assert!(status.message().contains("A-1-1"), "{status:?}");
    assert!(metadata.contains_key("txid"), "{metadata:?}");

    // The saga compensated: the seat is for sale again and no money moved.
    world.settle().await;
    let seats = world.seats("expiring").await;
    assert_eq!(seats["A-1-1"], ("AVAILABLE".to_owned(), None), "{seats:?}");
    world.assert_invariants("expiring", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purchase_aborted_because_payments_did_not_answer_says_so_under_each_protocol() {
    let world = World::start(impatient_coordinator()).await;
    world.mesh.payments.pause().expect("SIGSTOP payments");
    for protocol in PROTOCOLS {
        let p = short(protocol);
        let event = format!("silent-{p}");
        world.event(&event, 1, 1, 1_000).await;
        let status = world
            .buy(
                protocol,
                &event,
                &["A-1-1"],
                "tok_visa",
                &format!("{p}-silent"),
            )
            .await
            .expect_err("payments does not answer");
        let (code, reason, metadata) = reason(&status);
        assert_eq!(
            (code, reason.as_str()),
            (Code::Unavailable, "PARTICIPANT_UNAVAILABLE"),
            "{p}: {status:?}"
        );
        assert_eq!(metadata["participant"], "payments", "{p}: {metadata:?}");
        assert!(metadata.contains_key("txid"), "{p}: {metadata:?}");
    }
    world.mesh.payments.resume().expect("SIGCONT payments");
    world.settle().await;
    for protocol in PROTOCOLS {
        let event = format!("silent-{}", short(protocol));
        assert_eq!(
            world.seats(&event).await["A-1-1"],
            ("AVAILABLE".to_owned(), None),
            "{event}: nothing was sold"
        );
        world.assert_invariants(&event, 1).await;
    }
}
