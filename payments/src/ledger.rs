//! The double-entry ledger: every money movement is a set of entries that sum to zero.
//!
//! | movement | entries |
//! | --- | --- |
//! | authorize | customer_funds −a, authorization_holds +a |
//! | capture c of a | authorization_holds −c, merchant_revenue +c; the rest released: authorization_holds −(a−c), customer_funds +(a−c) |
//! | void / expire | authorization_holds −a, customer_funds +a |
//! | refund r | merchant_revenue −r, customer_funds +r |

use deadpool_postgres::GenericClient;

use crate::error::Result;

pub const CUSTOMER: &str = "customer_funds";
pub const HOLDS: &str = "authorization_holds";
pub const REVENUE: &str = "merchant_revenue";

#[derive(Debug, Clone, Copy)]
pub enum Movement {
    Authorize { amount: i64 },
    Capture { captured: i64, released: i64 },
    Release { amount: i64 },
    Refund { amount: i64 },
}

impl Movement {
    fn entries(self) -> Vec<(&'static str, i64)> {
        match self {
            Movement::Authorize { amount } => vec![(CUSTOMER, -amount), (HOLDS, amount)],
            Movement::Capture { captured, released } => {
                let mut entries = vec![(HOLDS, -captured), (REVENUE, captured)];
                if released > 0 {
                    entries.extend([(HOLDS, -released), (CUSTOMER, released)]);
                }
                entries
            }
            Movement::Release { amount } => vec![(HOLDS, -amount), (CUSTOMER, amount)],
            Movement::Refund { amount } => vec![(REVENUE, -amount), (CUSTOMER, amount)],
        }
    }
}

/// Writes the movement's entries in one statement.
pub async fn record(
    client: &impl GenericClient,
    payment_id: &str,
    currency: &str,
    movement: Movement,
) -> Result<()> {
    let entries = movement.entries();
    let accounts: Vec<&str> = entries.iter().map(|(a, _)| *a).collect();
    let amounts: Vec<i64> = entries.iter().map(|(_, n)| *n).collect();
    let movement_id = uuid::Uuid::new_v4().to_string();
    let statement = client
        .prepare_cached(
            "INSERT INTO ledger_entries (movement_id, payment_id, account, amount_cents, currency)
             SELECT $1, $2, account, amount, $3
               FROM unnest($4::text[], $5::bigint[]) AS e(account, amount)",
        )
        .await?;
    client
        .execute(
            &statement,
            &[&movement_id, &payment_id, &currency, &accounts, &amounts],
        )
        .await?;
    Ok(())
}
