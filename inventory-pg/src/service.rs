//! The `ticketdrop.v1.InventoryService` gRPC service: validates each request into a
//! domain type, runs it, and maps the outcome to a response or a status.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use deadpool_postgres::Pool;
use proto::v1::inventory_service_server::InventoryService;
use proto::v1::*;
use server_kit::validate;
use tonic::{Request, Response, Status};

use crate::error::Error;
use crate::model::{FencedWrite, Hold, NewEvent, Prepare};
use crate::seat_map::SeatMaps;
use crate::sweeper::SweeperStats;
use crate::{browse, fenced, saga, two_phase};

/// Seat inventory backed by PostgreSQL.
pub struct Inventory {
    pool: Pool,
    default_hold_ttl: Duration,
    sweeper: Arc<SweeperStats>,
    maps: Arc<SeatMaps>,
}

impl Inventory {
    pub fn new(
        pool: Pool,
        default_hold_ttl: Duration,
        sweeper: Arc<SweeperStats>,
        maps: Arc<SeatMaps>,
    ) -> Self {
        Self {
            pool,
            default_hold_ttl,
            sweeper,
            maps,
        }
    }
}

type Reply<T> = Result<Response<T>, Status>;

fn reply<T>(result: Result<T, Error>) -> Reply<T> {
    result.map(Response::new).map_err(Status::from)
}

#[tonic::async_trait]
impl InventoryService for Inventory {
    async fn create_event(
        &self,
        request: Request<CreateEventRequest>,
    ) -> Reply<CreateEventResponse> {
        let event = NewEvent::try_from(request.into_inner())?;
        reply(
            browse::create_event(&self.pool, event)
                .await
                .map(|event| CreateEventResponse { event: Some(event) }),
        )
    }

    async fn list_events(&self, request: Request<ListEventsRequest>) -> Reply<ListEventsResponse> {
        let request = request.into_inner();
        let page_size = validate::page_size("page_size", request.page_size, 20, 100)?;
        reply(
            browse::list_events(&self.pool, page_size, &request.page_token)
                .await
                .map(|(events, next_page_token)| ListEventsResponse {
                    events,
                    next_page_token,
                }),
        )
    }

    async fn search_events(
        &self,
        request: Request<SearchEventsRequest>,
    ) -> Reply<SearchEventsResponse> {
        let request = request.into_inner();
        let query = validate::text("query", &request.query, 200)?;
        let page_size = validate::page_size("page_size", request.page_size, 20, 100)?;
        reply(
            browse::search_events(&self.pool, &query, page_size, &request.page_token)
                .await
                .map(|(results, next_page_token)| SearchEventsResponse {
                    results,
                    next_page_token,
                }),
        )
    }

    async fn get_event(&self, request: Request<GetEventRequest>) -> Reply<GetEventResponse> {
        let trusted = server_kit::auth::caller(&request).is_ok_and(|c| c.service || c.admin);
        let request = request.into_inner();
        let event_id = validate::id("event_id", &request.event_id)?;
        let (pool, include_seats) = (&self.pool, request.include_seats);
        let read = || browse::get_event(pool, &event_id, include_seats);
        if request.consistent_read {
            // Past the cache only for the mesh's services and operators: anyone may call
            // GetEvent, and fifty thousand consistent reads cost PostgreSQL twelve times
            // what the cache does.
            if !trusted {
                return Err(proto::error::with_reason(
                    tonic::Code::PermissionDenied,
                    proto::v1::ErrorReason::ScopeRequired,
                    "consistent_read needs a token with scope service (or admin); fans are \
                     served the cached map, which shows every sale answered before they asked",
                    [
                        ("required_scope", "service (or admin)".to_owned()),
                        ("field", "consistent_read".to_owned()),
                    ],
                ));
            }
            return reply(read().await);
        }
        self.maps
            .get(&event_id, include_seats, read)
            .await
            .map(Response::new)
    }

    async fn get_seat_counts(
        &self,
        request: Request<GetSeatCountsRequest>,
    ) -> Reply<GetSeatCountsResponse> {
        let event_id = validate::id("event_id", &request.get_ref().event_id)?;
        reply(
            browse::seat_counts(&self.pool, &event_id)
                .await
                .map(|c| GetSeatCountsResponse {
                    capacity: c.capacity,
                    available: c.available,
                    held: c.held,
                    sold: c.sold,
                    prepared: c.prepared,
                    max_fencing_token: c.max_fencing_token,
                }),
        )
    }

    async fn hold_seats(&self, request: Request<HoldSeatsRequest>) -> Reply<HoldSeatsResponse> {
        let hold = Hold::parse(request.get_ref(), self.default_hold_ttl)?;
        let _written = self.maps.writing();
        reply(saga::hold_seats(&self.pool, &hold).await)
    }

    async fn release_seats(
        &self,
        request: Request<ReleaseSeatsRequest>,
    ) -> Reply<ReleaseSeatsResponse> {
        let request = request.into_inner();
        let saga_id = validate::txid("saga_id", &request.saga_id)?;
        let event_id = validate::id("event_id", &request.event_id)?;
        let _written = self.maps.writing();
        reply(saga::release_seats(&self.pool, &saga_id, &event_id).await)
    }

    async fn confirm_seats(
        &self,
        request: Request<ConfirmSeatsRequest>,
    ) -> Reply<ConfirmSeatsResponse> {
        let request = request.into_inner();
        let saga_id = validate::txid("saga_id", &request.saga_id)?;
        let event_id = validate::id("event_id", &request.event_id)?;
        let order_id = validate::id("order_id", &request.order_id)?;
        let _written = self.maps.writing();
        reply(saga::confirm_seats(&self.pool, &saga_id, &event_id, &order_id).await)
    }

    async fn unsell_seats(
        &self,
        request: Request<UnsellSeatsRequest>,
    ) -> Reply<UnsellSeatsResponse> {
        let request = request.into_inner();
        let saga_id = validate::txid("saga_id", &request.saga_id)?;
        let event_id = validate::id("event_id", &request.event_id)?;
        let _written = self.maps.writing();
        reply(saga::unsell_seats(&self.pool, &saga_id, &event_id).await)
    }

    async fn prepare_sale(
        &self,
        request: Request<PrepareSaleRequest>,
    ) -> Reply<PrepareSaleResponse> {
        let prepare = Prepare::try_from(request.get_ref())?;
        let _written = self.maps.writing();
        reply(two_phase::prepare(&self.pool, &prepare).await)
    }

    async fn commit_sale(&self, request: Request<CommitSaleRequest>) -> Reply<CommitSaleResponse> {
        let txid = validate::txid("txid", &request.get_ref().txid)?;
        let log_id = validate::optional_id("log_id", &request.get_ref().log_id)?;
        let _written = self.maps.writing();
        reply(two_phase::commit(&self.pool, &txid, log_id.as_deref()).await)
    }

    async fn abort_sale(&self, request: Request<AbortSaleRequest>) -> Reply<AbortSaleResponse> {
        let txid = validate::txid("txid", &request.get_ref().txid)?;
        let log_id = validate::optional_id("log_id", &request.get_ref().log_id)?;
        let _written = self.maps.writing();
        reply(two_phase::abort(&self.pool, &txid, log_id.as_deref()).await)
    }

    async fn list_in_doubt_sales(
        &self,
        request: Request<ListInDoubtSalesRequest>,
    ) -> Reply<ListInDoubtSalesResponse> {
        let log_id = validate::optional_id("log_id", &request.get_ref().log_id)?;
        reply(
            two_phase::list_in_doubt(&self.pool, log_id.as_deref())
                .await
                .map(|(transactions, other_logs)| ListInDoubtSalesResponse {
                    transactions,
                    other_logs,
                }),
        )
    }

    async fn sell_fenced(&self, request: Request<SellFencedRequest>) -> Reply<SellFencedResponse> {
        let r = request.get_ref();
        let write = FencedWrite::parse(
            &r.txid,
            &r.event_id,
            &r.order_id,
            &r.seat_ids,
            r.fencing_token,
        )?;
        let _written = self.maps.writing();
        reply(fenced::sell(&self.pool, &write).await)
    }

    async fn unsell_fenced(
        &self,
        request: Request<UnsellFencedRequest>,
    ) -> Reply<UnsellFencedResponse> {
        let r = request.get_ref();
        let write = FencedWrite::parse(
            &r.txid,
            &r.event_id,
            &r.order_id,
            &r.seat_ids,
            r.fencing_token,
        )?;
        let _written = self.maps.writing();
        reply(fenced::unsell(&self.pool, &write).await)
    }

    async fn get_sweeper_stats(
        &self,
        _request: Request<GetSweeperStatsRequest>,
    ) -> Reply<GetSweeperStatsResponse> {
        let last_run_ms = self.sweeper.last_run_ms.load(Ordering::Relaxed);
        Ok(Response::new(GetSweeperStatsResponse {
            released_total: self.sweeper.released_total.load(Ordering::Relaxed),
            runs: self.sweeper.runs.load(Ordering::Relaxed),
            last_run_at: chrono::DateTime::from_timestamp_millis(last_run_ms)
                .filter(|_| last_run_ms > 0)
                .map(server_kit::convert::timestamp),
        }))
    }
}
