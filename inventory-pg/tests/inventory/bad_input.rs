use proto::v1::*;
use tonic::Code;

use crate::common::*;

/// Runs `call`, expects `code` naming `field` (for INVALID_ARGUMENT), and no change.
macro_rules! refused {
    ($inventory:expr, $call:expr, $code:expr, $field:expr) => {{
        let before = $inventory.snapshot().await;
        let status = $call.await.expect_err("bad input is refused");
        let (code, reason, metadata) = details(&status);
        assert_eq!(code, $code, "{status:?}");
        if $code == Code::InvalidArgument {
            assert_eq!(reason, "INVALID_FIELD");
            assert_eq!(
                metadata.get("field").map(String::as_str),
                Some($field),
                "{status:?}"
            );
            assert!(status.message().contains($field), "{status:?}");
        }
        assert_eq!(
            $inventory.snapshot().await,
            before,
            "{status:?} changed the tables"
        );
    }};
}

#[tokio::test]
async fn each_kind_of_bad_input_gets_its_code_and_changes_nothing() {
    let inventory = Inventory::start().await;
    inventory.event("bad", 1, 5, 1_000).await;
    let mut c = inventory.client.clone();
    let long = "x".repeat(65);

    refused!(
        inventory,
        c.hold_seats(hold("s", "no-such-event", &["A-1-1"], 60)),
        Code::NotFound,
        ""
    );
    refused!(
        inventory,
        c.hold_seats(hold("s", "bad", &["A-1-9"], 60)),
        Code::NotFound,
        ""
    );
    refused!(
        inventory,
        c.hold_seats(hold("s", "bad", &[""], 60)),
        Code::InvalidArgument,
        "seat_ids[0]"
    );
    refused!(
        inventory,
        c.hold_seats(hold("s", "bad", &["A-1-1", "A-1-1"], 60)),
        Code::InvalidArgument,
        "seat_ids"
    );
    refused!(
        inventory,
        c.hold_seats(hold("s", "bad", &[], 60)),
        Code::InvalidArgument,
        "seat_ids"
    );
    refused!(
        inventory,
        c.hold_seats(HoldSeatsRequest {
            quantity: 11,
            ..hold("s", "bad", &[], 60)
        }),
        Code::InvalidArgument,
        "quantity"
    );
    refused!(
        inventory,
        c.hold_seats(hold(&long, "bad", &["A-1-1"], 60)),
        Code::InvalidArgument,
        "saga_id"
    );
    refused!(
        inventory,
        c.hold_seats(hold("s", &long, &["A-1-1"], 60)),
        Code::InvalidArgument,
        "event_id"
    );
    let long_seat = format!("A-1-{}", "1".repeat(64));
    refused!(
        inventory,
        c.hold_seats(hold("s", "bad", &[&long_seat], 60)),
        Code::InvalidArgument,
        "seat_ids[0]"
    );
    refused!(
        inventory,
        c.hold_seats(hold("s", "bad", &["A-1-1"], 0)),
        Code::InvalidArgument,
        "hold_ttl"
    );
    let eleven: Vec<String> = (1..=11).map(|n| format!("A-1-{n}")).collect();
    refused!(
        inventory,
        c.hold_seats(HoldSeatsRequest {
            seat_ids: eleven,
            ..hold("s", "bad", &[], 60)
        }),
        Code::InvalidArgument,
        "seat_ids"
    );

    refused!(
        inventory,
        c.prepare_sale(prepare("", "bad", "o", &["A-1-1"])),
        Code::InvalidArgument,
        "txid"
    );
    refused!(
        inventory,
        c.prepare_sale(prepare("t", "bad", "", &["A-1-1"])),
        Code::InvalidArgument,
        "order_id"
    );
    refused!(
        inventory,
        c.prepare_sale(prepare("t", "nope", "o", &["A-1-1"])),
        Code::NotFound,
        ""
    );
    refused!(
        inventory,
        c.sell_fenced(SellFencedRequest {
            txid: "t".into(),
            event_id: "bad".into(),
            order_id: "o".into(),
            seat_ids: ids(&["A-1-1"]),
            fencing_token: u64::MAX,
        }),
        Code::InvalidArgument,
        "fencing_token"
    );
    refused!(
        inventory,
        c.get_event(GetEventRequest {
            event_id: "nope".into(),
            include_seats: false,
            consistent_read: false,
        }),
        Code::NotFound,
        ""
    );
    refused!(
        inventory,
        c.list_events(ListEventsRequest {
            page_size: 0,
            page_token: "garbage".into()
        }),
        Code::InvalidArgument,
        "page_token"
    );

    let mut bad_price = CreateEventRequest {
        event_id: "priced".into(),
        name: "Priced".into(),
        starts_at: Some(prost_types::Timestamp {
            seconds: 1_900_000_000,
            nanos: 0,
        }),
        description: String::new(),
        currency: "EUR".into(),
        venue: Some(VenueLayout {
            venue_name: "Hall".into(),
            price_tiers: vec![PriceTier {
                name: "t".into(),
                price_cents: 0,
            }],
            sections: vec![SectionLayout {
                name: "A".into(),
                rows: 1,
                seats_per_row: 1,
                price_tier: "t".into(),
            }],
        }),
    };
    refused!(
        inventory,
        c.create_event(bad_price.clone()),
        Code::InvalidArgument,
        "venue.price_tiers[0].price_cents"
    );
    bad_price.venue.as_mut().expect("venue").price_tiers[0].price_cents = 100;
    bad_price.currency = "euro".into();
    refused!(
        inventory,
        c.create_event(bad_price.clone()),
        Code::InvalidArgument,
        "currency"
    );
    bad_price.currency = "EUR".into();
    bad_price.event_id = "bad".into();
    refused!(
        inventory,
        c.create_event(bad_price),
        Code::AlreadyExists,
        ""
    );
}
