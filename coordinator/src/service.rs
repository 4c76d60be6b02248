//! The `ticketdrop.v1.CoordinatorService` gRPC service: Purchase (log BEGIN, drive the
//! protocol in its own task, answer within the deadline), replays for repeated
//! idempotency keys, GetDecision for participants, and the inspection RPCs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message;
use proto::v1::coordinator_service_server::CoordinatorService;
use proto::v1::*;
use server_kit::rate::RateLimits;
use server_kit::validate;
use tonic::{Code, Request, Response, Status};
use tracing::Instrument;

use crate::admission::{self, Claim};
use crate::driver::{Driver, Run, Step};
use crate::error::{Error, Result};
use crate::inspect;
use crate::log::{self, Begun, State, TxnRecord};
use crate::model::Purchase;
use crate::ownership::Owned;
use crate::{lease, saga, two_pc, watch};

type BoxStream<T> =
    std::pin::Pin<Box<dyn futures::Stream<Item = std::result::Result<T, Status>> + Send>>;

/// How long a repeated idempotency key waits for the first purchase to finish.
const REPLAY_WAIT: Duration = Duration::from_secs(10);

/// The transaction manager.
pub struct Coordinator {
    driver: Driver,
    /// How often WatchPurchase re-reads a purchase that has not moved.
    watch_interval: Duration,
    /// Purchases per fan and per client address.
    limits: Arc<RateLimits>,
}

impl Coordinator {
    pub fn new(driver: Driver, watch_interval: Duration, limits: Arc<RateLimits>) -> Self {
        Self {
            driver,
            watch_interval,
            limits,
        }
    }

    async fn purchase(
        &self,
        purchase: Purchase,
        received_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<PurchaseResponse> {
        // A key that already has a purchase gets that purchase's outcome, whatever
        // happened to the event since: it needs no admission and writes nothing.
        if let Some(txn) = self
            .driver
            .log
            .find_by_key(&purchase.idempotency_key)
            .await?
        {
            return self.replay(txn, &purchase).await;
        }
        // A queue in front of the claim (crash tests: `sleep(ms)`).
        fail::fail_point!("purchase::before_claim");
        // The waiting room: refused here, nothing is written anywhere.
        let claim = admission::claim(&self.driver, &purchase, received_at).await?;
        if matches!(claim, Claim::NoRoom)
            && purchase.quantity > 0
            && let Some(status) = self.driver.sold_out.answer(&purchase.event_id)
        {
            return Err(Error::Refused {
                txid: String::new(),
                status,
            });
        }
        let id = uuid::Uuid::now_v7().simple().to_string();
        let (txid, order_id) = (format!("tx-{id}"), format!("ord-{id}"));
        server_kit::trace::record_txid(&txid);
        let (txn, owned) = match self
            .driver
            .log
            .begin(&txid, &order_id, &purchase, claim.admission_id())
            .await?
        {
            Begun::New(txn, owned) => (txn, owned),
            Begun::Existing(txn) => {
                // The same key raced in: it claimed the same admission, which its
                // purchase releases.
                return self.replay(txn, &purchase).await;
            }
        };
        // The protocol runs in its own task: a caller that gives up or disconnects
        // never leaves a purchase half-driven.
        let driver = self.driver.clone();
        let task = tokio::spawn(
            async move { drive(&driver, txn, owned, claim).await }
                // The purchase's calls to the participants stay in the caller's trace.
                .in_current_span(),
        );
        let joined = match purchase.deadline {
            Some(deadline) => match tokio::time::timeout(deadline, task).await {
                Ok(joined) => joined,
                Err(_) => {
                    return Err(Error::OutcomeUnknown {
                        txid,
                        cause: format!("the deadline of {deadline:?} passed"),
                        deadline: true,
                    });
                }
            },
            None => task.await,
        };
        joined.unwrap_or_else(|error| {
            Err(Error::OutcomeUnknown {
                txid,
                cause: format!("the purchase task failed: {error}"),
                deadline: false,
            })
        })
    }

    /// The answer a repeated idempotency key gets: the first purchase's outcome.
    async fn replay(&self, txn: TxnRecord, purchase: &Purchase) -> Result<PurchaseResponse> {
        let first = &txn.purchase;
        if (
            &first.user_id,
            &first.event_id,
            &first.seat_ids,
            first.quantity,
            first.protocol,
            &first.card_token,
        ) != (
            &purchase.user_id,
            &purchase.event_id,
            &purchase.seat_ids,
            purchase.quantity,
            purchase.protocol,
            &purchase.card_token,
        ) {
            return Err(Error::KeyReused(purchase.idempotency_key.clone()));
        }
        crate::metrics::replayed(purchase.protocol);
        let waited = Instant::now();
        let mut txn = txn;
        while !txn.state.is_finished() && waited.elapsed() < REPLAY_WAIT {
            tokio::time::sleep(Duration::from_millis(100)).await;
            txn = self.driver.log.load(&txn.txid).await?;
        }
        match txn.state {
            State::Committed => {
                let mut response =
                    PurchaseResponse::decode(txn.response.as_deref().unwrap_or_default())
                        .unwrap_or_default();
                response.replayed = true;
                Ok(response)
            }
            State::Aborted => Err(Error::Refused {
                status: Status::with_details(
                    Code::from(txn.error_code.unwrap_or(Code::Aborted as i32)),
                    txn.error.clone().unwrap_or_default(),
                    txn.error_details.clone().unwrap_or_default().into(),
                ),
                txid: txn.txid,
            }),
            _ => Err(Error::OutcomeUnknown {
                txid: txn.txid,
                cause: "the first purchase with this key is still running".into(),
                deadline: false,
            }),
        }
    }
}

/// Runs a freshly logged purchase under its protocol, then gives its admission back.
async fn drive(
    driver: &Driver,
    txn: TxnRecord,
    owned: Owned,
    claim: Claim,
) -> Result<PurchaseResponse> {
    let run = Arc::new(Run::fresh(driver, &txn, owned));
    if let Claim::Claimed { started_at, .. } = claim {
        run.record(
            Step::forward(Participant::WaitingRoom, "claim_admission"),
            1,
            started_at,
            StepOutcome::Ok,
            None,
        )
        .await;
    }
    let result = match txn.protocol {
        Protocol::TwoPhaseCommit => two_pc::run(&run, &txn).await,
        Protocol::Saga => saga::run(&run, &txn).await,
        Protocol::Lease => lease::run(&run, &txn).await,
        Protocol::Unspecified => unreachable!("validated at the edge"),
    };
    let result = unknown_unless_ended(&run, result);
    // Only an ended purchase frees its slot: one whose outcome is unknown is still in
    // flight, and so is one answered "aborted" whose undo is unfinished (a seat it sold
    // may still come back); recovery releases those once they are over.
    let ended = match &result {
        Ok(_) => Some(true),
        Err(Error::Refused { .. }) if !run.is_parked() => Some(false),
        Err(_) => None,
    };
    if let Some(committed) = ended
        && txn.admission_id.is_some()
    {
        // In the background: the answer does not wait for the room.
        tokio::spawn(
            async move { admission::release(&run, &txn, committed).await }.in_current_span(),
        );
    }
    result
}

/// What the caller hears of a run: its answer when the run ended the purchase, else
/// "outcome unknown" — when the log or Redis failed mid-way (recovery finishes it), and
/// whenever another coordinator took the purchase over, whatever this run concluded:
/// the owner decides, and the caller looks it up (or retries the key).
pub fn unknown_unless_ended(
    run: &Run,
    result: Result<PurchaseResponse>,
) -> Result<PurchaseResponse> {
    if run.is_lost() {
        return Err(Error::OutcomeUnknown {
            txid: run.txid.clone(),
            cause: "another coordinator took the purchase over and finishes it".into(),
            deadline: false,
        });
    }
    match result {
        Err(
            error @ (Error::Log(_)
            | Error::LogPool(_)
            | Error::StepLog(_)
            | Error::Redis(_)
            | Error::NotOwner { .. }
            | Error::DecisionConflict { .. }
            | Error::Corrupt(_)),
        ) => Err(Error::OutcomeUnknown {
            txid: run.txid.clone(),
            cause: error.to_string(),
            deadline: false,
        }),
        other => other,
    }
}

type Reply<T> = std::result::Result<Response<T>, Status>;

#[tonic::async_trait]
impl CoordinatorService for Coordinator {
    async fn purchase(&self, request: Request<PurchaseRequest>) -> Reply<PurchaseResponse> {
        let received_at = chrono::Utc::now();
        let purchase = Purchase::try_from(request.get_ref())?;
        let caller = server_kit::auth::caller(&request)?;
        caller.act_for(&purchase.user_id)?;
        self.limits.check(
            "Purchase",
            &caller,
            request.remote_addr().map(|addr| addr.ip()),
        )?;
        let protocol = purchase.protocol;
        let answer = self
            .purchase(purchase, received_at)
            .await
            .map_err(Status::from);
        crate::metrics::purchase_answered(protocol, &answer);
        Ok(Response::new(answer?))
    }

    async fn watch_purchase(
        &self,
        request: Request<WatchPurchaseRequest>,
    ) -> Reply<BoxStream<WatchPurchaseResponse>> {
        let caller = server_kit::auth::caller(&request)?;
        let request = request.get_ref();
        let txn = match (request.txid.is_empty(), request.idempotency_key.is_empty()) {
            (false, true) => {
                let txid = validate::id("txid", &request.txid)?;
                self.driver.log.load(&txid).await?
            }
            (true, false) => self
                .driver
                .log
                .find_by_key(&request.idempotency_key)
                .await?
                .ok_or_else(|| {
                    Error::TxnNotFound(format!("with key {:?}", request.idempotency_key))
                })?,
            _ => {
                return Err(server_kit::status::FieldError::new(
                    "txid",
                    "give txid or idempotency_key, exactly one",
                )
                .into());
            }
        };
        caller.act_for(&txn.purchase.user_id)?;
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(watch::spawn(
                self.driver.log.clone(),
                self.driver.participants.notifier.clone(),
                txn.txid,
                request.after_sequence,
                self.watch_interval,
            )),
        )))
    }

    async fn get_transaction(
        &self,
        request: Request<GetTransactionRequest>,
    ) -> Reply<GetTransactionResponse> {
        let txid = validate::id("txid", &request.get_ref().txid)?;
        Ok(Response::new(GetTransactionResponse {
            transaction: Some(inspect::get(&self.driver.log, &txid).await?),
        }))
    }

    async fn list_transactions(
        &self,
        request: Request<ListTransactionsRequest>,
    ) -> Reply<ListTransactionsResponse> {
        #[allow(unused_mut)]
        let (mut transactions, next_page_token) =
            inspect::list(&self.driver.log, request.get_ref()).await?;
        // The chaos lab's lying inspection (a test build only): committed purchases are
        // left out of the answer, to show that the lab resolves outcomes from the stores.
        fail::fail_point!("inspect::hide_committed", |_| {
            server_kit::failpoint_fired("inspect::hide_committed");
            transactions.retain(|t| t.state() != TransactionState::Committed);
            Ok(Response::new(ListTransactionsResponse {
                transactions: std::mem::take(&mut transactions),
                next_page_token: next_page_token.clone(),
            }))
        });
        Ok(Response::new(ListTransactionsResponse {
            transactions,
            next_page_token,
        }))
    }

    async fn list_pending(
        &self,
        _request: Request<ListPendingRequest>,
    ) -> Reply<ListPendingResponse> {
        Ok(Response::new(ListPendingResponse {
            transactions: inspect::pending(&self.driver.log).await?,
        }))
    }

    async fn failure_summary(
        &self,
        request: Request<FailureSummaryRequest>,
    ) -> Reply<FailureSummaryResponse> {
        Ok(Response::new(
            inspect::failures(&self.driver.log, request.get_ref()).await?,
        ))
    }

    async fn list_coordinators(
        &self,
        request: Request<ListCoordinatorsRequest>,
    ) -> Reply<ListCoordinatorsResponse> {
        let event_id = &request.get_ref().event_id;
        if !event_id.is_empty() {
            validate::id("event_id", event_id)?;
        }
        Ok(Response::new(
            inspect::coordinators(&self.driver.log, event_id).await?,
        ))
    }

    async fn get_purchase_state(
        &self,
        request: Request<GetPurchaseStateRequest>,
    ) -> Reply<GetPurchaseStateResponse> {
        let key = &request.get_ref().idempotency_key;
        if key.is_empty() || key.len() > 255 {
            return Err(server_kit::status::FieldError::new(
                "idempotency_key",
                "must be 1 to 255 characters",
            )
            .into());
        }
        Ok(Response::new(
            match self.driver.log.find_by_key(key).await? {
                None => GetPurchaseStateResponse {
                    logged: false,
                    txid: String::new(),
                    state: TransactionState::Unspecified.into(),
                },
                Some(txn) => GetPurchaseStateResponse {
                    logged: true,
                    state: inspect::transaction(&txn, Vec::new()).state,
                    txid: txn.txid,
                },
            },
        ))
    }

    async fn get_decision(
        &self,
        request: Request<GetDecisionRequest>,
    ) -> Reply<GetDecisionResponse> {
        let txid = validate::id("txid", &request.get_ref().txid)?;
        let decision = match self.driver.log.find(&txid).await? {
            // Presumed abort: the log never heard of it.
            None => Decision::Abort,
            Some(txn) => match txn.decision {
                Some(log::Decision::Commit) => Decision::Commit,
                Some(log::Decision::Abort) => Decision::Abort,
                None if txn.state == State::Aborted => Decision::Abort,
                None => Decision::Undecided,
            },
        };
        Ok(Response::new(GetDecisionResponse {
            decision: decision.into(),
        }))
    }
}
