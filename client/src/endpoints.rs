//! Where the services are — flags with `TICKETDROP_*_ENDPOINT` env fallbacks and the
//! local stack's defaults — and who the CLI calls them as: the `--token` given, or else
//! an operator's token it mints with the local stack's users key.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use server_kit::auth::{ADMIN_SCOPE, Authority, Issuer, KeyFiles};
use server_kit::outgoing::{MeshChannel, Outgoing};
use tonic::transport::{Channel, Endpoint};

/// The subject of the operator's tokens the CLI mints for itself.
const OPERATOR: &str = "ticketdrop-cli";
/// How long a token the CLI mints lives: longer than the longest drop or bench.
pub const TOKEN_TTL: Duration = Duration::from_secs(12 * 3600);

#[derive(Debug, Clone, clap::Args)]
pub struct Endpoints {
    /// Coordinator gRPC endpoint, or several separated by commas (the coordinators of
    /// one log): calls are spread over them and move on from one that stops answering.
    /// Default: the local stack's coordinators (`make up` lists them in
    /// .stack/services/coordinators), else http://127.0.0.1:50050.
    #[arg(
        long,
        global = true,
        env = "TICKETDROP_COORDINATOR_ENDPOINT",
        default_value_t = local_coordinators()
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

    /// Call with this bearer token (for example one `ticketdrop login` printed) instead
    /// of an operator's token minted from the key directory.
    #[arg(
        long = "token",
        global = true,
        env = "TICKETDROP_TOKEN",
        hide_env_values = true
    )]
    pub bearer_token: Option<String>,

    /// Directory of the token keys; the CLI mints tokens with its `users.pem`.
    #[arg(
        long,
        global = true,
        env = "TICKETDROP_AUTH_DIR",
        default_value = ".stack/auth"
    )]
    pub auth_dir: PathBuf,
}

/// The coordinators `make up` started (.stack/services/coordinators, read from the
/// directory `ticketdrop` runs in, as the key directory is), or the first one's port.
fn local_coordinators() -> String {
    std::fs::read_to_string(".stack/services/coordinators")
        .ok()
        .map(|list| list.trim().to_owned())
        .filter(|list| !list.is_empty())
        .unwrap_or_else(|| "http://127.0.0.1:50050".to_owned())
}

impl Endpoints {
    /// The key that signs fans' and operators' tokens.
    pub fn users_issuer(&self) -> anyhow::Result<Issuer> {
        Issuer::load(&KeyFiles::new(&self.auth_dir), Authority::Users)
            .context("minting a token needs the users key (or pass --token)")
    }

    /// What the CLI's calls carry: `--token`, or an operator's token.
    pub fn credential(&self) -> anyhow::Result<Outgoing> {
        let token = match &self.bearer_token {
            Some(token) => token.clone(),
            None => self
                .users_issuer()?
                .mint(OPERATOR, &[ADMIN_SCOPE], TOKEN_TTL),
        };
        Outgoing::bearer(&token)
    }

    /// Each of `users`' credential, minted before a drop's clock starts (real fans bring
    /// theirs from their login): `--token` for all of them when one is given.
    pub fn fan_credentials(
        &self,
        users: impl Iterator<Item = String>,
    ) -> anyhow::Result<Vec<Outgoing>> {
        if let Some(token) = &self.bearer_token {
            let credential = Outgoing::bearer(token)?;
            return Ok(users.map(|_| credential.clone()).collect());
        }
        let issuer = self.users_issuer()?;
        users
            .map(|user| Outgoing::bearer(&issuer.mint(&user, &[], TOKEN_TTL)))
            .collect()
    }

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

/// Connects to `endpoint`, failing with a message that names the service. Several
/// endpoints separated by commas (the coordinators on one log) give one channel that
/// spreads the calls over them and moves on from one that stops answering; it fails here
/// only when none of them is reachable.
pub async fn connect(service: &str, endpoint: &str) -> anyhow::Result<Channel> {
    let list = server_kit::outgoing::parse_endpoints(endpoint)
        .with_context(|| format!("invalid {service} endpoint {endpoint:?}"))?;
    if list.len() == 1 {
        return Endpoint::from_shared(endpoint.trim().to_owned())
            .with_context(|| format!("invalid {service} endpoint {endpoint:?}"))?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .connect()
            .await
            .with_context(|| {
                format!("{service} is not reachable at {endpoint} (is `make up` running?)")
            });
    }
    let mut reachable = false;
    for one in &list {
        if one.connect().await.is_ok() {
            reachable = true;
            break;
        }
    }
    anyhow::ensure!(
        reachable,
        "{service} is not reachable at any of {endpoint} (is `make up` running?)"
    );
    Ok(server_kit::outgoing::replicas(list))
}

use proto::v1::coordinator_service_client::CoordinatorServiceClient;
use proto::v1::inventory_service_client::InventoryServiceClient;
use proto::v1::notifier_service_client::NotifierServiceClient;
use proto::v1::orders_service_client::OrdersServiceClient;
use proto::v1::payments_service_client::PaymentsServiceClient;
use proto::v1::waiting_room_service_client::WaitingRoomServiceClient;

impl Endpoints {
    /// A channel to `service` at `endpoint` whose calls carry the CLI's credential.
    async fn mesh(&self, service: &str, endpoint: &str) -> anyhow::Result<MeshChannel> {
        Ok(MeshChannel::new(
            connect(service, endpoint).await?,
            self.credential()?,
        ))
    }

    pub async fn coordinator(&self) -> anyhow::Result<CoordinatorServiceClient<MeshChannel>> {
        Ok(CoordinatorServiceClient::new(
            self.mesh("coordinator", &self.coordinator).await?,
        ))
    }

    pub async fn inventory(&self) -> anyhow::Result<InventoryServiceClient<MeshChannel>> {
        Ok(InventoryServiceClient::new(
            self.mesh("inventory-pg", &self.inventory).await?,
        ))
    }

    pub async fn orders(&self) -> anyhow::Result<OrdersServiceClient<MeshChannel>> {
        Ok(OrdersServiceClient::new(
            self.mesh("orders-dynamo", &self.orders).await?,
        ))
    }

    pub async fn payments(&self) -> anyhow::Result<PaymentsServiceClient<MeshChannel>> {
        Ok(PaymentsServiceClient::new(
            self.mesh("payments", &self.payments).await?,
        ))
    }

    pub async fn notifier(&self) -> anyhow::Result<NotifierServiceClient<MeshChannel>> {
        Ok(NotifierServiceClient::new(
            self.mesh("notifier", &self.notifier).await?,
        ))
    }

    pub async fn waiting_room(&self) -> anyhow::Result<WaitingRoomServiceClient<MeshChannel>> {
        Ok(WaitingRoomServiceClient::new(
            self.mesh("waiting-room", &self.waiting_room).await?,
        ))
    }
}

/// A gRPC error as one line: code, message, and the ErrorInfo reason when there is one.
pub fn describe(status: &tonic::Status) -> String {
    match proto::error::Refusal::of(status) {
        Some(refusal) => {
            let reason = refusal.reason.name();
            format!("{:?} ({reason}): {}", status.code(), status.message())
        }
        _ => format!("{:?}: {}", status.code(), status.message()),
    }
}
