//! What the coordinators' logs say about a run, beside the checker's verdict: how long
//! the purchases the fault touched stayed in doubt, compensations, duplicates the
//! participants absorbed, stale fencing tokens refused, orders re-asserted.

use crate::chaos::lab::Lab;
use crate::chaos::report::Spread;

/// What the coordinators' logs say about a run.
pub struct LogFacts {
    pub in_doubt: Spread,
    pub compensations: u64,
    pub duplicates: u64,
    pub stale: u64,
    /// Orders read back after an orders outage, and writes re-asserted then.
    pub verified: u64,
    pub reasserted: u64,
}

pub async fn log_facts(
    lab: &Lab,
    event: &str,
    rival: bool,
    window: Option<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)>,
) -> anyhow::Result<LogFacts> {
    let mut facts = LogFacts {
        in_doubt: Spread::default(),
        compensations: 0,
        duplicates: 0,
        stale: 0,
        verified: 0,
        reasserted: 0,
    };
    let mut in_doubt = Vec::new();
    let logs: &[&str] = if rival {
        &["coordinator", "coordinator_rival"]
    } else {
        &["coordinator"]
    };
    let (from, to) = window.map_or((None, None), |(a, b)| (Some(a), Some(b)));
    for db in logs {
        let log = crate::stores::postgres("coordinator", &lab.pg.url(db)).await?;
        for row in log
            .query(
                "SELECT (extract(epoch FROM t.finished_at - t.started_at) * 1000)::float8,
                        bool_or(s.outcome = 'UNKNOWN')
                           OR ($2::timestamptz IS NOT NULL AND t.started_at <= $3
                               AND coalesce(t.finished_at, now()) >= $2)
                   FROM transactions t LEFT JOIN steps s USING (txid)
                  WHERE t.event_id = $1 AND t.finished_at IS NOT NULL
                  GROUP BY t.txid, t.started_at, t.finished_at",
                &[&event, &from, &to],
            )
            .await?
        {
            if row.get::<_, Option<bool>>(1) == Some(true) {
                in_doubt.push(row.get::<_, Option<f64>>(0).unwrap_or(0.0));
            }
        }
        let counts = log
            .query_one(
                "SELECT count(*) FILTER (WHERE s.compensation AND s.outcome = 'OK'),
                        count(*) FILTER (WHERE s.error ILIKE '%stale fencing token%'),
                        count(*) FILTER (WHERE s.operation = 'verify_order' AND s.outcome = 'OK'),
                        count(*) FILTER (WHERE s.operation <> 'verify_order' AND s.outcome = 'OK'
                            AND s.sequence > (SELECT min(v.sequence) FROM steps v
                                               WHERE v.txid = s.txid AND v.operation = 'verify_order'))
                   FROM steps s JOIN transactions t USING (txid) WHERE t.event_id = $1",
                &[&event],
            )
            .await?;
        let count = |i: usize| u64::try_from(counts.get::<_, i64>(i)).unwrap_or(0);
        facts.compensations += count(0);
        facts.stale += count(1);
        facts.verified += count(2);
        facts.reasserted += count(3);
        let duplicates: i64 = log
            .query_one(
                "SELECT count(*) FROM (
                     SELECT 1 FROM steps s JOIN transactions t USING (txid)
                      WHERE t.event_id = $1
                      GROUP BY s.txid, s.participant, s.operation
                     HAVING bool_or(s.outcome = 'UNKNOWN') AND bool_or(s.outcome = 'OK')) d",
                &[&event],
            )
            .await?
            .get(0);
        facts.duplicates += u64::try_from(duplicates).unwrap_or(0);
    }
    facts.in_doubt = Spread::of(in_doubt);
    Ok(facts)
}
