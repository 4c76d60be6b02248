use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use local_mesh::{ServiceProcess, service_binary, unique_name};
use proto::v1::orders_service_client::OrdersServiceClient;
use proto::v1::*;
use server_kit::outgoing::MeshChannel;

/// A running orders service on a table of its own.
pub struct Orders {
    pub client: OrdersServiceClient<MeshChannel>,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub table: String,
    #[allow(dead_code)] // kept alive for the test: dropping it kills the service
    pub process: ServiceProcess,
}

impl Orders {
    pub async fn start() -> Self {
        Self::start_on(&local_mesh::dynamodb_endpoint()).await
    }

    pub async fn start_on(endpoint: &str) -> Self {
        let table = unique_name("orders");
        let process = ServiceProcess::start(
            service_binary("orders-dynamo"),
            &["--table", &table, "--dynamodb-endpoint", endpoint],
            &[],
        )
        .await
        .expect("orders-dynamo starts");
        let client = OrdersServiceClient::new(local_mesh::auth::channel(&process.endpoint()).await);
        Self {
            client,
            dynamodb: dynamodb(endpoint),
            table,
            process,
        }
    }

    /// Every item of the table, as text, to prove a request changed nothing.
    pub async fn snapshot(&self) -> Vec<String> {
        let mut items: Vec<String> = self
            .dynamodb
            .scan()
            .table_name(&self.table)
            .consistent_read(true)
            .send()
            .await
            .expect("scan")
            .items()
            .iter()
            .map(|item| {
                let mut fields: Vec<String> = item
                    .iter()
                    .map(|(k, v)| format!("{k}={}", canonical(v)))
                    .collect();
                fields.sort();
                fields.join(",")
            })
            .collect();
        items.sort();
        items
    }

    pub async fn item(&self, pk: &str, sk: &str) -> Option<HashMap<String, AttributeValue>> {
        self.dynamodb
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk.into()))
            .key("sk", AttributeValue::S(sk.into()))
            .consistent_read(true)
            .send()
            .await
            .expect("get item")
            .item
    }

    pub async fn claim(&self, event_id: &str, seat_id: &str) -> Option<(String, String)> {
        self.item(&format!("CLAIM#{event_id}#{seat_id}"), "CLAIM")
            .await
            .map(|item| (text(&item, "order_id"), text(&item, "claim_status")))
    }
}

impl Drop for Orders {
    fn drop(&mut self) {
        let dynamodb = self.dynamodb.clone();
        let table = self.table.clone();
        // Best effort: a leftover table only costs disk in .stack.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let _ = runtime.block_on(dynamodb.delete_table().table_name(table).send());
        })
        .join();
    }
}

/// An attribute value as text with map keys sorted, so equal items print equally.
fn canonical(value: &AttributeValue) -> String {
    match value {
        AttributeValue::M(map) => {
            let mut fields: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k}:{}", canonical(v)))
                .collect();
            fields.sort();
            format!("{{{}}}", fields.join(","))
        }
        AttributeValue::L(list) => {
            format!(
                "[{}]",
                list.iter().map(canonical).collect::<Vec<_>>().join(",")
            )
        }
        other => format!("{other:?}"),
    }
}

pub fn dynamodb(endpoint: &str) -> aws_sdk_dynamodb::Client {
    local_mesh::dynamodb_client(endpoint)
}

pub fn text(item: &HashMap<String, AttributeValue>, name: &str) -> String {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default()
}

pub fn seats(ids: &[&str]) -> Vec<PricedSeat> {
    ids.iter()
        .map(|id| PricedSeat {
            seat_id: (*id).into(),
            price_cents: 2_500,
        })
        .collect()
}

pub fn create(saga_id: &str, order_id: &str, seat_ids: &[&str]) -> CreateOrderRequest {
    CreateOrderRequest {
        saga_id: saga_id.into(),
        order_id: order_id.into(),
        user_id: "alice".into(),
        event_id: "evt".into(),
        seats: seats(seat_ids),
        currency: "EUR".into(),
        idempotency_key: String::new(),
    }
}

pub fn prepare(txid: &str, order_id: &str, seat_ids: &[&str]) -> PrepareOrderRequest {
    PrepareOrderRequest {
        log_id: String::new(),
        txid: txid.into(),
        order_id: order_id.into(),
        user_id: "bob".into(),
        event_id: "evt".into(),
        seats: seats(seat_ids),
        currency: "EUR".into(),
        idempotency_key: String::new(),
        payment_id: String::new(),
    }
}

/// The status's code, ErrorInfo reason and metadata, its words checked against its reason.
pub use local_mesh::details;
