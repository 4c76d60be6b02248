//! Who may call what, across the mesh: no token, another fan's token, a fan's token on
//! an operator's or the mesh's RPC. Each refusal has its code and reason, and writes
//! nothing.

use local_mesh::MeshOptions;
use local_mesh::auth::{channel_as, fan};
use proto::v1::coordinator_service_client::CoordinatorServiceClient;
use proto::v1::inventory_service_client::InventoryServiceClient;
use proto::v1::notifier_service_client::NotifierServiceClient;
use proto::v1::orders_service_client::OrdersServiceClient;
use proto::v1::payments_service_client::PaymentsServiceClient;
use proto::v1::waiting_room_service_client::WaitingRoomServiceClient;
use proto::v1::*;
use server_kit::outgoing::{MeshChannel, Outgoing};
use tonic::Code;

use crate::common::*;

/// The six services, each reached with one credential.
struct Clients {
    coordinator: CoordinatorServiceClient<MeshChannel>,
    inventory: InventoryServiceClient<MeshChannel>,
    orders: OrdersServiceClient<MeshChannel>,
    payments: PaymentsServiceClient<MeshChannel>,
    room: WaitingRoomServiceClient<MeshChannel>,
    notifier: NotifierServiceClient<MeshChannel>,
}

impl Clients {
    async fn as_(world: &World, credential: Outgoing) -> Self {
        let mesh = &world.mesh;
        let channel = |endpoint: String| channel_as_owned(endpoint, credential.clone());
        Self {
            coordinator: CoordinatorServiceClient::new(channel(mesh.coordinator.endpoint()).await),
            inventory: InventoryServiceClient::new(channel(mesh.inventory.endpoint()).await),
            orders: OrdersServiceClient::new(channel(mesh.orders.endpoint()).await),
            payments: PaymentsServiceClient::new(channel(mesh.payments.endpoint()).await),
            room: WaitingRoomServiceClient::new(channel(mesh.waiting_room.endpoint()).await),
            notifier: NotifierServiceClient::new(channel(mesh.notifier.endpoint()).await),
        }
    }
}

async fn channel_as_owned(endpoint: String, credential: Outgoing) -> MeshChannel {
    channel_as(&endpoint, credential).await
}

/// The code and ErrorInfo reason of a refusal; panics on success.
fn refused<T: std::fmt::Debug>(
    answer: Result<tonic::Response<T>, tonic::Status>,
) -> (Code, String) {
    match answer {
        Ok(response) => panic!("expected a refusal, got {:?}", response.into_inner()),
        Err(status) => {
            let (code, reason, _) = reason(&status);
            (code, reason)
        }
    }
}

fn purchase_by(user: &str, key: &str) -> PurchaseRequest {
    PurchaseRequest {
        user_id: user.into(),
        ..purchase(Protocol::Saga, "guarded", &["A-1-1"], "tok_visa", key)
    }
}

/// Every public RPC of every service answers UNAUTHENTICATED without a token (browsing
/// the catalogue and a room's counts excepted: they are open to anyone); another
/// fan's token cannot buy, join, watch, leave or register a webhook; a fan's token
/// cannot set faults, create an event, open a room or read the log; and the
/// participants' own RPCs refuse everyone but the mesh. Nothing is written by any of it,
/// and the fan's own token then buys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_without_the_right_token_are_refused_and_write_nothing() {
    let world = World::start(MeshOptions::default()).await;
    world.event("guarded", 1, 4, 1_000).await;
    let anonymous = Clients::as_(&world, Outgoing::anonymous()).await;
    let ana = Clients::as_(&world, fan("ana")).await;
    let unauthenticated = (Code::Unauthenticated, "UNAUTHENTICATED".to_owned());
    let other_user = (Code::PermissionDenied, "OTHER_USER".to_owned());
    let scope_required = (Code::PermissionDenied, "SCOPE_REQUIRED".to_owned());

    // 1. No token: every public RPC.
    let Clients {
        mut coordinator,
        mut inventory,
        mut orders,
        mut room,
        mut notifier,
        ..
    } = anonymous;
    let event = || "guarded".to_owned();
    let join = || JoinRequest {
        event_id: event(),
        user_id: "ana".into(),
    };
    let answers = [
        refused(coordinator.purchase(purchase_by("ana", "anon-1")).await),
        refused(
            coordinator
                .watch_purchase(WatchPurchaseRequest {
                    idempotency_key: "anon-1".into(),
                    ..Default::default()
                })
                .await,
        ),
        refused(room.join(join()).await),
        refused(
            room.watch(WatchRequest {
                event_id: event(),
                user_id: "ana".into(),
                join: false,
            })
            .await,
        ),
        refused(
            room.leave(LeaveRequest {
                event_id: event(),
                user_id: "ana".into(),
            })
            .await,
        ),
        refused(
            inventory
                .get_seat_counts(GetSeatCountsRequest { event_id: event() })
                .await,
        ),
        refused(
            orders
                .verify_ticket(VerifyTicketRequest { token: "x".into() })
                .await,
        ),
        refused(
            orders
                .get_order(GetOrderRequest {
                    order_id: "ord-1".into(),
                    ..Default::default()
                })
                .await,
        ),
        refused(
            orders
                .list_orders(ListOrdersRequest {
                    user_id: "ana".into(),
                    ..Default::default()
                })
                .await,
        ),
        refused(
            notifier
                .register_webhook(RegisterWebhookRequest {
                    user_id: "ana".into(),
                    url: "http://127.0.0.1:9/hook".into(),
                })
                .await,
        ),
        refused(
            notifier
                .get_confirmation(GetConfirmationRequest {
                    txid: "tx-1".into(),
                })
                .await,
        ),
    ];
    assert_eq!(answers.len(), 11);
    for (i, answer) in answers.iter().enumerate() {
        assert_eq!(answer, &unauthenticated, "public RPC #{i} without a token");
    }
    // Browsing is open: the catalogue, an event's seat map, a room's counts.
    let listed = inventory
        .list_events(ListEventsRequest::default())
        .await
        .expect("anyone lists the events")
        .into_inner();
    assert_eq!(listed.events.len(), 1);
    inventory
        .get_event(GetEventRequest {
            event_id: event(),
            include_seats: true,
            consistent_read: false,
        })
        .await
        .expect("anyone reads an event");
    assert_eq!(
        room.get_room(GetRoomRequest { event_id: event() })
            .await
            .expect_err("no room")
            .code(),
        Code::NotFound,
        "open, and answered: this event has no room"
    );
    // A token that is not ours is no token either.
    let mut forged = Clients::as_(
        &world,
        Outgoing::bearer("eyJhbGciOiJFZERTQSJ9.e30.c2lnbmF0dXJl").expect("ascii"),
    )
    .await;
    assert_eq!(
        refused(
            forged
                .coordinator
                .purchase(purchase_by("ana", "forged-1"))
                .await
        ),
        unauthenticated
    );

    // 2. Ana's token acting for bob.
    let Clients {
        mut coordinator,
        mut inventory,
        mut orders,
        mut payments,
        mut room,
        mut notifier,
    } = ana;
    assert_eq!(
        refused(coordinator.purchase(purchase_by("bob", "bob-by-ana")).await),
        other_user
    );
    assert_eq!(
        refused(
            room.join(JoinRequest {
                event_id: event(),
                user_id: "bob".into(),
            })
            .await
        ),
        other_user
    );
    assert_eq!(
        refused(
            orders
                .list_orders(ListOrdersRequest {
                    user_id: "bob".into(),
                    ..Default::default()
                })
                .await
        ),
        other_user
    );
    assert_eq!(
        refused(
            notifier
                .register_webhook(RegisterWebhookRequest {
                    user_id: "bob".into(),
                    url: "http://127.0.0.1:9/hook".into(),
                })
                .await
        ),
        other_user
    );

    // 3. Ana's token on operators' RPCs.
    assert_eq!(
        refused(
            payments
                .set_faults(SetFaultsRequest {
                    faults: Some(FaultSettings {
                        decline_rate: 1.0,
                        ..Default::default()
                    }),
                })
                .await
        ),
        scope_required
    );
    assert_eq!(
        refused(
            room.open_room(OpenRoomRequest {
                event_id: event(),
                max_active: 1,
                admission_ttl: None,
                ..Default::default()
            })
            .await
        ),
        scope_required
    );
    assert_eq!(
        refused(
            inventory
                .create_event(CreateEventRequest {
                    event_id: "ana-show".into(),
                    ..Default::default()
                })
                .await
        ),
        scope_required
    );
    assert_eq!(
        refused(coordinator.list_pending(ListPendingRequest {}).await),
        scope_required
    );

    // 4. The participants' own RPCs, called directly by a fan and by nobody.
    assert_eq!(
        refused(
            inventory
                .hold_seats(HoldSeatsRequest {
                    event_id: event(),
                    seat_ids: vec!["A-1-1".into()],
                    saga_id: "saga-ana".into(),
                    ..Default::default()
                })
                .await
        ),
        scope_required
    );
    assert_eq!(
        refused(
            orders
                .prepare_order(PrepareOrderRequest {
                    log_id: String::new(),
                    txid: "tx-ana".into(),
                    ..Default::default()
                })
                .await
        ),
        scope_required
    );
    assert_eq!(
        refused(
            payments
                .authorize(AuthorizeRequest {
                    order_id: "ord-ana".into(),
                    amount_cents: 1_000,
                    currency: "EUR".into(),
                    card_token: "tok_visa".into(),
                    idempotency_key: "ana-auth".into(),
                })
                .await
        ),
        scope_required
    );
    let mut unsigned_inventory = InventoryServiceClient::new(
        channel_as(&world.mesh.inventory.endpoint(), Outgoing::anonymous()).await,
    );
    assert_eq!(
        refused(
            unsigned_inventory
                .hold_seats(HoldSeatsRequest {
                    event_id: event(),
                    seat_ids: vec!["A-1-1".into()],
                    saga_id: "saga-nobody".into(),
                    ..Default::default()
                })
                .await
        ),
        unauthenticated
    );

    // Nothing was written anywhere.
    assert!(
        world
            .seats("guarded")
            .await
            .values()
            .all(|(status, _)| status == "AVAILABLE")
    );
    assert_eq!(world.logged("guarded").await, 0);
    assert!(world.payments().await.is_empty());
    assert!(world.orders("guarded").await.is_empty());
    let faults = world.mesh.payments.endpoint();
    let mut operator_payments =
        PaymentsServiceClient::new(local_mesh::auth::channel(&faults).await);
    let faults = operator_payments
        .get_faults(GetFaultsRequest {})
        .await
        .expect("an operator reads the faults")
        .into_inner()
        .faults
        .unwrap_or_default();
    assert_eq!(faults.decline_rate, 0.0, "the faults are unchanged");
    let room_state = world
        .room
        .clone()
        .get_room(GetRoomRequest { event_id: event() })
        .await;
    assert_eq!(
        room_state.map_err(|status| status.code()).err(),
        Some(Code::NotFound),
        "no room was opened"
    );
    assert!(
        world
            .inventory
            .clone()
            .get_event(GetEventRequest {
                event_id: "ana-show".into(),
                include_seats: false,
                consistent_read: false,
            })
            .await
            .is_err_and(|status| status.code() == Code::NotFound),
        "no event was created"
    );

    // Ana's own token buys, and the mesh's own calls went through with its credential.
    let bought = coordinator
        .purchase(purchase_by("ana", "ana-1"))
        .await
        .expect("ana buys with her own token")
        .into_inner();
    assert_eq!(bought.seats.len(), 1);
    assert_eq!(world.seats("guarded").await["A-1-1"].0, "SOLD");
}
