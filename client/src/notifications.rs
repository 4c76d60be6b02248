//! `ticketdrop notifications list|retry|register-webhook`, and the confirmation child of
//! a purchase as `txn show` and `txn diagnose` print it: the outbox row the commit
//! recorded, and the notifier's deliveries with their attempts.

use proto::v1::*;
use serde_json::{Value, json};

use crate::endpoints::{self, Endpoints};
use crate::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StateArg {
    Pending,
    Delivered,
    Dead,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ChannelArg {
    Email,
    Sms,
    Webhook,
}

#[derive(Debug, clap::Subcommand)]
pub enum NotificationsCommand {
    /// Confirmation deliveries, newest first (`--state dead` is the dead letter).
    List {
        #[arg(long, value_enum)]
        state: Option<StateArg>,
        #[arg(long, value_enum)]
        channel: Option<ChannelArg>,
        /// Only this purchase's deliveries.
        #[arg(long)]
        txid: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Re-drive dead-lettered deliveries now, with a fresh ceiling of attempts.
    Retry {
        /// Delivery ids (msg_…).
        #[arg(required_unless_present = "all_dead")]
        delivery_ids: Vec<String>,
        /// Every dead-lettered delivery.
        #[arg(long, conflicts_with = "delivery_ids")]
        all_dead: bool,
    },
    /// Send a signed webhook to URL for each of the buyer's future confirmations; prints
    /// the signing secret.
    RegisterWebhook {
        #[arg(long)]
        user: String,
        #[arg(long)]
        url: String,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(endpoints: &Endpoints, command: NotificationsCommand) -> anyhow::Result<()> {
    let mut notifier = endpoints.notifier().await?;
    let rpc_error = |s: tonic::Status| anyhow::anyhow!(endpoints::describe(&s));
    match command {
        NotificationsCommand::List {
            state,
            channel,
            txid,
            limit,
            json: json_out,
        } => {
            let deliveries = notifier
                .list_deliveries(ListDeliveriesRequest {
                    state: state.map(state_proto).unwrap_or_default().into(),
                    channel: channel.map(channel_proto).unwrap_or_default().into(),
                    txid: txid.unwrap_or_default(),
                    page_size: limit,
                    page_token: String::new(),
                })
                .await
                .map_err(rpc_error)?
                .into_inner()
                .deliveries;
            if json_out {
                return json::print(&json!({
                    "deliveries": deliveries.iter().map(delivery_json).collect::<Vec<_>>(),
                }));
            }
            if deliveries.is_empty() {
                println!("no deliveries");
            }
            for d in &deliveries {
                println!("{}", delivery_line(d));
            }
            Ok(())
        }
        NotificationsCommand::Retry {
            delivery_ids,
            all_dead,
        } => {
            let ids = if all_dead {
                notifier
                    .list_deliveries(ListDeliveriesRequest {
                        state: DeliveryState::DeadLettered.into(),
                        page_size: 500,
                        ..Default::default()
                    })
                    .await
                    .map_err(rpc_error)?
                    .into_inner()
                    .deliveries
                    .into_iter()
                    .map(|d| d.delivery_id)
                    .collect()
            } else {
                delivery_ids
            };
            if ids.is_empty() {
                println!("nothing is dead-lettered");
            }
            for id in ids {
                let delivery = notifier
                    .retry_delivery(RetryDeliveryRequest {
                        delivery_id: id.clone(),
                    })
                    .await
                    .map_err(|s| anyhow::anyhow!("{id}: {}", endpoints::describe(&s)))?
                    .into_inner()
                    .delivery
                    .unwrap_or_default();
                println!("re-driven: {}", delivery_line(&delivery));
            }
            Ok(())
        }
        NotificationsCommand::RegisterWebhook {
            user,
            url,
            json: json_out,
        } => {
            let endpoint = notifier
                .register_webhook(RegisterWebhookRequest {
                    user_id: user.clone(),
                    url: url.clone(),
                })
                .await
                .map_err(rpc_error)?
                .into_inner();
            if json_out {
                return json::print(&json!({
                    "endpoint_id": endpoint.endpoint_id, "user_id": user, "url": url,
                    "secret": endpoint.secret,
                }));
            }
            println!("endpoint {} for {user}: {url}", endpoint.endpoint_id);
            println!("signing secret: {}", endpoint.secret);
            Ok(())
        }
    }
}

fn state_proto(state: StateArg) -> DeliveryState {
    match state {
        StateArg::Pending => DeliveryState::Pending,
        StateArg::Delivered => DeliveryState::Delivered,
        StateArg::Dead => DeliveryState::DeadLettered,
    }
}

fn channel_proto(channel: ChannelArg) -> Channel {
    match channel {
        ChannelArg::Email => Channel::Email,
        ChannelArg::Sms => Channel::Sms,
        ChannelArg::Webhook => Channel::Webhook,
    }
}

pub fn channel_name(channel: Channel) -> String {
    json::short_enum(channel.as_str_name(), "CHANNEL_").to_lowercase()
}

pub fn state_name(state: DeliveryState) -> String {
    json::short_enum(state.as_str_name(), "DELIVERY_STATE_")
}

fn delivery_line(d: &Delivery) -> String {
    format!(
        "{}  {}  {:<7} {:<14} {} attempt{}  {}{}",
        json::timestamp(&d.created_at).as_str().unwrap_or_default(),
        d.delivery_id,
        channel_name(d.channel()),
        state_name(d.state()),
        d.attempts,
        if d.attempts == 1 { "" } else { "s" },
        d.target,
        if d.last_error.is_empty() {
            String::new()
        } else {
            format!("  last error: {}", d.last_error)
        }
    )
}

pub fn delivery_json(d: &Delivery) -> Value {
    json!({
        "delivery_id": d.delivery_id, "txid": d.txid, "channel": channel_name(d.channel()),
        "target": d.target, "state": state_name(d.state()), "attempts": d.attempts,
        "last_error": d.last_error, "next_attempt_at": json::timestamp(&d.next_attempt_at),
        "delivered_at": json::timestamp(&d.delivered_at), "created_at": json::timestamp(&d.created_at),
    })
}

pub fn attempt_json(a: &DeliveryAttempt) -> Value {
    json!({
        "sequence": a.sequence, "delivery_id": a.delivery_id, "channel": channel_name(a.channel()),
        "attempt": a.attempt, "delivered": a.delivered, "error": a.error,
        "state_after": state_name(a.state_after()),
        "started_at": json::timestamp(&a.started_at), "finished_at": json::timestamp(&a.finished_at),
    })
}

/// A purchase's confirmation child: the outbox row (committed purchases only) and, once
/// relayed, the notifier's view.
pub struct Child {
    pub outbox: Option<Outbox>,
    pub confirmation: Option<Confirmation>,
    /// Why the notifier could not be asked.
    pub unreachable: Option<String>,
}

/// How the child stands, in one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildState {
    /// No confirmation: the purchase did not commit.
    None,
    /// Recorded with the commit; not handed to the notifier yet.
    NotRelayed,
    /// Some delivery still has attempts to go.
    Pending,
    /// Every delivery was delivered.
    Delivered,
    /// At least one delivery was dead-lettered.
    Failed,
}

impl ChildState {
    pub fn name(self) -> &'static str {
        match self {
            ChildState::None => "NONE",
            ChildState::NotRelayed => "NOT_RELAYED",
            ChildState::Pending => "PENDING",
            ChildState::Delivered => "DELIVERED",
            ChildState::Failed => "FAILED",
        }
    }
}

impl Child {
    pub async fn of(endpoints: &Endpoints, txn: &Transaction) -> Child {
        let outbox = txn.outbox.clone();
        let relayed = outbox.as_ref().is_some_and(|o| o.relayed_at.is_some());
        if !relayed {
            return Child {
                outbox,
                confirmation: None,
                unreachable: None,
            };
        }
        let asked = async {
            endpoints
                .notifier()
                .await?
                .get_confirmation(GetConfirmationRequest {
                    txid: txn.txid.clone(),
                })
                .await
                .map_err(|s| anyhow::anyhow!(endpoints::describe(&s)))
        }
        .await;
        match asked {
            Ok(found) => Child {
                outbox,
                confirmation: found.into_inner().confirmation,
                unreachable: None,
            },
            Err(error) => Child {
                outbox,
                confirmation: None,
                unreachable: Some(format!("{error:#}")),
            },
        }
    }

    pub fn state(&self) -> ChildState {
        match (&self.outbox, &self.confirmation) {
            (None, _) => ChildState::None,
            (Some(o), _) if o.relayed_at.is_none() => ChildState::NotRelayed,
            (Some(_), None) => ChildState::Pending,
            (Some(_), Some(c)) => {
                let states: Vec<DeliveryState> = c.deliveries.iter().map(|d| d.state()).collect();
                if states.contains(&DeliveryState::DeadLettered) {
                    ChildState::Failed
                } else if states.contains(&DeliveryState::Pending) {
                    ChildState::Pending
                } else {
                    ChildState::Delivered
                }
            }
        }
    }

    /// The dead-lettered deliveries: the failed leaves.
    pub fn failed(&self) -> Vec<&Delivery> {
        self.confirmation
            .iter()
            .flat_map(|c| c.deliveries.iter())
            .filter(|d| d.state() == DeliveryState::DeadLettered)
            .collect()
    }

    pub fn json(&self) -> Value {
        json!({
            "state": self.state().name(),
            "outbox": self.outbox.as_ref().map(|o| json!({
                "created_at": json::timestamp(&o.created_at),
                "relayed_at": json::timestamp(&o.relayed_at),
                "relay_attempts": o.attempts, "last_error": o.last_error,
                "email": o.contact.as_ref().map(|c| c.email.clone()).unwrap_or_default(),
                "phone": o.contact.as_ref().map(|c| c.phone.clone()).unwrap_or_default(),
            })),
            "deliveries": self.confirmation.iter().flat_map(|c| c.deliveries.iter()).map(delivery_json).collect::<Vec<_>>(),
            "attempts": self.confirmation.iter().flat_map(|c| c.attempts.iter()).map(attempt_json).collect::<Vec<_>>(),
            "notifier_unreachable": self.unreachable,
        })
    }

    /// The child under the timeline of `txn show`.
    pub fn print(&self) {
        let Some(outbox) = &self.outbox else {
            return;
        };
        match &outbox.relayed_at {
            Some(_) => println!(
                "  confirmation: {}, relayed {} ({} relay attempt{})",
                self.state().name(),
                json::timestamp(&outbox.relayed_at)
                    .as_str()
                    .unwrap_or_default(),
                outbox.attempts,
                if outbox.attempts == 1 { "" } else { "s" }
            ),
            None => println!(
                "  confirmation: recorded with the commit, not relayed yet ({} attempts{})",
                outbox.attempts,
                if outbox.last_error.is_empty() {
                    String::new()
                } else {
                    format!("; last error: {}", outbox.last_error)
                }
            ),
        }
        if let Some(why) = &self.unreachable {
            println!("    the notifier did not answer: {why}");
        }
        let Some(confirmation) = &self.confirmation else {
            return;
        };
        if confirmation.deliveries.is_empty() {
            println!("    no channel: the buyer gave no contact and registered no webhook");
        }
        for d in &confirmation.deliveries {
            println!(
                "    {:<7} {:<24} {:<14} {} attempt{}{}",
                channel_name(d.channel()),
                d.target,
                state_name(d.state()),
                d.attempts,
                if d.attempts == 1 { "" } else { "s" },
                if d.last_error.is_empty() {
                    String::new()
                } else {
                    format!("  last error: {}", d.last_error)
                }
            );
            for a in confirmation
                .attempts
                .iter()
                .filter(|a| a.delivery_id == d.delivery_id)
            {
                println!(
                    "      #{} {}{}",
                    a.attempt,
                    if a.delivered { "DELIVERED" } else { "FAILED" },
                    if a.error.is_empty() {
                        String::new()
                    } else {
                        format!("  {}", a.error)
                    }
                );
            }
        }
    }
}
