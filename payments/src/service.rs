//! The `ticketdrop.v1.PaymentsService` gRPC service: validates each request, runs it
//! under its idempotency key or txid, and applies the "lost response" fault after a
//! write commits.

use prost::Message;
use proto::v1::payments_service_server::PaymentsService;
use proto::v1::*;
use server_kit::validate;
use tonic::{Request, Response, Status};

use crate::error::{Error, Result};
use crate::idempotency::{self, Replayable};
use crate::lifecycle::{self, Payments};
use crate::model::{self, NewAuthorization};
use crate::two_phase;

/// Payments backed by PostgreSQL and the simulated card network.
#[derive(Clone)]
pub struct PaymentsApi {
    payments: Payments,
}

impl PaymentsApi {
    pub fn new(payments: Payments) -> Self {
        Self { payments }
    }

    /// Fault injection: the write committed, but the caller never hears of it.
    fn deliver<T>(&self, answer: T) -> Result<Response<T>> {
        if self.payments.network.lose_response() {
            tracing::info!("losing a response after commit (fault injection)");
            return Err(Error::ResponseLost);
        }
        Ok(Response::new(answer))
    }

    async fn authorize_keyed(&self, request: &AuthorizeRequest) -> Result<AuthorizeResponse> {
        let auth = NewAuthorization::try_from(request)?;
        let key = model::idempotency_key(&request.idempotency_key)?;
        let hash = idempotency::request_hash(
            "authorize",
            &AuthorizeRequest {
                idempotency_key: String::new(),
                ..request.clone()
            },
        );
        if let Some(answer) = self
            .replay::<AuthorizeResponse>("authorize", &key, &hash)
            .await?
        {
            return answer;
        }
        let answer = lifecycle::ask_network(&self.payments.network, &auth).await?;
        let mut client = self.payments.pool.get().await?;
        let tx = client.transaction().await?;
        if let Some(answer) = idempotency::claim::<AuthorizeResponse>(
            &tx,
            "authorize",
            &key,
            &hash,
            self.payments.key_retention_hours,
        )
        .await?
        {
            return answer;
        }
        let result = lifecycle::insert_payment(&tx, &self.payments, &auth, &answer, None)
            .await
            .map(|payment| AuthorizeResponse {
                payment: Some(payment),
                replayed: false,
            });
        idempotency::finish(tx, &key, result).await
    }

    /// The compensation of an Authorize, by its key: voids what the key authorized, or
    /// records the compensation so that the Authorize, arriving later, is refused.
    async fn cancel_authorization_keyed(&self, key: &str) -> Result<CancelAuthorizationResponse> {
        let key = model::idempotency_key(key).map_err(|_| {
            server_kit::status::FieldError::new(
                "authorize_idempotency_key",
                "must be 1 to 255 characters",
            )
        })?;
        let mut client = self.payments.pool.get().await?;
        let tx = client.transaction().await?;
        let found =
            idempotency::compensate(&tx, "authorize", &key, self.payments.key_retention_hours)
                .await?;
        let answer = match found {
            idempotency::Compensation::Recorded => CancelAuthorizationResponse {
                payment: None,
                null_compensation: true,
            },
            // The Authorize was refused (declined): nothing is held.
            idempotency::Compensation::Ran(_, code) if code != 0 => CancelAuthorizationResponse {
                payment: None,
                null_compensation: false,
            },
            idempotency::Compensation::Ran(stored, _) => {
                let authorized = AuthorizeResponse::decode(stored.as_slice())
                    .ok()
                    .and_then(|answer| answer.payment)
                    .ok_or_else(|| {
                        Error::Replayed(Status::internal(format!(
                            "the stored answer of authorization {key} is unreadable"
                        )))
                    })?;
                let payment = lifecycle::lock_payment(&tx, &authorized.payment_id).await?;
                let payment = if payment.state() == PaymentState::Authorized {
                    lifecycle::void(&tx, &payment, PaymentState::Voided).await?
                } else {
                    payment
                };
                CancelAuthorizationResponse {
                    payment: Some(payment),
                    null_compensation: false,
                }
            }
        };
        tx.commit().await?;
        Ok(answer)
    }

    /// Capture, void or refund under an idempotency key.
    async fn change_keyed<R: Replayable>(
        &self,
        operation: &'static str,
        key: &str,
        hash: &[u8],
        payment_id: &str,
        change: Change,
        wrap: fn(Payment) -> R,
    ) -> Result<R> {
        let key = model::idempotency_key(key)?;
        let payment_id = validate::id("payment_id", payment_id)?;
        if let Some(answer) = self.replay::<R>(operation, &key, hash).await? {
            return answer;
        }
        self.payments.network.delay().await;
        let mut client = self.payments.pool.get().await?;
        let tx = client.transaction().await?;
        if let Some(answer) = idempotency::claim::<R>(
            &tx,
            operation,
            &key,
            hash,
            self.payments.key_retention_hours,
        )
        .await?
        {
            return answer;
        }
        let result = async {
            let payment = lifecycle::lock_payment(&tx, &payment_id).await?;
            match change {
                Change::Capture(amount) => lifecycle::capture(&tx, &payment, amount).await,
                Change::Void => lifecycle::void(&tx, &payment, PaymentState::Voided).await,
                Change::Refund(amount) => lifecycle::refund(&tx, &payment, amount).await,
            }
        }
        .await
        .map(wrap);
        idempotency::finish(tx, &key, result).await
    }

    async fn replay<R: Replayable>(
        &self,
        operation: &str,
        key: &str,
        hash: &[u8],
    ) -> Result<Option<Result<R>>> {
        let client = self.payments.pool.get().await?;
        idempotency::replay::<R>(&client, operation, key, hash).await
    }
}

enum Change {
    Capture(Option<i64>),
    Void,
    Refund(Option<i64>),
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl PaymentsService for PaymentsApi {
    async fn authorize(&self, request: Request<AuthorizeRequest>) -> Reply<AuthorizeResponse> {
        // An authorization that reached payments goes to the end, whatever the caller
        // does: a card network, once asked, authorizes even if the merchant hung up. So
        // a caller that gave up (its timeout) may see the authorization land later —
        // after it compensated the step; the key's barrier then refuses it.
        let api = self.clone();
        let request = request.into_inner();
        let answer = tokio::spawn(async move {
            let answer = api.authorize_keyed(&request).await;
            // Counted when it ends, heard by its caller or not.
            let outcome = match &answer {
                Ok(_) => "authorized",
                Err(Error::Declined { .. }) => "declined",
                Err(Error::AuthorizationCompensated(_)) => "compensated",
                Err(error) if error.is_definite() => "refused",
                Err(_) => "failed",
            };
            metrics::counter!("ticketdrop_payments_authorizations_total", "outcome" => outcome)
                .increment(1);
            answer
        })
        .await
        .map_err(|error| Status::internal(format!("the authorization task failed: {error}")))??;
        Ok(self.deliver(answer)?)
    }

    async fn cancel_authorization(
        &self,
        request: Request<CancelAuthorizationRequest>,
    ) -> Reply<CancelAuthorizationResponse> {
        let answer = self
            .cancel_authorization_keyed(&request.get_ref().authorize_idempotency_key)
            .await?;
        Ok(self.deliver(answer)?)
    }

    async fn capture(&self, request: Request<CaptureRequest>) -> Reply<CaptureResponse> {
        let r = request.get_ref();
        let amount = model::optional_amount("amount_cents", r.amount_cents)?;
        let hash = idempotency::request_hash(
            "capture",
            &CaptureRequest {
                idempotency_key: String::new(),
                ..r.clone()
            },
        );
        let answer = self
            .change_keyed(
                "capture",
                &r.idempotency_key,
                &hash,
                &r.payment_id,
                Change::Capture(amount),
                |payment| CaptureResponse {
                    payment: Some(payment),
                    replayed: false,
                },
            )
            .await?;
        lose_capture_response()?;
        Ok(self.deliver(answer)?)
    }

    async fn void(&self, request: Request<VoidRequest>) -> Reply<VoidResponse> {
        let r = request.get_ref();
        let hash = idempotency::request_hash(
            "void",
            &VoidRequest {
                idempotency_key: String::new(),
                ..r.clone()
            },
        );
        let answer = self
            .change_keyed(
                "void",
                &r.idempotency_key,
                &hash,
                &r.payment_id,
                Change::Void,
                |payment| VoidResponse {
                    payment: Some(payment),
                    replayed: false,
                },
            )
            .await?;
        Ok(self.deliver(answer)?)
    }

    async fn refund(&self, request: Request<RefundRequest>) -> Reply<RefundResponse> {
        let r = request.get_ref();
        let amount = model::optional_amount("amount_cents", r.amount_cents)?;
        let hash = idempotency::request_hash(
            "refund",
            &RefundRequest {
                idempotency_key: String::new(),
                ..r.clone()
            },
        );
        let answer = self
            .change_keyed(
                "refund",
                &r.idempotency_key,
                &hash,
                &r.payment_id,
                Change::Refund(amount),
                |payment| RefundResponse {
                    payment: Some(payment),
                    replayed: false,
                },
            )
            .await?;
        Ok(self.deliver(answer)?)
    }

    async fn get_payment(&self, request: Request<GetPaymentRequest>) -> Reply<GetPaymentResponse> {
        let payment_id = validate::id("payment_id", &request.get_ref().payment_id)?;
        let payment = lifecycle::get(&self.payments.pool, &payment_id).await?;
        Ok(Response::new(GetPaymentResponse {
            payment: Some(payment),
        }))
    }

    async fn list_by_order(
        &self,
        request: Request<ListByOrderRequest>,
    ) -> Reply<ListByOrderResponse> {
        let order_id = validate::id("order_id", &request.get_ref().order_id)?;
        let payments = lifecycle::by_order(&self.payments.pool, &order_id).await?;
        Ok(Response::new(ListByOrderResponse { payments }))
    }

    async fn prepare_payment(
        &self,
        request: Request<PreparePaymentRequest>,
    ) -> Reply<PreparePaymentResponse> {
        let r = request.get_ref();
        let txid = validate::txid("txid", &r.txid)?;
        let auth = NewAuthorization::try_from(r)?;
        let log_id = validate::optional_id("log_id", &r.log_id)?;
        let payment = two_phase::prepare(&self.payments, &txid, &auth, log_id.as_deref()).await?;
        Ok(self.deliver(PreparePaymentResponse {
            payment: Some(payment),
        })?)
    }

    async fn commit_payment(
        &self,
        request: Request<CommitPaymentRequest>,
    ) -> Reply<CommitPaymentResponse> {
        let txid = validate::txid("txid", &request.get_ref().txid)?;
        let log_id = validate::optional_id("log_id", &request.get_ref().log_id)?;
        let (already_done, payment) =
            two_phase::commit(&self.payments, &txid, log_id.as_deref()).await?;
        lose_capture_response()?;
        Ok(self.deliver(CommitPaymentResponse {
            state: two_phase::state(true).into(),
            already_done,
            payment: Some(payment),
        })?)
    }

    async fn abort_payment(
        &self,
        request: Request<AbortPaymentRequest>,
    ) -> Reply<AbortPaymentResponse> {
        let txid = validate::txid("txid", &request.get_ref().txid)?;
        let log_id = validate::optional_id("log_id", &request.get_ref().log_id)?;
        let (already_done, tombstone) =
            two_phase::abort(&self.payments, &txid, log_id.as_deref()).await?;
        Ok(self.deliver(AbortPaymentResponse {
            state: two_phase::state(false).into(),
            already_done,
            tombstone,
        })?)
    }

    async fn list_in_doubt_payments(
        &self,
        request: Request<ListInDoubtPaymentsRequest>,
    ) -> Reply<ListInDoubtPaymentsResponse> {
        let log_id = validate::optional_id("log_id", &request.get_ref().log_id)?;
        let (transactions, other_logs) =
            two_phase::list_in_doubt(&self.payments, log_id.as_deref()).await?;
        Ok(Response::new(ListInDoubtPaymentsResponse {
            transactions,
            other_logs,
        }))
    }

    async fn set_faults(&self, request: Request<SetFaultsRequest>) -> Reply<SetFaultsResponse> {
        let faults = request.into_inner().faults.unwrap_or_default();
        let faults = self.payments.network.set_faults(faults)?;
        Ok(Response::new(SetFaultsResponse {
            faults: Some(faults),
        }))
    }

    async fn get_faults(&self, _request: Request<GetFaultsRequest>) -> Reply<GetFaultsResponse> {
        Ok(Response::new(GetFaultsResponse {
            faults: Some(self.payments.network.faults()),
        }))
    }
}

/// The chaos lab's `payments::lose_capture_response` failpoint: the capture (or the 2PC
/// commit, which captures) is committed, and its answer is lost on the way back.
fn lose_capture_response() -> Result<()> {
    fail::fail_point!("payments::lose_capture_response", |_| {
        server_kit::failpoint_fired("payments::lose_capture_response");
        tracing::info!("losing a capture's response after commit (failpoint)");
        Err(Error::ResponseLost)
    });
    Ok(())
}
