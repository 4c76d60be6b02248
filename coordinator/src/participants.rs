//! gRPC clients of the three participants, the waiting room and the notifier. Channels connect lazily, so the coordinator
//! starts (and recovers its log) even while a participant is down.

use proto::v1::inventory_service_client::InventoryServiceClient;
use proto::v1::notifier_service_client::NotifierServiceClient;
use proto::v1::orders_service_client::OrdersServiceClient;
use proto::v1::payments_service_client::PaymentsServiceClient;
use proto::v1::waiting_room_service_client::WaitingRoomServiceClient;
use server_kit::outgoing::{MeshChannel, lazy_channel};

use crate::Config;

/// One client per participant; cloning is cheap (the channel is shared).
#[derive(Clone)]
pub struct Participants {
    pub inventory: InventoryServiceClient<MeshChannel>,
    pub orders: OrdersServiceClient<MeshChannel>,
    pub payments: PaymentsServiceClient<MeshChannel>,
    pub waiting_room: WaitingRoomServiceClient<MeshChannel>,
    /// Not a participant: the outbox relay hands it committed purchases' confirmations.
    pub notifier: NotifierServiceClient<MeshChannel>,
}

impl Participants {
    /// Clients whose calls carry the coordinator's service token.
    pub fn connect_lazy(config: &Config) -> anyhow::Result<Self> {
        let credential = config.server.service_credential("coordinator")?;
        let client = |endpoint: &str| -> anyhow::Result<MeshChannel> {
            Ok(MeshChannel::new(
                lazy_channel(endpoint)?,
                credential.clone(),
            ))
        };
        Ok(Self {
            inventory: InventoryServiceClient::new(client(&config.inventory_endpoint)?),
            orders: OrdersServiceClient::new(client(&config.orders_endpoint)?),
            payments: PaymentsServiceClient::new(client(&config.payments_endpoint)?),
            waiting_room: WaitingRoomServiceClient::new(client(&config.waiting_room_endpoint)?),
            notifier: NotifierServiceClient::new(client(&config.notifier_endpoint)?),
        })
    }
}
