use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proto::v1::*;

use crate::common::*;

async fn verify(orders: &Orders, token: &str) -> VerifyTicketResponse {
    orders
        .client
        .clone()
        .verify_ticket(VerifyTicketRequest {
            token: token.into(),
        })
        .await
        .expect("verify answers")
        .into_inner()
}

#[tokio::test]
async fn a_ticket_token_verifies_and_any_change_breaks_it() {
    let orders = Orders::start().await;
    let mut client = orders.client.clone();
    client
        .create_order(create("saga-t", "order-t", &["T-1-1", "T-1-2"]))
        .await
        .expect("created");
    let order = client
        .confirm_order(ConfirmOrderRequest {
            saga_id: "saga-t".into(),
            order_id: "order-t".into(),
            payment_id: "pay-t".into(),
        })
        .await
        .expect("confirmed")
        .into_inner()
        .order
        .expect("order");
    assert_eq!(order.status(), OrderStatus::Confirmed);
    assert_eq!(order.tickets.len(), 2);
    let ticket = &order.tickets[0];
    assert_eq!(
        (ticket.seat_id.as_str(), ticket.user_id.as_str()),
        ("T-1-1", "alice")
    );

    let verified = verify(&orders, &ticket.token).await;
    assert!(verified.valid, "{verified:?}");
    assert_eq!(verified.ticket.as_ref(), Some(ticket));

    // One byte of the signature changed: its first character, because the last one of
    // unpadded base64 also carries padding bits, and changing those is malformed base64.
    let mut bytes = ticket.token.clone().into_bytes();
    let first = ticket.token.rfind('.').expect("three parts") + 1;
    bytes[first] = if bytes[first] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).expect("ascii");
    let verdict = verify(&orders, &tampered).await;
    assert!(!verdict.valid);
    assert_eq!(verdict.reason, "bad_signature");

    // One field of the payload changed (another seat), the signature kept.
    let parts: Vec<&str> = ticket.token.split('.').collect();
    let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("utf8");
    let forged_payload = payload.replace("T-1-1", "T-1-9");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(forged_payload),
        parts[2]
    );
    let verdict = verify(&orders, &forged).await;
    assert!(!verdict.valid);
    assert_eq!(verdict.reason, "bad_signature");

    let verdict = verify(&orders, "not-a-ticket").await;
    assert_eq!(
        (verdict.valid, verdict.reason.as_str()),
        (false, "malformed")
    );

    // A confirm retried by the coordinator replays the same tickets.
    let again = client
        .confirm_order(ConfirmOrderRequest {
            saga_id: "saga-t".into(),
            order_id: "order-t".into(),
            payment_id: "pay-t".into(),
        })
        .await
        .expect("confirmed again")
        .into_inner();
    assert_eq!(again.barrier(), BarrierOutcome::Duplicate);
    assert_eq!(again.order.expect("order").tickets, order.tickets);

    let listed = client
        .list_orders(ListOrdersRequest {
            user_id: "alice".into(),
            page_size: 10,
            page_token: String::new(),
        })
        .await
        .expect("listed")
        .into_inner();
    assert_eq!(listed.orders.len(), 1);
    assert_eq!(listed.orders[0].order_id, "order-t");
}
