use proto::v1::*;
use tonic::Code;

use crate::common::*;

macro_rules! refused {
    ($orders:expr, $call:expr, $code:expr, $field:expr) => {{
        let before = $orders.snapshot().await;
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
        }
        assert_eq!(
            $orders.snapshot().await,
            before,
            "{status:?} wrote something"
        );
    }};
}

#[tokio::test]
async fn bad_input_gets_a_clear_code_naming_the_field_and_writes_nothing() {
    let orders = Orders::start().await;
    let mut c = orders.client.clone();

    refused!(
        orders,
        c.create_order(create("s", "", &["A-1-1"])),
        Code::InvalidArgument,
        "order_id"
    );
    refused!(
        orders,
        c.create_order(create("s", "o", &[])),
        Code::InvalidArgument,
        "seats"
    );
    let mut negative = create("s", "o", &["A-1-1"]);
    negative.seats[0].price_cents = -1;
    refused!(
        orders,
        c.create_order(negative),
        Code::InvalidArgument,
        "seats[0].price_cents"
    );
    refused!(
        orders,
        c.create_order(create("", "o", &["A-1-1"])),
        Code::InvalidArgument,
        "saga_id"
    );
    refused!(
        orders,
        c.prepare_order(prepare("t", "o", &["A-1-1", "A-1-1"])),
        Code::InvalidArgument,
        "seats"
    );
    refused!(
        orders,
        c.commit_order(CommitOrderRequest {
            log_id: String::new(),
            txid: "tx-unknown".into(),
            payment_id: String::new()
        }),
        Code::NotFound,
        ""
    );
    refused!(
        orders,
        c.commit_order(CommitOrderRequest {
            log_id: String::new(),
            txid: String::new(),
            payment_id: String::new()
        }),
        Code::InvalidArgument,
        "txid"
    );
    refused!(
        orders,
        c.get_order(GetOrderRequest {
            order_id: String::new(),
            idempotency_key: String::new()
        }),
        Code::InvalidArgument,
        "order_id"
    );
    refused!(
        orders,
        c.place_order_fenced(PlaceOrderFencedRequest {
            txid: "t".into(),
            order_id: "o".into(),
            user_id: "u".into(),
            event_id: "e".into(),
            seats: seats(&["A-1-1"]),
            currency: "EUR".into(),
            payment_id: String::new(),
            fencing_token: u64::MAX,
            idempotency_key: String::new(),
        }),
        Code::InvalidArgument,
        "fencing_token"
    );
}

#[tokio::test]
async fn fenced_orders_refuse_a_stale_token() {
    let orders = Orders::start().await;
    let mut c = orders.client.clone();
    let place = |order_id: &str, token: u64| PlaceOrderFencedRequest {
        txid: format!("tx-{order_id}"),
        order_id: order_id.into(),
        user_id: "carol".into(),
        event_id: "evt".into(),
        seats: seats(&["F-1-1"]),
        currency: "EUR".into(),
        payment_id: "pay".into(),
        fencing_token: token,
        idempotency_key: String::new(),
    };
    let placed = c
        .place_order_fenced(place("new", 9))
        .await
        .expect("placed")
        .into_inner();
    let order = placed.order.expect("order");
    assert_eq!(
        (order.status(), order.tickets.len()),
        (OrderStatus::Confirmed, 1)
    );
    let before = orders.snapshot().await;

    let status = c
        .place_order_fenced(place("old", 4))
        .await
        .expect_err("stale");
    let (code, reason, metadata) = details(&status);
    assert_eq!(
        (code, reason.as_str()),
        (Code::FailedPrecondition, "STALE_FENCING_TOKEN")
    );
    assert_eq!(metadata["seats"], "F-1-1");
    let status = c
        .cancel_order_fenced(CancelOrderFencedRequest {
            txid: "tx-new".into(),
            order_id: "new".into(),
            fencing_token: 3,
        })
        .await
        .expect_err("a stale cancel is refused");
    assert_eq!(details(&status).1, "STALE_FENCING_TOKEN");
    assert_eq!(orders.snapshot().await, before);

    let status = c
        .place_order_fenced(place("newer", 10))
        .await
        .expect_err("taken");
    assert_eq!(details(&status).1, "SEAT_TAKEN");
}
