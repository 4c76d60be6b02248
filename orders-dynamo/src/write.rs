//! One conditional TransactWriteItems, with each item's purpose remembered, so that a
//! TransactionCanceledException turns into a precise answer: which item's condition
//! failed and what it held (ALL_OLD), never a bare "transaction cancelled".

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};

use crate::error::{Error, Result};
use crate::items::Item;

/// Why an item is in the transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose {
    Barrier,
    /// The step's own barrier row, claimed by a compensation to detect "never ran".
    StepMarker,
    Order,
    Claim(String),
    Participant,
    Idempotency,
}

/// An item whose condition failed, with what it held before.
#[derive(Debug, Clone)]
pub struct Failed {
    pub purpose: Purpose,
    pub old: Option<Item>,
}

/// How a transaction failed.
#[derive(Debug)]
pub enum WriteError {
    /// Conditions failed; nothing was written.
    Cancelled(Vec<Failed>),
    /// Any other failure.
    Other(Error),
}

impl From<Error> for WriteError {
    fn from(error: Error) -> Self {
        WriteError::Other(error)
    }
}

pub struct TxnWrite {
    table: String,
    items: Vec<TransactWriteItem>,
    purposes: Vec<Purpose>,
    token: Option<String>,
}

impl TxnWrite {
    pub fn new(table: &str) -> Self {
        Self {
            table: table.to_owned(),
            items: Vec::new(),
            purposes: Vec::new(),
            token: None,
        }
    }

    /// Makes retries of this transaction idempotent for DynamoDB's ten-minute window.
    pub fn client_request_token(mut self, token: String) -> Self {
        self.token = Some(token);
        self
    }

    pub fn put(
        mut self,
        item: Item,
        condition: &str,
        values: &[(&str, AttributeValue)],
        purpose: Purpose,
    ) -> Result<Self> {
        // An empty condition is an unconditional put.
        let mut put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .set_condition_expression((!condition.is_empty()).then(|| condition.to_owned()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        for (name, value) in values {
            put = put.expression_attribute_values(*name, value.clone());
        }
        self.items
            .push(TransactWriteItem::builder().put(put.build()?).build());
        self.purposes.push(purpose);
        Ok(self)
    }

    pub fn update(
        mut self,
        key: Item,
        update: &str,
        condition: &str,
        names: &[(&str, &str)],
        values: &[(&str, AttributeValue)],
        purpose: Purpose,
    ) -> Result<Self> {
        let mut builder = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key))
            .update_expression(update)
            .condition_expression(condition)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        for (placeholder, name) in names {
            builder = builder.expression_attribute_names(*placeholder, *name);
        }
        for (name, value) in values {
            builder = builder.expression_attribute_values(*name, value.clone());
        }
        self.items.push(
            TransactWriteItem::builder()
                .update(builder.build()?)
                .build(),
        );
        self.purposes.push(purpose);
        Ok(self)
    }

    pub async fn send(self, client: &Client) -> Result<(), WriteError> {
        let result = client
            .transact_write_items()
            .set_transact_items(Some(self.items))
            .set_client_request_token(self.token)
            .send()
            .await;
        let error = match result {
            Ok(_) => return Ok(()),
            Err(error) => error.into_service_error(),
        };
        match error {
            TransactWriteItemsError::TransactionCanceledException(cancelled) => {
                let reasons = cancelled.cancellation_reasons();
                if reasons
                    .iter()
                    .any(|r| r.code() == Some("TransactionConflict"))
                {
                    return Err(WriteError::Other(Error::Conflict));
                }
                let failed: Vec<Failed> = reasons
                    .iter()
                    .zip(self.purposes)
                    .filter(|(reason, _)| reason.code() == Some("ConditionalCheckFailed"))
                    .map(|(reason, purpose)| Failed {
                        purpose,
                        old: reason.item().cloned(),
                    })
                    .collect();
                if failed.is_empty() {
                    return Err(WriteError::Other(Error::Dynamo(format!(
                        "transaction cancelled: {:?}",
                        reasons.iter().map(|r| r.code()).collect::<Vec<_>>()
                    ))));
                }
                Err(WriteError::Cancelled(failed))
            }
            TransactWriteItemsError::IdempotentParameterMismatchException(_) => {
                Err(WriteError::Other(Error::IdempotencyMismatch))
            }
            TransactWriteItemsError::TransactionInProgressException(_) => {
                Err(WriteError::Other(Error::Conflict))
            }
            other => Err(WriteError::Other(Error::Dynamo(other.to_string()))),
        }
    }
}

/// The failure of `purpose`, if its condition failed.
pub fn failed<'a>(failures: &'a [Failed], purpose: &Purpose) -> Option<&'a Failed> {
    failures.iter().find(|f| &f.purpose == purpose)
}

/// The claim failures, with the seat each names.
pub fn failed_claims(failures: &[Failed]) -> Vec<(&str, Option<&Item>)> {
    failures
        .iter()
        .filter_map(|f| match &f.purpose {
            Purpose::Claim(seat) => Some((seat.as_str(), f.old.as_ref())),
            _ => None,
        })
        .collect()
}
