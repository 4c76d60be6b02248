//! The `ticketdrop.v1.OrdersService` gRPC service.

use aws_sdk_dynamodb::Client;
use proto::v1::orders_service_server::OrdersService;

/// Orders backed by DynamoDB. RPCs not implemented yet answer UNIMPLEMENTED.
#[allow(dead_code)] // the fields are used by the RPCs of the orders issue
pub struct Orders {
    dynamodb: Client,
    table: String,
}

impl Orders {
    pub fn new(dynamodb: Client, table: String) -> Self {
        Self { dynamodb, table }
    }
}

#[tonic::async_trait]
impl OrdersService for Orders {}
