//! Confirmations end to end: purchases through a real coordinator, the outbox relay, a
//! real notifier on its own database, and what its channels reach — a real SMTP server
//! (maildev, read back through its HTTP API), the stack's SMS provider and a webhook
//! receiver. A confirmation never fails a purchase, is delivered at least once, keeps
//! its webhook id across retries and restarts, and is signed so that an independent
//! Standard Webhooks implementation verifies it.

#[path = "../common/mod.rs"]
mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::*;
use futures::StreamExt;
use local_mesh::{MeshOptions, PrivateMaildev, PrivateSms, WebhookReceiver, eventually, stack_dir};
use proto::v1::notifier_service_client::NotifierServiceClient;
use proto::v1::*;
use server_kit::outgoing::MeshChannel;
use tonic::Code;

async fn notifier(world: &World) -> NotifierServiceClient<MeshChannel> {
    NotifierServiceClient::new(local_mesh::auth::channel(&world.mesh.notifier.endpoint()).await)
}

fn with_contact(request: PurchaseRequest, email: &str, phone: &str) -> PurchaseRequest {
    PurchaseRequest {
        contact: Some(Contact {
            email: email.into(),
            phone: phone.into(),
        }),
        ..request
    }
}

async fn deliveries(
    notifier: &mut NotifierServiceClient<MeshChannel>,
    txid: &str,
) -> Vec<Delivery> {
    match notifier
        .get_confirmation(GetConfirmationRequest { txid: txid.into() })
        .await
    {
        Ok(found) => {
            found
                .into_inner()
                .confirmation
                .expect("a confirmation")
                .deliveries
        }
        Err(status) if status.code() == Code::NotFound => Vec::new(),
        Err(status) => panic!("GetConfirmation: {status:?}"),
    }
}

/// The text a QR code in a PNG holds.
fn decode_qr(png_bytes: &[u8]) -> String {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size().expect("a size")];
    let info = reader.next_frame(&mut pixels).expect("a frame");
    assert_eq!(info.color_type, png::ColorType::Grayscale, "grayscale PNG");
    let (width, height) = (info.width as usize, info.height as usize);
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| {
        pixels[y * info.line_size + x]
    });
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the image");
    grids[0].decode().expect("the QR code decodes").1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_purchases_succeed_while_smtp_is_down_and_every_mail_arrives_once_it_is_back() {
    let mut maildev = PrivateMaildev::start().expect("maildev starts");
    let smtp = maildev.smtp_url();
    maildev.stop().expect("SMTP stopped");
    let world = World::start(MeshOptions {
        notifier_args: vec!["--smtp-url", &smtp, "--max-attempts", "60"],
        ..Default::default()
    })
    .await;
    world.event("mail", 1, 20, 4_500).await;

    let mut bought = Vec::new();
    for i in 1..=20 {
        let seat = format!("A-1-{i}");
        let request = with_contact(
            purchase(
                PROTOCOLS[i % 3],
                "mail",
                &[&seat],
                "tok_visa",
                &format!("mail-{i}"),
            ),
            &format!("fan-{i}@example.com"),
            "",
        );
        let response = world
            .coordinator
            .clone()
            .purchase(request)
            .await
            .unwrap_or_else(|s| panic!("purchase {i} succeeds while SMTP is down: {s:?}"))
            .into_inner();
        assert_eq!(response.tickets.len(), 1);
        bought.push((format!("fan-{i}@example.com"), response));
    }

    // Every confirmation was relayed and has failed against the stopped server.
    let mut notifier = notifier(&world).await;
    for (_, response) in &bought {
        eventually("a failed first attempt", Duration::from_secs(30), || {
            let mut notifier = notifier.clone();
            let txid = response.txid.clone();
            async move {
                let found = deliveries(&mut notifier, &txid).await;
                found.len() == 1
                    && found[0].state() == DeliveryState::Pending
                    && found[0].last_error.starts_with("smtp:")
            }
        })
        .await;
    }

    maildev.restart().expect("SMTP is back");
    for (_, response) in &bought {
        eventually("the email delivered", Duration::from_secs(60), || {
            let mut notifier = notifier.clone();
            let txid = response.txid.clone();
            async move {
                deliveries(&mut notifier, &txid).await[0].state() == DeliveryState::Delivered
            }
        })
        .await;
    }

    for (address, response) in &bought {
        let mails = maildev.emails_to(address).await.expect("maildev answers");
        assert_eq!(mails.len(), 1, "{address} got one mail");
        let mail = &mails[0];
        let ticket = &response.tickets[0];
        let delivery = &deliveries(&mut notifier, &response.txid).await[0];
        assert_eq!(
            mail["headers"]["message-id"],
            format!("<{}@ticketdrop.localhost>", delivery.delivery_id),
            "the Message-ID is the delivery id"
        );
        let subject = mail["subject"].as_str().expect("a subject");
        assert_eq!(
            subject,
            "Your tickets for Show mail, Sun 17 Mar 2030, 17:46 UTC"
        );
        let text = mail["text"].as_str().expect("a text part");
        assert!(text.contains(&proto::seat_label(&ticket.seat_id)), "{text}");
        assert!(text.contains("at Mesh Hall"), "{text}");
        assert!(text.contains(&ticket.token), "the mail carries the token");
        let images: Vec<&serde_json::Value> = mail["attachments"]
            .as_array()
            .expect("attachments")
            .iter()
            .filter(|a| a["contentType"] == "image/png")
            .collect();
        assert_eq!(images.len(), 1, "one QR image per ticket");
        assert_eq!(images[0]["contentDisposition"], "inline");
        let png = maildev
            .attachment(
                mail["id"].as_str().expect("an id"),
                images[0]["generatedFileName"].as_str().expect("a file"),
            )
            .await
            .expect("the image downloads");
        assert_eq!(decode_qr(&png), ticket.token, "the QR code is the ticket");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_webhook_is_signed_per_standard_webhooks_and_the_sms_reaches_the_provider() {
    let sms = PrivateSms::start().expect("the SMS provider starts");
    let sms_url = sms.url();
    let world = World::start(MeshOptions {
        notifier_args: vec!["--sms-url", &sms_url],
        ..Default::default()
    })
    .await;
    world.event("hook", 1, 2, 7_000).await;
    let receiver = WebhookReceiver::start().await.expect("receiver");
    let mut notifier = notifier(&world).await;
    let buyer = user("hook-1");
    let endpoint = notifier
        .register_webhook(RegisterWebhookRequest {
            user_id: buyer.clone(),
            url: receiver.url().into(),
        })
        .await
        .expect("registered")
        .into_inner();
    assert!(endpoint.secret.starts_with("whsec_"));
    let again = notifier
        .register_webhook(RegisterWebhookRequest {
            user_id: buyer.clone(),
            url: receiver.url().into(),
        })
        .await
        .expect("registered again")
        .into_inner();
    assert_eq!(again, endpoint, "registering again changes nothing");
    let refused = notifier
        .register_webhook(RegisterWebhookRequest {
            user_id: buyer.clone(),
            url: "ftp://example.com".into(),
        })
        .await
        .expect_err("not http");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("url"), "{}", refused.message());

    let bad = world
        .coordinator
        .clone()
        .purchase(with_contact(
            purchase(Protocol::Saga, "hook", &["A-1-1"], "tok_visa", "hook-bad"),
            "not-an-address",
            "",
        ))
        .await
        .expect_err("a bad email is refused");
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("contact.email"), "{}", bad.message());
    let logged: i64 = world
        .mesh
        .coordinator_db
        .connect()
        .await
        .expect("connects")
        .query_one(
            "SELECT count(*) FROM transactions WHERE idempotency_key = 'hook-bad'",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(logged, 0, "a refused contact writes nothing");
    let seats = world.seats("hook").await;
    assert_eq!(seats["A-1-1"].0, "AVAILABLE", "{seats:?}");

    let phone = "+4915112345678";
    let response = world
        .coordinator
        .clone()
        .purchase(with_contact(
            purchase(
                Protocol::Saga,
                "hook",
                &["A-1-1", "A-1-2"],
                "tok_visa",
                "hook-1",
            ),
            "",
            phone,
        ))
        .await
        .expect("bought")
        .into_inner();
    eventually("both deliveries", Duration::from_secs(30), || {
        let mut notifier = notifier.clone();
        let txid = response.txid.clone();
        async move {
            let found = deliveries(&mut notifier, &txid).await;
            found.len() == 2 && found.iter().all(|d| d.state() == DeliveryState::Delivered)
        }
    })
    .await;

    let messages = sms.messages_to(phone).await.expect("the provider answers");
    assert_eq!(messages.len(), 1, "one SMS");
    let body = messages[0]["body"].as_str().expect("a body");
    assert!(
        body.starts_with(
            "TicketDrop: 2 tickets for Show hook, Sun 17 Mar 2030, 17:46 UTC, at Mesh Hall. \
             Section A, row 1, seat 1; Section A, row 1, seat 2."
        ) && body.contains(&response.order_id),
        "{body}"
    );

    let received = receiver.received();
    assert_eq!(received.len(), 1, "one webhook");
    let hook = &received[0];
    let payload: serde_json::Value = serde_json::from_str(&hook.body).expect("JSON");
    assert_eq!(payload["type"], "purchase.confirmed");
    assert_eq!(payload["data"]["txid"], response.txid.as_str());
    let tokens: Vec<&str> = response.tickets.iter().map(|t| t.token.as_str()).collect();
    let sent: Vec<&str> = payload["data"]["tickets"]
        .as_array()
        .expect("tickets")
        .iter()
        .map(|t| t["token"].as_str().expect("a token"))
        .collect();
    assert_eq!(sent, tokens);

    // The independent implementation: PyPI's standardwebhooks.
    let dir = tempfile::tempdir().expect("temp dir");
    let headers = serde_json::json!({
        "webhook-id": hook.headers["webhook-id"],
        "webhook-timestamp": hook.headers["webhook-timestamp"],
        "webhook-signature": hook.headers["webhook-signature"],
    });
    std::fs::write(dir.path().join("headers.json"), headers.to_string()).expect("write");
    std::fs::write(dir.path().join("body"), &hook.body).expect("write");
    let tampered = hook
        .body
        .replacen("purchase.confirmed", "purchase.confirmeD", 1);
    std::fs::write(dir.path().join("tampered"), tampered).expect("write");
    let script = r#"
import json, sys
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
folder, secret = sys.argv[1], sys.argv[2]
headers = json.load(open(folder + "/headers.json"))
hook = Webhook(secret)
hook.verify(open(folder + "/body", "rb").read(), headers)
print("genuine: verified")
try:
    hook.verify(open(folder + "/tampered", "rb").read(), headers)
    print("tampered: verified")
except WebhookVerificationError as error:
    print("tampered: refused")
"#;
    let output = std::process::Command::new(stack_dir().join("venv/bin/python"))
        .args(["-c", script])
        .arg(dir.path())
        .arg(&endpoint.secret)
        .output()
        .expect("python runs (make stack-up installs standardwebhooks)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout, "genuine: verified\ntampered: refused\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_notifier_killed_mid_delivery_delivers_everything_after_restart_under_the_same_webhook_ids()
 {
    let mut world = World::start(MeshOptions::default()).await;
    world.event("kill", 1, 10, 1_000).await;
    let receiver = WebhookReceiver::start().await.expect("receiver");
    // Answers come late: the notifier is killed while every request waits for one.
    receiver.answer_after(Duration::from_secs(30));
    let mut notifier = notifier(&world).await;
    let mut txids = Vec::new();
    for i in 1..=10 {
        let key = format!("kill-{i}");
        notifier
            .register_webhook(RegisterWebhookRequest {
                user_id: user(&key),
                url: receiver.url().into(),
            })
            .await
            .expect("registered");
        let seat = format!("A-1-{i}");
        let response = world
            .buy(Protocol::TwoPhaseCommit, "kill", &[&seat], "tok_visa", &key)
            .await
            .expect("bought");
        txids.push(response.txid);
    }
    eventually(
        "every webhook on the wire",
        Duration::from_secs(30),
        || async { receiver.received().len() >= 10 },
    )
    .await;

    let status = world.mesh.notifier.kill().await.expect("SIGKILL");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    receiver.answer_after(Duration::ZERO);
    world
        .mesh
        .notifier
        .restart()
        .await
        .expect("the notifier restarts");
    let notifier = self::notifier(&world).await;
    for txid in &txids {
        eventually("the webhook delivered", Duration::from_secs(60), || {
            let mut notifier = notifier.clone();
            let txid = txid.clone();
            async move {
                let found = deliveries(&mut notifier, &txid).await;
                found.len() == 1 && found[0].state() == DeliveryState::Delivered
            }
        })
        .await;
    }

    let received = receiver.received();
    assert!(
        received.len() > 10,
        "the killed attempts were sent again ({} requests)",
        received.len()
    );
    let mut ids_of: HashMap<String, HashSet<String>> = HashMap::new();
    let mut body_of: HashMap<String, String> = HashMap::new();
    for hook in &received {
        let payload: serde_json::Value = serde_json::from_str(&hook.body).expect("JSON");
        let txid = payload["data"]["txid"].as_str().expect("txid").to_owned();
        let id = hook.headers["webhook-id"].clone();
        ids_of.entry(txid).or_default().insert(id.clone());
        let body = body_of.entry(id).or_insert_with(|| hook.body.clone());
        assert_eq!(body, &hook.body, "a repeat carries the same body");
    }
    assert_eq!(
        ids_of.keys().cloned().collect::<HashSet<_>>(),
        txids.iter().cloned().collect::<HashSet<_>>()
    );
    for (txid, ids) in &ids_of {
        assert_eq!(
            ids.len(),
            1,
            "{txid} kept one webhook id across the restart"
        );
    }
    assert_eq!(body_of.len(), 10, "ten distinct webhook ids");
}

/// Reads events until `stop` says so or the stream ends.
async fn read_events(
    stream: &mut tonic::Streaming<WatchPurchaseResponse>,
    stop: impl Fn(&PurchaseEvent) -> bool,
) -> Vec<PurchaseEvent> {
    let mut events = Vec::new();
    while let Some(event) = tokio::time::timeout(Duration::from_secs(30), stream.next())
        .await
        .expect("an event within 30 s")
    {
        let event = event.expect("a good event").event.expect("an event");
        let done = stop(&event);
        events.push(event);
        if done {
            break;
        }
    }
    events
}

fn kinds(events: &[PurchaseEvent]) -> Vec<(u64, PurchaseEventKind)> {
    events.iter().map(|e| (e.sequence, e.kind())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_purchase_streams_from_begin_to_the_confirmations_and_resumes_without_gap_or_repeat()
{
    let world = World::start(MeshOptions::default()).await;
    world.event("watch", 1, 2, 3_000).await;
    let receiver = WebhookReceiver::start().await.expect("receiver");
    receiver.fail_next(2);
    let mut notifier = notifier(&world).await;
    notifier
        .register_webhook(RegisterWebhookRequest {
            user_id: user("watch-1"),
            url: receiver.url().into(),
        })
        .await
        .expect("registered");
    let response = world
        .buy(
            Protocol::TwoPhaseCommit,
            "watch",
            &["A-1-1"],
            "tok_visa",
            "watch-1",
        )
        .await
        .expect("bought");

    // Watch by key; leave after the first confirmation attempt (a failed one).
    let mut coordinator = world.coordinator.clone();
    let mut first = coordinator
        .watch_purchase(WatchPurchaseRequest {
            idempotency_key: "watch-1".into(),
            ..Default::default()
        })
        .await
        .expect("watching")
        .into_inner();
    let before = read_events(&mut first, |e| {
        e.kind() == PurchaseEventKind::ConfirmationAttempt
    })
    .await;
    drop(first);
    let last_seen = before.last().expect("events").sequence;

    // Reconnect by txid after the last event seen.
    let mut second = coordinator
        .watch_purchase(WatchPurchaseRequest {
            txid: response.txid.clone(),
            after_sequence: last_seen,
            ..Default::default()
        })
        .await
        .expect("watching again")
        .into_inner();
    let after = read_events(&mut second, |_| false).await;

    // A watcher that never left sees the same events.
    let mut whole = coordinator
        .watch_purchase(WatchPurchaseRequest {
            txid: response.txid.clone(),
            ..Default::default()
        })
        .await
        .expect("watching whole")
        .into_inner();
    let whole = read_events(&mut whole, |_| false).await;

    let resumed: Vec<PurchaseEvent> = before.iter().chain(after.iter()).cloned().collect();
    assert_eq!(kinds(&resumed), kinds(&whole), "no gap, no repeat");
    assert_eq!(resumed, whole, "the same events");
    let sequences: Vec<u64> = whole.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, (1..=whole.len() as u64).collect::<Vec<_>>());

    let kinds: Vec<PurchaseEventKind> = whole.iter().map(PurchaseEvent::kind).collect();
    assert_eq!(kinds[0], PurchaseEventKind::Begun);
    assert_eq!(whole[0].protocol(), Protocol::TwoPhaseCommit);
    let committed = kinds
        .iter()
        .position(|k| *k == PurchaseEventKind::Committed)
        .expect("COMMITTED");
    let steps: Vec<(String, StepOutcome)> = whole[1..committed]
        .iter()
        .map(|e| {
            let step = e.step.as_ref().expect("a step");
            (step.operation.clone(), step.outcome())
        })
        .collect();
    assert_eq!(
        steps.iter().filter(|(op, _)| op == "prepare").count(),
        3,
        "{steps:?}"
    );
    assert_eq!(
        steps.iter().filter(|(op, _)| op == "commit").count(),
        3,
        "{steps:?}"
    );
    let attempts: Vec<(bool, DeliveryState)> = whole[committed + 1..whole.len() - 1]
        .iter()
        .map(|e| {
            let attempt = e.delivery.as_ref().expect("an attempt");
            (attempt.delivered, attempt.state_after())
        })
        .collect();
    assert_eq!(
        attempts,
        [
            (false, DeliveryState::Pending),
            (false, DeliveryState::Pending),
            (true, DeliveryState::Delivered)
        ]
    );
    let settled = whole.last().expect("a last event");
    assert_eq!(settled.kind(), PurchaseEventKind::ConfirmationsSettled);
    assert_eq!((settled.delivered, settled.dead_lettered), (1, 0));

    for (request, code) in [
        (
            WatchPurchaseRequest {
                txid: "tx-nobody".into(),
                ..Default::default()
            },
            Code::NotFound,
        ),
        (WatchPurchaseRequest::default(), Code::InvalidArgument),
        (
            WatchPurchaseRequest {
                txid: response.txid.clone(),
                idempotency_key: "watch-1".into(),
                ..Default::default()
            },
            Code::InvalidArgument,
        ),
    ] {
        let status = coordinator
            .watch_purchase(request)
            .await
            .expect_err("refused");
        assert_eq!(status.code(), code, "{status:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_email_failing_past_its_ceiling_is_dead_lettered_visible_and_re_drivable() {
    let mut maildev = PrivateMaildev::start().expect("maildev starts");
    let smtp = maildev.smtp_url();
    maildev.stop().expect("SMTP stopped");
    let world = World::start(MeshOptions {
        notifier_args: vec!["--smtp-url", &smtp, "--max-attempts", "2"],
        ..Default::default()
    })
    .await;
    world.event("dead", 1, 1, 2_000).await;
    let response = world
        .coordinator
        .clone()
        .purchase(with_contact(
            purchase(Protocol::Lease, "dead", &["A-1-1"], "tok_visa", "dead-1"),
            "dead@example.com",
            "",
        ))
        .await
        .expect("the purchase succeeds whatever the email does")
        .into_inner();
    let mut notifier = notifier(&world).await;
    eventually("the dead letter", Duration::from_secs(30), || {
        let mut notifier = notifier.clone();
        let txid = response.txid.clone();
        async move {
            deliveries(&mut notifier, &txid)
                .await
                .first()
                .is_some_and(|d| d.state() == DeliveryState::DeadLettered)
        }
    })
    .await;
    let dead = notifier
        .list_deliveries(ListDeliveriesRequest {
            state: DeliveryState::DeadLettered.into(),
            ..Default::default()
        })
        .await
        .expect("listed")
        .into_inner()
        .deliveries;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, 2, "the ceiling");
    assert!(
        dead[0].last_error.starts_with("smtp:"),
        "{}",
        dead[0].last_error
    );
    let txn = world
        .coordinator
        .clone()
        .get_transaction(GetTransactionRequest {
            txid: response.txid.clone(),
        })
        .await
        .expect("the transaction")
        .into_inner()
        .transaction
        .expect("a transaction");
    assert_eq!(
        txn.state(),
        TransactionState::Committed,
        "the parent stands"
    );
    assert!(txn.outbox.expect("an outbox row").relayed_at.is_some());

    maildev.restart().expect("SMTP is back");
    let again = notifier
        .retry_delivery(RetryDeliveryRequest {
            delivery_id: dead[0].delivery_id.clone(),
        })
        .await
        .expect("re-driven")
        .into_inner()
        .delivery
        .expect("the delivery");
    assert_eq!(again.state(), DeliveryState::Pending);
    eventually("the re-driven mail", Duration::from_secs(30), || async {
        maildev
            .emails_to("dead@example.com")
            .await
            .is_ok_and(|mails| mails.len() == 1)
    })
    .await;
    eventually("delivered", Duration::from_secs(10), || {
        let mut notifier = notifier.clone();
        let txid = response.txid.clone();
        async move { deliveries(&mut notifier, &txid).await[0].state() == DeliveryState::Delivered }
    })
    .await;
    let refused = notifier
        .retry_delivery(RetryDeliveryRequest {
            delivery_id: dead[0].delivery_id.clone(),
        })
        .await
        .expect_err("a delivered one is not sent again");
    assert_eq!(refused.code(), Code::FailedPrecondition);
}

/// Each Enqueue holds one pooled connection at a time, so more hand-overs at once than the
/// notifier has connections all finish. (One that took a second connection while holding
/// its first deadlocked the pool as soon as every holder waited for another: the relay's
/// hand-overs then timed out in batches, and a drop's mails trickled out.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn more_confirmations_at_once_than_the_notifier_has_connections_are_all_enqueued() {
    let world = World::start(MeshOptions {
        notifier_args: vec!["--pool-size", "2"],
        ..Default::default()
    })
    .await;
    let notifier = notifier(&world).await;
    let calls = (0..32).map(|i| {
        let mut notifier = notifier.clone();
        async move {
            let request = EnqueueRequest {
                txid: format!("tx-pool-{i}"),
                user_id: format!("fan-{i}"),
                event_id: "pool".into(),
                order_id: format!("ord-pool-{i}"),
                contact: Some(Contact {
                    email: format!("fan-{i}@example.com"),
                    phone: String::new(),
                }),
                ..Default::default()
            };
            tokio::time::timeout(Duration::from_secs(20), notifier.enqueue(request)).await
        }
    });
    for (i, answer) in futures::future::join_all(calls)
        .await
        .into_iter()
        .enumerate()
    {
        let response = answer
            .unwrap_or_else(|_| panic!("Enqueue {i} answered within 20 s"))
            .unwrap_or_else(|status| panic!("Enqueue {i}: {status:?}"))
            .into_inner();
        assert!(response.created, "Enqueue {i} recorded a new confirmation");
        assert_eq!(response.deliveries.len(), 1, "one email delivery for {i}");
    }
}
