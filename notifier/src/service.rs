//! The `ticketdrop.v1.NotifierService` gRPC service: validates each request and answers
//! from the store. Sending is the dispatcher's; no RPC waits for a channel.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use proto::v1::notifier_service_server::NotifierService;
use proto::v1::*;
use server_kit::{convert, validate};
use tokio::sync::Notify;
use tonic::{Request, Response, Status};

use crate::error::Result;
use crate::store::{self, Store};

type Reply<T> = std::result::Result<Response<T>, Status>;

pub struct NotifierApi {
    store: Store,
    max_attempts: i32,
    wake: Arc<Notify>,
}

impl NotifierApi {
    pub fn new(store: Store, max_attempts: i32, wake: Arc<Notify>) -> Self {
        Self {
            store,
            max_attempts,
            wake,
        }
    }

    async fn enqueue(&self, request: &EnqueueRequest) -> Result<EnqueueResponse> {
        validate::txid("txid", &request.txid)?;
        validate::id("user_id", &request.user_id)?;
        validate::id("event_id", &request.event_id)?;
        validate::id("order_id", &request.order_id)?;
        let contact = request.contact.clone().unwrap_or_default();
        let email = (!contact.email.is_empty())
            .then(|| validate::email("contact.email", &contact.email))
            .transpose()?;
        let phone = (!contact.phone.is_empty())
            .then(|| validate::phone("contact.phone", &contact.phone))
            .transpose()?;
        let (created, deliveries) = self
            .store
            .enqueue(
                request,
                email.as_deref(),
                phone.as_deref(),
                self.max_attempts,
            )
            .await?;
        if created {
            tracing::info!(txid = %request.txid, deliveries = deliveries.len(), "confirmation enqueued");
            self.wake.notify_one();
        }
        Ok(EnqueueResponse {
            created,
            deliveries,
        })
    }
}

#[tonic::async_trait]
impl NotifierService for NotifierApi {
    async fn enqueue(&self, request: Request<EnqueueRequest>) -> Reply<EnqueueResponse> {
        Ok(Response::new(
            NotifierApi::enqueue(self, request.get_ref()).await?,
        ))
    }

    async fn register_webhook(
        &self,
        request: Request<RegisterWebhookRequest>,
    ) -> Reply<RegisterWebhookResponse> {
        let caller = server_kit::auth::caller(&request)?;
        let request = request.get_ref();
        let user_id = validate::id("user_id", &request.user_id)?;
        let url = validate::url("url", &request.url)?;
        caller.act_for(&user_id)?;
        let (endpoint_id, secret) = self
            .store
            .register_webhook(&user_id, &url)
            .await
            .map_err(Status::from)?;
        Ok(Response::new(RegisterWebhookResponse {
            endpoint_id,
            secret,
        }))
    }

    async fn get_confirmation(
        &self,
        request: Request<GetConfirmationRequest>,
    ) -> Reply<GetConfirmationResponse> {
        let txid = validate::txid("txid", &request.get_ref().txid)?;
        let confirmation = self.store.confirmation(&txid).await?;
        server_kit::auth::caller(&request)?.act_for(&confirmation.user_id)?;
        Ok(Response::new(GetConfirmationResponse {
            confirmation: Some(confirmation),
        }))
    }

    async fn list_deliveries(
        &self,
        request: Request<ListDeliveriesRequest>,
    ) -> Reply<ListDeliveriesResponse> {
        let request = request.get_ref();
        let limit = validate::page_size("page_size", request.page_size, 50, 500)?;
        let txid = (!request.txid.is_empty())
            .then(|| validate::txid("txid", &request.txid))
            .transpose()?;
        let after = (!request.page_token.is_empty())
            .then(|| page_token(&request.page_token))
            .transpose()?;
        let (deliveries, next) = self
            .store
            .list(
                store::state_name(request.state()),
                store::channel_name(request.channel()),
                txid.as_deref(),
                limit,
                after,
            )
            .await
            .map_err(Status::from)?;
        Ok(Response::new(ListDeliveriesResponse {
            deliveries,
            next_page_token: next
                .map(|(at, id)| format!("{}:{id}", at.timestamp_micros()))
                .unwrap_or_default(),
        }))
    }

    async fn retry_delivery(
        &self,
        request: Request<RetryDeliveryRequest>,
    ) -> Reply<RetryDeliveryResponse> {
        let delivery_id = validate::id("delivery_id", &request.get_ref().delivery_id)?;
        let delivery = self
            .store
            .retry(&delivery_id, self.max_attempts)
            .await
            .map_err(Status::from)?;
        tracing::info!(delivery = %delivery_id, txid = %delivery.txid, "delivery re-driven");
        self.wake.notify_one();
        Ok(Response::new(RetryDeliveryResponse {
            delivery: Some(delivery),
        }))
    }

    async fn failure_summary(
        &self,
        request: Request<NotifierServiceFailureSummaryRequest>,
    ) -> Reply<NotifierServiceFailureSummaryResponse> {
        let request = request.get_ref();
        let since = match &request.since {
            Some(ts) => convert::from_timestamp("since", ts)?,
            None => Utc::now() - chrono::Duration::hours(1),
        };
        let group = match request.group_by.as_str() {
            "" | "error" => "error",
            "channel" => "channel",
            "state" => "state",
            other => {
                return Err(proto::error::FieldError::new(
                    "group_by",
                    format!("must be error, channel or state, got {other:?}"),
                )
                .into());
            }
        };
        let groups = self
            .store
            .failures(since, group)
            .await
            .map_err(Status::from)?;
        Ok(Response::new(NotifierServiceFailureSummaryResponse {
            total: groups.iter().map(|g| g.count).sum(),
            groups,
        }))
    }
}

fn page_token(token: &str) -> Result<(DateTime<Utc>, String), proto::error::FieldError> {
    let bad = || proto::error::FieldError::new("page_token", "is not a token this service gave");
    let (micros, id) = token.split_once(':').ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    let at = DateTime::from_timestamp_micros(micros).ok_or_else(bad)?;
    Ok((at, id.to_owned()))
}
