//! The `ticketdrop.v1.InventoryService` gRPC service.

use deadpool_postgres::Pool;
use proto::v1::inventory_service_server::InventoryService;

/// Seat inventory backed by PostgreSQL. RPCs not implemented yet answer UNIMPLEMENTED.
pub struct Inventory {
    #[allow(dead_code)] // used by the RPCs of the inventory issue
    pool: Pool,
}

impl Inventory {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }
}

#[tonic::async_trait]
impl InventoryService for Inventory {}
