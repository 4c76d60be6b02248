use local_mesh::{ServiceProcess, TestDatabase, service_binary};
use proto::v1::payments_service_client::PaymentsServiceClient;
use proto::v1::*;
use server_kit::outgoing::MeshChannel;
use tonic::Status;

/// A running payments service on a database of its own.
pub struct Payments {
    pub client: PaymentsServiceClient<MeshChannel>,
    pub db: TestDatabase,
    #[allow(dead_code)] // kept alive for the test: dropping it kills the service
    pub process: ServiceProcess,
}

impl Payments {
    pub async fn start(extra: &[&str]) -> Self {
        let db = TestDatabase::create("payments")
            .await
            .expect("a test database");
        let url = db.url();
        let mut args = vec!["--database-url", url.as_str()];
        args.extend_from_slice(extra);
        let process = ServiceProcess::start(service_binary("payments"), &args, &[])
            .await
            .expect("payments starts");
        let client =
            PaymentsServiceClient::new(local_mesh::auth::channel(&process.endpoint()).await);
        Self {
            client,
            db,
            process,
        }
    }

    pub async fn count(&self, sql: &str) -> i64 {
        self.db
            .connect()
            .await
            .expect("connects")
            .query_one(sql, &[])
            .await
            .expect("counts")
            .get(0)
    }

    /// The ledger balances: every movement sums to zero; each payment's holds equal its
    /// uncaptured authorization and its revenue equals captured minus refunded.
    pub async fn assert_ledger_balances(&self) {
        let sql = self.db.connect().await.expect("connects");
        let unbalanced: i64 = sql
            .query_one(
                "SELECT count(*) FROM (SELECT movement_id FROM ledger_entries
                  GROUP BY movement_id HAVING sum(amount_cents) <> 0) m",
                &[],
            )
            .await
            .expect("ledger readable")
            .get(0);
        assert_eq!(unbalanced, 0, "every movement sums to zero");
        let wrong: Vec<String> = sql
            .query(
                "SELECT p.payment_id
                   FROM payments p
                   LEFT JOIN ledger_entries l ON l.payment_id = p.payment_id
                  GROUP BY p.payment_id, p.state, p.amount_cents, p.captured_cents, p.refunded_cents
                 HAVING coalesce(sum(l.amount_cents) FILTER (WHERE l.account = 'authorization_holds'), 0)
                        <> CASE WHEN p.state = 'AUTHORIZED' THEN p.amount_cents ELSE 0 END
                     OR coalesce(sum(l.amount_cents) FILTER (WHERE l.account = 'merchant_revenue'), 0)
                        <> p.captured_cents - p.refunded_cents",
                &[],
            )
            .await
            .expect("ledger readable")
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert!(
            wrong.is_empty(),
            "payments whose ledger disagrees: {wrong:?}"
        );
    }

    /// Rows in every table, to prove a refused request wrote nothing.
    pub async fn row_counts(&self) -> (i64, i64, i64, i64) {
        (
            self.count("SELECT count(*) FROM payments").await,
            self.count("SELECT count(*) FROM ledger_entries").await,
            self.count("SELECT count(*) FROM idempotency_keys").await,
            self.count("SELECT count(*) FROM txn_participants").await,
        )
    }

    pub async fn authorize(&self, key: &str, amount: i64, card: &str) -> Result<Payment, Status> {
        self.client
            .clone()
            .authorize(authorize(key, amount, card))
            .await
            .map(|r| r.into_inner().payment.expect("a payment"))
    }

    pub async fn set_faults(&self, faults: FaultSettings) {
        self.client
            .clone()
            .set_faults(SetFaultsRequest {
                faults: Some(faults),
            })
            .await
            .expect("faults set");
    }
}

pub fn authorize(key: &str, amount: i64, card: &str) -> AuthorizeRequest {
    AuthorizeRequest {
        order_id: format!("order-{key}"),
        amount_cents: amount,
        currency: "EUR".into(),
        card_token: card.into(),
        idempotency_key: key.into(),
    }
}

/// The status's code, ErrorInfo reason and metadata, its words checked against its reason.
pub use local_mesh::details;
