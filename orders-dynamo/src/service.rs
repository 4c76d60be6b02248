//! The `ticketdrop.v1.OrdersService` gRPC service: validates each request into a domain
//! type, runs it, and maps the outcome to a response or a status.

use proto::error::FieldError;
use proto::v1::orders_service_server::OrdersService;
use proto::v1::*;
use server_kit::validate;
use tonic::{Request, Response, Status};

use crate::model::{self, NewOrder};
use crate::queries;
use crate::store::Store;
use crate::{fenced, saga, two_phase};

/// Orders backed by DynamoDB.
pub struct Orders {
    store: Store,
}

impl Orders {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl OrdersService for Orders {
    async fn create_order(
        &self,
        request: Request<CreateOrderRequest>,
    ) -> Reply<CreateOrderResponse> {
        let r = request.get_ref();
        let saga_id = validate::txid("saga_id", &r.saga_id)?;
        let order = NewOrder::try_from(r)?;
        let (order, barrier) = saga::create_order(&self.store, &saga_id, &order).await?;
        Ok(Response::new(CreateOrderResponse {
            order: Some(order.to_proto()),
            barrier: barrier.into(),
        }))
    }

    async fn cancel_order(
        &self,
        request: Request<CancelOrderRequest>,
    ) -> Reply<CancelOrderResponse> {
        let r = request.get_ref();
        let saga_id = validate::txid("saga_id", &r.saga_id)?;
        let order_id = validate::id("order_id", &r.order_id)?;
        let (order, barrier) = saga::cancel_order(&self.store, &saga_id, &order_id).await?;
        Ok(Response::new(CancelOrderResponse {
            order: order.map(|o| o.to_proto()),
            barrier: barrier.into(),
        }))
    }

    async fn confirm_order(
        &self,
        request: Request<ConfirmOrderRequest>,
    ) -> Reply<ConfirmOrderResponse> {
        let r = request.get_ref();
        let saga_id = validate::txid("saga_id", &r.saga_id)?;
        let order_id = validate::id("order_id", &r.order_id)?;
        let payment_id = validate::id("payment_id", &r.payment_id)?;
        let (order, barrier) =
            saga::confirm_order(&self.store, &saga_id, &order_id, &payment_id).await?;
        Ok(Response::new(ConfirmOrderResponse {
            order: Some(order.to_proto()),
            barrier: barrier.into(),
        }))
    }

    async fn prepare_order(
        &self,
        request: Request<PrepareOrderRequest>,
    ) -> Reply<PrepareOrderResponse> {
        let r = request.get_ref();
        let txid = validate::txid("txid", &r.txid)?;
        let order = NewOrder::try_from(r)?;
        let payment_id = optional_id("payment_id", &r.payment_id)?;
        let log_id = optional_id("log_id", &r.log_id)?;
        let order =
            two_phase::prepare(&self.store, &txid, &order, payment_id, log_id.as_deref()).await?;
        Ok(Response::new(PrepareOrderResponse {
            order: Some(order.to_proto()),
        }))
    }

    async fn commit_order(
        &self,
        request: Request<CommitOrderRequest>,
    ) -> Reply<CommitOrderResponse> {
        let r = request.get_ref();
        let txid = validate::txid("txid", &r.txid)?;
        let payment_id = optional_id("payment_id", &r.payment_id)?.unwrap_or_default();
        let log_id = optional_id("log_id", &r.log_id)?;
        let (state, already_done, order) =
            two_phase::commit(&self.store, &txid, &payment_id, log_id.as_deref()).await?;
        Ok(Response::new(CommitOrderResponse {
            state: state.into(),
            already_done,
            order: Some(order.to_proto()),
        }))
    }

    async fn abort_order(&self, request: Request<AbortOrderRequest>) -> Reply<AbortOrderResponse> {
        let txid = validate::txid("txid", &request.get_ref().txid)?;
        let log_id = optional_id("log_id", &request.get_ref().log_id)?;
        let (already_done, tombstone) =
            two_phase::abort(&self.store, &txid, log_id.as_deref()).await?;
        Ok(Response::new(AbortOrderResponse {
            state: ParticipantTxnState::Aborted.into(),
            already_done,
            tombstone,
        }))
    }

    async fn list_in_doubt_orders(
        &self,
        request: Request<ListInDoubtOrdersRequest>,
    ) -> Reply<ListInDoubtOrdersResponse> {
        let log_id = optional_id("log_id", &request.get_ref().log_id)?;
        let (transactions, other_logs) =
            two_phase::list_in_doubt(&self.store, log_id.as_deref()).await?;
        Ok(Response::new(ListInDoubtOrdersResponse {
            transactions,
            other_logs,
        }))
    }

    async fn place_order_fenced(
        &self,
        request: Request<PlaceOrderFencedRequest>,
    ) -> Reply<PlaceOrderFencedResponse> {
        let r = request.get_ref();
        let txid = validate::txid("txid", &r.txid)?;
        let order = NewOrder::try_from(r)?;
        let payment_id = optional_id("payment_id", &r.payment_id)?.unwrap_or_default();
        let token = model::fencing_token_or_unfenced(r.fencing_token)?;
        let order = fenced::place(&self.store, &txid, &order, &payment_id, token).await?;
        Ok(Response::new(PlaceOrderFencedResponse {
            order: Some(order.to_proto()),
        }))
    }

    async fn cancel_order_fenced(
        &self,
        request: Request<CancelOrderFencedRequest>,
    ) -> Reply<CancelOrderFencedResponse> {
        let r = request.get_ref();
        let txid = validate::txid("txid", &r.txid)?;
        let order_id = validate::id("order_id", &r.order_id)?;
        let token = model::fencing_token(r.fencing_token)?;
        let order = fenced::cancel(&self.store, &txid, &order_id, token).await?;
        Ok(Response::new(CancelOrderFencedResponse {
            order: Some(order.to_proto()),
        }))
    }

    async fn get_order(&self, request: Request<GetOrderRequest>) -> Reply<GetOrderResponse> {
        let r = request.get_ref();
        let order = match (r.order_id.as_str(), r.idempotency_key.as_str()) {
            ("", "") => {
                return Err(FieldError::new("order_id", "give order_id or idempotency_key").into());
            }
            (order_id, "") => {
                let order_id = validate::id("order_id", order_id)?;
                self.store.require_order(&order_id).await?
            }
            ("", key) => queries::order_by_idempotency_key(&self.store, key).await?,
            _ => {
                return Err(FieldError::new(
                    "idempotency_key",
                    "give order_id or idempotency_key, not both",
                )
                .into());
            }
        };
        server_kit::auth::caller(&request)?.act_for(&order.user_id)?;
        Ok(Response::new(GetOrderResponse {
            order: Some(order.to_proto()),
        }))
    }

    async fn list_orders(&self, request: Request<ListOrdersRequest>) -> Reply<ListOrdersResponse> {
        let r = request.get_ref();
        let user_id = validate::id("user_id", &r.user_id)?;
        server_kit::auth::caller(&request)?.act_for(&user_id)?;
        let page_size = validate::page_size("page_size", r.page_size, 20, 100)?;
        let (orders, next_page_token) = queries::list_orders(
            &self.store,
            &user_id,
            i32::try_from(page_size).expect("at most 100"),
            &r.page_token,
        )
        .await?;
        Ok(Response::new(ListOrdersResponse {
            orders: orders.iter().map(|o| o.to_proto()).collect(),
            next_page_token,
        }))
    }

    async fn verify_ticket(
        &self,
        request: Request<VerifyTicketRequest>,
    ) -> Reply<VerifyTicketResponse> {
        let token = &request.get_ref().token;
        if token.is_empty() {
            return Err(FieldError::new("token", "must not be empty").into());
        }
        Ok(Response::new(
            queries::verify_ticket(&self.store, token).await?,
        ))
    }
}

fn optional_id(field: &str, value: &str) -> Result<Option<String>, FieldError> {
    match value {
        "" => Ok(None),
        value => validate::id(field, value).map(Some),
    }
}
