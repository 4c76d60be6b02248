//! Where the services are: flags with `TICKETDROP_*_ENDPOINT` env fallbacks and the
//! local stack's defaults.

use std::time::Duration;

use anyhow::Context;
use tonic::transport::{Channel, Endpoint};

#[derive(Debug, Clone, clap::Args)]
pub struct Endpoints {
    /// Coordinator gRPC endpoint.
    #[arg(
        long,
        global = true,
        env = "TICKETDROP_COORDINATOR_ENDPOINT",
        default_value = "http://127.0.0.1:50050"
    )]
    pub coordinator: String,

    /// inventory-pg gRPC endpoint.
    #[arg(
        long,
        global = true,
        env = "TICKETDROP_INVENTORY_ENDPOINT",
        default_value = "http://127.0.0.1:50051"
    )]
    pub inventory: String,

    /// orders-dynamo gRPC endpoint.
    #[arg(
        long,
        global = true,
        env = "TICKETDROP_ORDERS_ENDPOINT",
        default_value = "http://127.0.0.1:50052"
    )]
    pub orders: String,

    /// payments gRPC endpoint.
    #[arg(
        long,
        global = true,
        env = "TICKETDROP_PAYMENTS_ENDPOINT",
        default_value = "http://127.0.0.1:50053"
    )]
    pub payments: String,

    /// waiting-room gRPC endpoint.
    #[arg(
        long,
        global = true,
        env = "TICKETDROP_WAITING_ROOM_ENDPOINT",
        default_value = "http://127.0.0.1:50054"
    )]
    pub waiting_room: String,

    /// notifier gRPC endpoint.
    #[arg(
        long,
        global = true,
        env = "TICKETDROP_NOTIFIER_ENDPOINT",
        default_value = "http://127.0.0.1:50055"
    )]
    pub notifier: String,
}

impl Endpoints {
    /// Every service with its endpoint, in the order people read them.
    pub fn all(&self) -> [(&'static str, &str); 6] {
        [
            ("coordinator", &self.coordinator),
            ("inventory-pg", &self.inventory),
            ("orders-dynamo", &self.orders),
            ("payments", &self.payments),
            ("waiting-room", &self.waiting_room),
            ("notifier", &self.notifier),
        ]
    }
}

/// Connects to `endpoint`, failing with a message that names the service.
pub async fn connect(service: &str, endpoint: &str) -> anyhow::Result<Channel> {
    Endpoint::from_shared(endpoint.to_owned())
        .with_context(|| format!("invalid {service} endpoint {endpoint:?}"))?
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .with_context(|| {
            format!("{service} is not reachable at {endpoint} (is `make up` running?)")
        })
}

use proto::v1::coordinator_service_client::CoordinatorServiceClient;
use proto::v1::inventory_service_client::InventoryServiceClient;
use proto::v1::notifier_service_client::NotifierServiceClient;
use proto::v1::orders_service_client::OrdersServiceClient;
use proto::v1::payments_service_client::PaymentsServiceClient;
use proto::v1::waiting_room_service_client::WaitingRoomServiceClient;

impl Endpoints {
    pub async fn coordinator(&self) -> anyhow::Result<CoordinatorServiceClient<Channel>> {
        Ok(CoordinatorServiceClient::new(
            connect("coordinator", &self.coordinator).await?,
        ))
    }

    pub async fn inventory(&self) -> anyhow::Result<InventoryServiceClient<Channel>> {
        Ok(InventoryServiceClient::new(
            connect("inventory-pg", &self.inventory).await?,
        ))
    }

    pub async fn orders(&self) -> anyhow::Result<OrdersServiceClient<Channel>> {
        Ok(OrdersServiceClient::new(
            connect("orders-dynamo", &self.orders).await?,
        ))
    }

    pub async fn payments(&self) -> anyhow::Result<PaymentsServiceClient<Channel>> {
        Ok(PaymentsServiceClient::new(
            connect("payments", &self.payments).await?,
        ))
    }

    pub async fn notifier(&self) -> anyhow::Result<NotifierServiceClient<Channel>> {
        Ok(NotifierServiceClient::new(
            connect("notifier", &self.notifier).await?,
        ))
    }

    pub async fn waiting_room(&self) -> anyhow::Result<WaitingRoomServiceClient<Channel>> {
        Ok(WaitingRoomServiceClient::new(
            connect("waiting-room", &self.waiting_room).await?,
        ))
    }
}

/// A gRPC error as one line: code, message, and the ErrorInfo reason when there is one.
pub fn describe(status: &tonic::Status) -> String {
    match server_kit::status::reason_of(status) {
        Some((reason, _)) if !reason.is_empty() => {
            format!("{:?} ({reason}): {}", status.code(), status.message())
        }
        _ => format!("{:?}: {}", status.code(), status.message()),
    }
}
