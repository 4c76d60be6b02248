//! Idempotency keys with Stripe's semantics: the first answer (success or a definite
//! refusal) is stored with a hash of the request and replayed for the same key; the
//! same key with other parameters is refused; keys are kept at least 24 hours.
//!
//! The key row is inserted in the same transaction as the write it guards, so a
//! concurrent duplicate waits on the primary key and then replays the stored answer.

use deadpool_postgres::{GenericClient, Transaction};
use prost::Message;
use sha2::{Digest, Sha256};
use tonic::{Code, Status};

use crate::error::{Error, Result};

/// How a stored answer is replayed.
pub trait Replayable: Message + Default {
    fn mark_replayed(&mut self);
}

macro_rules! replayable {
    ($($response:ty),*) => {$(
        impl Replayable for $response {
            fn mark_replayed(&mut self) {
                self.replayed = true;
            }
        }
    )*};
}

replayable!(
    proto::v1::AuthorizeResponse,
    proto::v1::CaptureResponse,
    proto::v1::VoidResponse,
    proto::v1::RefundResponse
);

/// A request's fingerprint: the operation and the request with its key cleared.
pub fn request_hash(operation: &str, request_without_key: &impl Message) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(operation.as_bytes());
    hasher.update(request_without_key.encode_to_vec());
    hasher.finalize().to_vec()
}

/// The stored answer for `key`, replayed; refused when the request differs.
pub async fn replay<R: Replayable>(
    client: &impl GenericClient,
    operation: &str,
    key: &str,
    hash: &[u8],
) -> Result<Option<Result<R>>> {
    let statement = client
        .prepare_cached(
            "SELECT operation, request_hash, status_code, message, response
               FROM idempotency_keys WHERE idempotency_key = $1",
        )
        .await?;
    let Some(row) = client.query_opt(&statement, &[&key]).await? else {
        return Ok(None);
    };
    let (stored_operation, stored_hash): (String, Vec<u8>) = (row.get(0), row.get(1));
    // The key's step was compensated before it arrived (see `compensate`): refused.
    if stored_operation == compensated(operation) {
        return Ok(Some(Err(Error::AuthorizationCompensated(key.to_owned()))));
    }
    if stored_operation != operation || stored_hash != hash {
        return Err(Error::KeyReused(key.to_owned()));
    }
    let code: i32 = row.get(2);
    let response: Vec<u8> = row.get(4);
    if code == 0 {
        let mut answer = R::decode(response.as_slice()).unwrap_or_default();
        answer.mark_replayed();
        return Ok(Some(Ok(answer)));
    }
    let message: String = row.get(3);
    Ok(Some(Err(Error::Replayed(Status::with_details(
        Code::from(code),
        message,
        response.into(),
    )))))
}

/// Claims `key` inside `tx`. When another request already holds it, returns that
/// request's answer (after waiting for it to commit).
pub async fn claim<R: Replayable>(
    tx: &Transaction<'_>,
    operation: &str,
    key: &str,
    hash: &[u8],
    retention_hours: i32,
) -> Result<Option<Result<R>>> {
    let statement = tx
        .prepare_cached(
            "INSERT INTO idempotency_keys
                 (idempotency_key, operation, request_hash, status_code, response, expires_at)
             VALUES ($1, $2, $3, -1, '', now() + $4::int * interval '1 hour')
             ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .await?;
    if tx
        .execute(&statement, &[&key, &operation, &hash, &retention_hours])
        .await?
        == 1
    {
        return Ok(None);
    }
    replay(tx, operation, key, hash).await
}

/// Stores the answer of `result` under `key` and commits, when it is a success or a
/// definite refusal; otherwise rolls back so a retry runs afresh.
pub async fn finish<R: Message>(tx: Transaction<'_>, key: &str, result: Result<R>) -> Result<R> {
    let (code, message, response) = match &result {
        Ok(answer) => (0, String::new(), answer.encode_to_vec()),
        Err(error) if error.is_definite() => {
            let status = Status::from(clone_definite(error));
            (
                status.code() as i32,
                status.message().to_owned(),
                status.details().to_vec(),
            )
        }
        Err(_) => return result, // dropping `tx` rolls back the key claim too
    };
    let statement = tx
        .prepare_cached(
            "UPDATE idempotency_keys SET status_code = $2, message = $3, response = $4
              WHERE idempotency_key = $1",
        )
        .await?;
    tx.execute(&statement, &[&key, &code, &message, &response])
        .await?;
    tx.commit().await?;
    result
}

fn clone_definite(error: &Error) -> Error {
    match error {
        Error::Declined { payment_id, code } => Error::Declined {
            payment_id: payment_id.clone(),
            code: code.clone(),
        },
        Error::InvalidState {
            payment_id,
            state,
            action,
        } => Error::InvalidState {
            payment_id: payment_id.clone(),
            state: state.clone(),
            action,
        },
        Error::AmountExceeded {
            payment_id,
            action,
            requested,
            allowed,
        } => Error::AmountExceeded {
            payment_id: payment_id.clone(),
            action,
            requested: *requested,
            allowed: *allowed,
        },
        other => unreachable!("only definite errors are stored: {other}"),
    }
}

/// The operation a compensation records under a key that never ran `operation`.
fn compensated(operation: &str) -> String {
    format!("{operation}:compensated")
}

/// What a compensation found under the key of the step it compensates.
pub enum Compensation {
    /// The key never ran: the compensation is recorded under it (the barrier), so the
    /// step arriving later is refused.
    Recorded,
    /// The key ran: its stored answer (a success to undo, or a refusal).
    Ran(Vec<u8>, i32),
}

/// Records, in `tx`, that the step with `key` (of `operation`) is compensated, unless
/// the key ran already; then answers what it found. A step in flight under the key
/// holds its row: this waits for it, and finds what it did.
pub async fn compensate(
    tx: &Transaction<'_>,
    operation: &str,
    key: &str,
    retention_hours: i32,
) -> Result<Compensation> {
    let statement = tx
        .prepare_cached(
            "INSERT INTO idempotency_keys
                 (idempotency_key, operation, request_hash, status_code, response, expires_at)
             VALUES ($1, $2, '', $3, '', now() + $4::int * interval '1 hour')
             ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .await?;
    let refused = Code::FailedPrecondition as i32;
    if tx
        .execute(
            &statement,
            &[&key, &compensated(operation), &refused, &retention_hours],
        )
        .await?
        == 1
    {
        return Ok(Compensation::Recorded);
    }
    let statement = tx
        .prepare_cached(
            "SELECT operation, status_code, response FROM idempotency_keys
              WHERE idempotency_key = $1",
        )
        .await?;
    let row = tx.query_one(&statement, &[&key]).await?;
    let stored: String = row.get(0);
    if stored == compensated(operation) {
        return Ok(Compensation::Recorded);
    }
    if stored != operation {
        return Err(Error::KeyReused(key.to_owned()));
    }
    Ok(Compensation::Ran(row.get(2), row.get(1)))
}
