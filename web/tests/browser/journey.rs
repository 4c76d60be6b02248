use std::time::Duration;

use local_mesh::{MeshOptions, PrivateMaildev, eventually};
use proto::v1::VerifyTicketRequest;
use serde_json::json;

use crate::site::{Site, while_browsing};

/// One fan's whole journey: search, the event, the queue behind another fan, the
/// admission, two seats picked on the map, the payment, the tickets — which verify,
/// whose confirmation mail names the event as the fan knows it, and whose purchase
/// leaves every invariant holding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_searches_waits_picks_two_seats_pays_and_gets_tickets_that_verify() {
    let maildev = PrivateMaildev::start().expect("maildev starts");
    let smtp: &'static str = Box::leak(maildev.smtp_url().into_boxed_str());
    let site = Site::start(MeshOptions {
        notifier_args: vec!["--smtp-url", smtp],
        ..MeshOptions::default()
    })
    .await;
    site.event("lanterns", "Midnight Lanterns", "Harbour Hall", 2, 6)
        .await;
    site.event("strings", "Quiet Strings", "Old Chapel", 1, 4)
        .await;
    site.open_room("lanterns", 1, Duration::from_secs(120), None, 0)
        .await;
    // Someone is ahead, holding the room's only turn.
    site.place("lanterns", "ahead").await;
    eventually(
        "the first fan admitted",
        Duration::from_secs(30),
        || async { site.get_room("lanterns").await.active == 1 },
    )
    .await;

    let mut browser = site.scenario(
        "journey",
        json!({
            "user": "lena",
            "query": "lanterns",
            "event_name": "Midnight Lanterns",
            "seats": ["A-1-3", "A-1-4"],
            "email": "lena@example.com",
        }),
    );
    while_browsing(
        &mut browser,
        "lena waiting behind, her page's place read",
        Duration::from_secs(120),
        // Her page leaves the queue view at her turn: the slot ahead is freed only once
        // the scenario read what the view showed (a loaded machine admitted her first).
        || async {
            site.get_room("lanterns").await.waiting == 1
                && std::fs::read_to_string(crate::site::scenario_log("journey"))
                    .is_ok_and(|log| log.contains("in line: place and progress read"))
        },
    )
    .await;
    site.leave("lanterns", "ahead").await;
    let seen = browser.await.expect("the scenario ends");

    assert_eq!(seen["listed"], 2, "{seen:#}");
    assert_eq!(seen["found"], json!(["Midnight Lanterns"]), "{seen:#}");
    assert_eq!(seen["map_seats"], 12);
    assert_eq!(seen["venue"], "Harbour Hall");
    assert_eq!(seen["waiting_at"], 1, "lena waited first in line");
    assert_eq!(seen["outcome"], "tickets", "{seen:#}");
    let tickets = seen["tickets"].as_array().expect("tickets");
    let labels: Vec<&str> = tickets
        .iter()
        .map(|t| t["label"].as_str().expect("a label"))
        .collect();
    assert_eq!(
        labels,
        ["Section A, row 1, seat 3", "Section A, row 1, seat 4"]
    );
    assert!(
        tickets
            .iter()
            .all(|t| t["valid"] == true && t["qr"] == true),
        "{seen:#}"
    );
    assert!(
        seen["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .any(|s| s == "Purchase confirmed"),
        "{seen:#}"
    );
    assert_eq!(
        seen["delivery"],
        json!(["Email with your tickets: sent"]),
        "{seen:#}"
    );

    // The tickets verify with orders-dynamo, for lena's seats.
    let mut seats = Vec::new();
    for ticket in tickets {
        let verified = site
            .orders
            .clone()
            .verify_ticket(VerifyTicketRequest {
                token: ticket["token"].as_str().expect("a token").to_owned(),
            })
            .await
            .expect("verified")
            .into_inner();
        assert!(verified.valid, "{verified:?}");
        let ticket = verified.ticket.expect("the ticket");
        assert_eq!(
            (ticket.event_id.as_str(), ticket.user_id.as_str()),
            ("lanterns", "lena")
        );
        seats.push(ticket.seat_id);
    }
    assert_eq!(seats, ["A-1-3", "A-1-4"]);

    let audit = site.audit("lanterns").await;
    assert_eq!(
        (audit["sold"].as_i64(), audit["confirmed_orders"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(audit["captured_cents"], 9_000);

    // The mail names the event, its date and venue and the seats as lena knows them.
    let mails = maildev
        .emails_to("lena@example.com")
        .await
        .expect("maildev answers");
    assert_eq!(mails.len(), 1);
    let subject = mails[0]["subject"].as_str().expect("a subject");
    assert_eq!(
        subject,
        "Your tickets for Midnight Lanterns, Sun 17 Mar 2030, 17:46 UTC"
    );
    let text = mails[0]["text"].as_str().expect("a text part");
    for expected in [
        "Harbour Hall",
        "Section A, row 1, seat 3",
        "Section A, row 1, seat 4",
    ] {
        assert!(text.contains(expected), "{expected} in {text}");
    }
}
