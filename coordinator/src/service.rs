//! The `ticketdrop.v1.CoordinatorService` gRPC service.

use deadpool_postgres::Pool;
use proto::v1::coordinator_service_server::CoordinatorService;

use crate::participants::Participants;

/// The transaction manager. RPCs not implemented yet answer UNIMPLEMENTED.
#[allow(dead_code)] // the fields are used by the RPCs of the coordinator issue
pub struct Coordinator {
    log: Pool,
    redis: redis::aio::ConnectionManager,
    participants: Participants,
}

impl Coordinator {
    pub fn new(
        log: Pool,
        redis: redis::aio::ConnectionManager,
        participants: Participants,
    ) -> Self {
        Self {
            log,
            redis,
            participants,
        }
    }
}

#[tonic::async_trait]
impl CoordinatorService for Coordinator {}
