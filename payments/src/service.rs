//! The `ticketdrop.v1.PaymentsService` gRPC service.

use deadpool_postgres::Pool;
use proto::v1::payments_service_server::PaymentsService;

/// Payments backed by PostgreSQL. RPCs not implemented yet answer UNIMPLEMENTED.
pub struct Payments {
    #[allow(dead_code)] // used by the RPCs of the payments issue
    pool: Pool,
}

impl Payments {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }
}

#[tonic::async_trait]
impl PaymentsService for Payments {}
