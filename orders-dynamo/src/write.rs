//! One purchase's conditional write, with each item's purpose remembered, so that a
//! cancelled transaction turns into a precise answer: which item's condition failed and
//! what it held (ALL_OLD), never a bare "transaction cancelled". It is written atomically
//! in a TransactWriteItems of its own or together with other purchases' writes (group
//! commit, see `group`).

use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};

use crate::error::{Error, Result};
use crate::group::{GroupCommit, Write};
use crate::items::{self, Item};

/// Why an item is in the transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose {
    Barrier,
    /// The step's own barrier row, claimed by a compensation to detect "never ran".
    StepMarker,
    Order,
    Claim(String),
    Participant,
    /// The branch's item in the in-doubt index.
    InDoubt,
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
    keys: Vec<(String, String)>,
}

/// The (pk, sk) of an item or key.
fn key_of(item: &Item) -> (String, String) {
    (
        items::get_s(item, "pk").unwrap_or_default(),
        items::get_s(item, "sk").unwrap_or_default(),
    )
}

impl TxnWrite {
    pub fn new(table: &str) -> Self {
        Self {
            table: table.to_owned(),
            items: Vec::new(),
            purposes: Vec::new(),
            keys: Vec::new(),
        }
    }

    pub fn put(
        mut self,
        item: Item,
        condition: &str,
        values: &[(&str, AttributeValue)],
        purpose: Purpose,
    ) -> Result<Self> {
        self.keys.push(key_of(&item));
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
        self.keys.push(key_of(&key));
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

    /// Deletes an item, whatever it holds (nothing when it is missing).
    pub fn delete(mut self, key: Item, purpose: Purpose) -> Result<Self> {
        self.keys.push(key_of(&key));
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key))
            .build()?;
        self.items
            .push(TransactWriteItem::builder().delete(delete).build());
        self.purposes.push(purpose);
        Ok(self)
    }

    /// Writes every item or none, in the next group commit.
    pub async fn send(self, group: &GroupCommit) -> Result<(), WriteError> {
        group
            .write(Write {
                items: self.items,
                purposes: self.purposes,
                keys: self.keys,
            })
            .await
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
