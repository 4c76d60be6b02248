//! What every gRPC call a TicketDrop program makes carries: the caller's bearer token
//! and the trace context of the span it is made in.
//! Clients are built as `FooServiceClient::with_interceptor(channel, outgoing)`, of the
//! type `FooServiceClient<MeshChannel>`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Status};

use crate::auth::{Issuer, SERVICE_SCOPE};

/// A channel whose calls carry their caller's credential.
pub type MeshChannel = InterceptedService<Channel, Outgoing>;

/// How long a service's own token lives; it signs a new one a minute before the end.
const SERVICE_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);
const RENEW_BEFORE_SECS: i64 = 60;

/// The interceptor of every client: adds `authorization: Bearer <token>` unless the
/// request carries one already (a drop's fans each send their own on shared clients).
#[derive(Clone, Default)]
pub struct Outgoing {
    credential: Option<Arc<Credential>>,
}

enum Credential {
    Fixed(MetadataValue<Ascii>),
    /// A service's own token, signed again before it expires.
    Service {
        issuer: Issuer,
        name: String,
        current: Mutex<(MetadataValue<Ascii>, i64)>,
    },
}

impl Outgoing {
    /// Calls without a credential of their own.
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// Calls carrying `token`.
    pub fn bearer(token: &str) -> anyhow::Result<Self> {
        Ok(Self {
            credential: Some(Arc::new(Credential::Fixed(bearer(token)?))),
        })
    }

    /// Calls of the service `name`, with scope `service` tokens signed by the mesh key.
    pub fn service(issuer: Issuer, name: &str) -> Self {
        let current = Mutex::new(Self::sign(&issuer, name));
        Self {
            credential: Some(Arc::new(Credential::Service {
                issuer,
                name: name.to_owned(),
                current,
            })),
        }
    }

    fn sign(issuer: &Issuer, name: &str) -> (MetadataValue<Ascii>, i64) {
        let token = issuer.mint(name, &[SERVICE_SCOPE], SERVICE_TOKEN_TTL);
        let expires_at = chrono::Utc::now().timestamp()
            + i64::try_from(SERVICE_TOKEN_TTL.as_secs()).unwrap_or(i64::MAX / 2);
        let value = bearer(&token).expect("a minted JWT is valid metadata");
        (value, expires_at)
    }

    fn header(&self) -> Option<MetadataValue<Ascii>> {
        match self.credential.as_deref()? {
            Credential::Fixed(value) => Some(value.clone()),
            Credential::Service {
                issuer,
                name,
                current,
            } => {
                let mut current = current
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if current.1 - chrono::Utc::now().timestamp() < RENEW_BEFORE_SECS {
                    *current = Self::sign(issuer, name);
                }
                Some(current.0.clone())
            }
        }
    }
}

impl Interceptor for Outgoing {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if !request.metadata().contains_key("authorization")
            && let Some(value) = self.header()
        {
            request.metadata_mut().insert("authorization", value);
        }
        crate::trace::inject(request.metadata_mut());
        Ok(request)
    }
}

/// The metadata value `Bearer <token>`.
pub fn bearer(token: &str) -> anyhow::Result<MetadataValue<Ascii>> {
    format!("Bearer {}", token.trim())
        .parse()
        .map_err(|_| anyhow::anyhow!("a token must be printable ASCII"))
}

/// `request` carrying `token` as its own credential, whatever its client's is.
pub fn with_token<T>(message: T, token: &MetadataValue<Ascii>) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", token.clone());
    request
}

/// A channel to `endpoints` that connects on first use (and again after a failure), so a
/// service starts while the ones it calls are still down.
///
/// `endpoints` is one endpoint, or several separated by commas (replicas of one service,
/// such as the coordinators of one log): see [`replicas`].
pub fn lazy_channel(endpoints: &str) -> anyhow::Result<Channel> {
    let mut list = parse_endpoints(endpoints)?;
    Ok(if list.len() == 1 {
        list.pop().expect("one endpoint").connect_lazy()
    } else {
        replicas(list)
    })
}

/// How often [`replicas`] checks each endpoint.
const PROBE_EVERY: Duration = Duration::from_millis(500);

/// One channel to several replicas of a service: tonic's power-of-two-choices balancer
/// (which also prefers the replica with fewer calls pending, so a paused one is left
/// alone) over the endpoints that accept connections. A watcher connects to each
/// endpoint every half second and takes one that refuses out of the balancer, and puts
/// it back once it accepts again, so calls do not go to a replica that died. When none
/// accepts, all stay in (calls fail fast rather than wait). Calls made before the first
/// check wait for it.
///
/// A call cut off by a replica's death still fails (UNAVAILABLE): callers retry unknown
/// outcomes with the same idempotency key, and the retry, sent to another replica, is
/// the same purchase.
pub fn replicas(list: Vec<tonic::transport::Endpoint>) -> Channel {
    let (channel, changes) = Channel::balance_channel::<usize>(list.len().max(1) * 4);
    tokio::spawn(watch_replicas(list, changes));
    channel
}

async fn watch_replicas(
    list: Vec<tonic::transport::Endpoint>,
    changes: tokio::sync::mpsc::Sender<
        tonic::transport::channel::Change<usize, tonic::transport::Endpoint>,
    >,
) {
    use tonic::transport::channel::Change;
    let mut inside = vec![false; list.len()];
    loop {
        let answers = futures::future::join_all(list.iter().map(accepts)).await;
        let any = answers.iter().any(|up| *up);
        for (index, endpoint) in list.iter().enumerate() {
            let wanted = answers[index] || !any;
            let change = match (wanted, inside[index]) {
                (true, false) => Change::Insert(index, endpoint.clone()),
                (false, true) => Change::Remove(index),
                _ => continue,
            };
            if changes.send(change).await.is_err() {
                return; // the channel is gone
            }
            inside[index] = wanted;
            if !wanted {
                tracing::warn!(endpoint = %endpoint.uri(), "replica refuses connections; calls go to the others");
            }
        }
        tokio::time::sleep(PROBE_EVERY).await;
        if changes.is_closed() {
            return;
        }
    }
}

/// Whether `endpoint` accepts a TCP connection within 300 ms.
async fn accepts(endpoint: &tonic::transport::Endpoint) -> bool {
    let uri = endpoint.uri();
    let Some(host) = uri.host() else {
        return false;
    };
    let port = uri.port_u16().unwrap_or(80);
    matches!(
        tokio::time::timeout(
            Duration::from_millis(300),
            tokio::net::TcpStream::connect((host, port))
        )
        .await,
        Ok(Ok(_))
    )
}

/// The endpoints of a comma-separated list, each with the mesh's transport settings.
pub fn parse_endpoints(endpoints: &str) -> anyhow::Result<Vec<tonic::transport::Endpoint>> {
    use anyhow::Context;
    let list: Vec<tonic::transport::Endpoint> = endpoints
        .split(',')
        .map(str::trim)
        .filter(|endpoint| !endpoint.is_empty())
        .map(|endpoint| {
            Ok(tonic::transport::Endpoint::from_shared(endpoint.to_owned())
                .with_context(|| format!("invalid endpoint {endpoint:?}"))?
                .connect_timeout(Duration::from_secs(2))
                .tcp_nodelay(true))
        })
        .collect::<anyhow::Result<_>>()?;
    anyhow::ensure!(!list.is_empty(), "no endpoint in {endpoints:?}");
    Ok(list)
}
