use futures::StreamExt;
use proto::v1::*;
use tonic::Code;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_twenty_percent_decline_rate_declines_about_a_fifth_each_with_its_code() {
    let payments = Payments::start(&["--decline-rate", "0.2"]).await;
    let client = payments.client.clone();
    let outcomes: Vec<_> = futures::stream::iter(0..1_000)
        .map(|i| {
            let mut client = client.clone();
            async move {
                client
                    .authorize(authorize(&format!("k-{i}"), 1_000, "tok_visa"))
                    .await
            }
        })
        .buffer_unordered(50)
        .collect()
        .await;

    let mut declined = 0;
    for outcome in &outcomes {
        if let Err(status) = outcome {
            let (code, reason, metadata) = details(status);
            assert_eq!(
                (code, reason.as_str()),
                (Code::FailedPrecondition, "CARD_DECLINED")
            );
            assert_eq!(metadata["decline_code"], "card_declined");
            declined += 1;
        }
    }
    // Binomial(1000, 0.2): mean 200, standard deviation 12.6. Five deviations either
    // side (137..=263) fail by chance less than once in a million runs.
    assert!(
        (137..=263).contains(&declined),
        "{declined} declines of 1,000"
    );
    assert_eq!(
        payments.count("SELECT count(*) FROM payments WHERE state = 'DECLINED' AND decline_code = 'card_declined'").await,
        declined
    );
    assert_eq!(
        payments
            .count("SELECT count(*) FROM payments WHERE state = 'AUTHORIZED'")
            .await,
        1_000 - declined
    );
    payments.assert_ledger_balances().await;

    // Test cards decline on their own, with their own codes, and the answer replays.
    for (card, code) in [
        ("tok_declined", "card_declined"),
        ("tok_insufficient_funds", "insufficient_funds"),
    ] {
        payments.set_faults(FaultSettings::default()).await;
        for _ in 0..2 {
            let status = payments
                .authorize(&format!("card-{card}"), 500, card)
                .await
                .expect_err("declined");
            assert_eq!(details(&status).2["decline_code"], code);
        }
    }
}
