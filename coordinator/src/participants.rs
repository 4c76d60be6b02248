//! gRPC clients of the three participants, the waiting room and the notifier. Channels connect lazily, so the coordinator
//! starts (and recovers its log) even while a participant is down.

use anyhow::Context;
use proto::v1::inventory_service_client::InventoryServiceClient;
use proto::v1::notifier_service_client::NotifierServiceClient;
use proto::v1::orders_service_client::OrdersServiceClient;
use proto::v1::payments_service_client::PaymentsServiceClient;
use proto::v1::waiting_room_service_client::WaitingRoomServiceClient;
use tonic::transport::{Channel, Endpoint};

use crate::Config;

/// One client per participant; cloning is cheap (the channel is shared).
#[derive(Clone)]
pub struct Participants {
    pub inventory: InventoryServiceClient<Channel>,
    pub orders: OrdersServiceClient<Channel>,
    pub payments: PaymentsServiceClient<Channel>,
    pub waiting_room: WaitingRoomServiceClient<Channel>,
    /// Not a participant: the outbox relay hands it committed purchases' confirmations.
    pub notifier: NotifierServiceClient<Channel>,
}

impl Participants {
    pub fn connect_lazy(config: &Config) -> anyhow::Result<Self> {
        Ok(Self {
            inventory: InventoryServiceClient::new(lazy_channel(&config.inventory_endpoint)?),
            orders: OrdersServiceClient::new(lazy_channel(&config.orders_endpoint)?),
            payments: PaymentsServiceClient::new(lazy_channel(&config.payments_endpoint)?),
            waiting_room: WaitingRoomServiceClient::new(lazy_channel(
                &config.waiting_room_endpoint,
            )?),
            notifier: NotifierServiceClient::new(lazy_channel(&config.notifier_endpoint)?),
        })
    }
}

fn lazy_channel(endpoint: &str) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(endpoint.to_owned())
        .with_context(|| format!("invalid endpoint {endpoint:?}"))?
        .tcp_nodelay(true)
        .connect_lazy())
}
