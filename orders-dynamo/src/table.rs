//! The single DynamoDB table: created at start when missing (on-demand billing).
//!
//! Keys are generic (`pk`, `sk`) so that orders, seat claims, 2PC participant items and
//! idempotency items share one table and one TransactWriteItems; `gsi1` indexes a
//! user's orders by time.

use std::time::Duration;

use anyhow::Context;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TableStatus,
};
use tracing::{info, warn};

use crate::Config;

pub const USER_INDEX: &str = "gsi1";

/// A DynamoDB client for the configured endpoint with static credentials.
pub fn client(config: &Config) -> Client {
    let credentials = Credentials::new(
        &config.dynamodb_access_key_id,
        &config.dynamodb_secret_access_key,
        None,
        None,
        "ticketdrop-config",
    );
    let sdk_config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(&config.dynamodb_endpoint)
        .region(Region::new(config.dynamodb_region.clone()))
        .credentials_provider(credentials)
        .interceptor(CountAttempts)
        .build();
    Client::from_conf(sdk_config)
}

/// Counts every request sent to DynamoDB, retries included, by operation:
/// `ticketdrop_dynamodb_requests_total{operation}` — the store operations a sale costs,
/// as the bench reads them.
#[derive(Debug)]
struct CountAttempts;

impl aws_sdk_dynamodb::config::Intercept for CountAttempts {
    fn name(&self) -> &'static str {
        "CountAttempts"
    }

    fn read_before_transmit(
        &self,
        _context: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &aws_sdk_dynamodb::config::RuntimeComponents,
        cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        if let Some(operation) =
            cfg.load::<aws_smithy_runtime_api::client::orchestrator::Metadata>()
        {
            metrics::counter!(
                "ticketdrop_dynamodb_requests_total",
                "operation" => operation.name().to_owned()
            )
            .increment(1);
        }
        Ok(())
    }
}

/// Creates the table unless it exists and waits until it takes writes, retrying while
/// DynamoDB is not reachable. DynamoDB Local creates a table ACTIVE; the real DynamoDB
/// answers CreateTable at once and keeps the table CREATING for seconds, during which
/// every write would fail.
pub async fn ensure_table(client: &Client, table: &str, attempts: u32) -> anyhow::Result<()> {
    let mut backoff = Duration::from_millis(100);
    for attempt in 1..=attempts {
        let last = attempt == attempts;
        match try_ensure_table(client, table).await {
            Ok(Readiness::Ready) => return Ok(()),
            Ok(Readiness::Creating) if !last => {
                info!(table, attempt, "the orders table is being created; waiting");
            }
            Ok(Readiness::Creating) => {
                anyhow::bail!(
                    "the orders table {table} was still being created after {attempts} attempts"
                )
            }
            Err(error) if !last => {
                warn!(attempt, error = %format!("{error:#}"), "dynamodb not ready yet; retrying");
            }
            Err(error) => {
                return Err(error)
                    .with_context(|| format!("dynamodb not ready after {attempts} attempts"));
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
    unreachable!("the loop returns on its last attempt")
}

/// Whether the table takes writes yet.
enum Readiness {
    Ready,
    Creating,
}

fn readiness(table: &str, status: Option<&TableStatus>) -> anyhow::Result<Readiness> {
    match status {
        // UPDATING (an index being added, say) takes writes.
        Some(TableStatus::Active | TableStatus::Updating) => Ok(Readiness::Ready),
        Some(TableStatus::Creating) => Ok(Readiness::Creating),
        other => anyhow::bail!("the orders table {table} is {other:?}: it takes no writes"),
    }
}

async fn try_ensure_table(client: &Client, table: &str) -> anyhow::Result<Readiness> {
    match client.describe_table().table_name(table).send().await {
        Ok(described) => {
            return readiness(
                table,
                described.table().and_then(|t| t.table_status.as_ref()),
            );
        }
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) => {}
        Err(error) => return Err(error).context("describing the orders table"),
    }
    let created = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(string_attribute("pk")?)
        .attribute_definitions(string_attribute("sk")?)
        .attribute_definitions(string_attribute("gsi1pk")?)
        .attribute_definitions(string_attribute("gsi1sk")?)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(USER_INDEX)
                .key_schema(key("gsi1pk", KeyType::Hash)?)
                .key_schema(key("gsi1sk", KeyType::Range)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()?,
        )
        .send()
        .await;
    match created {
        Ok(created) => {
            info!(table, "created the orders table");
            readiness(
                table,
                created
                    .table_description()
                    .and_then(|t| t.table_status.as_ref()),
            )
        }
        // Another instance is creating it at the same moment: look again.
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) =>
        {
            Ok(Readiness::Creating)
        }
        Err(error) => Err(error).context("creating the orders table"),
    }
}

fn string_attribute(name: &str) -> anyhow::Result<AttributeDefinition> {
    Ok(AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()?)
}

fn key(name: &str, key_type: KeyType) -> anyhow::Result<KeySchemaElement> {
    Ok(KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()?)
}
