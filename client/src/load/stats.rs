//! The figures of a drop's report: counts by answer, latency percentiles, how long fans
//! waited, the timeline of sales, and fairness (fans admitted ahead of earlier joiners).

use std::time::Duration;

use proto::v1::*;
use serde::Serialize;

use crate::audit;
use crate::json;

use super::fans::{Answer, Fan};
use super::{DropReport, Load};

/// Fans answered by `t_s` seconds into the drop, and how many of them bought.
#[derive(Debug, Clone, Serialize)]
pub struct TimelinePoint {
    pub t_s: f64,
    pub sold: u64,
    pub answered: u64,
}

/// Violations a report spells out; the rest are counted by kind.
pub const VIOLATIONS_SHOWN: usize = 5;

/// Points a timeline has at most (a drop of a few seconds gets one every 50 ms).
pub(crate) const TIMELINE_POINTS: u32 = 200;

pub(crate) fn report(
    args: &Load,
    protocol: Protocol,
    event: &str,
    fans: &[Fan],
    duration: Duration,
    max_concurrent: Option<u64>,
    audit: Option<&audit::Report>,
) -> DropReport {
    let mut latencies: Vec<f64> = fans
        .iter()
        .flat_map(|f| f.purchases.iter().map(|d| d.as_secs_f64() * 1_000.0))
        .collect();
    latencies.sort_by(f64::total_cmp);
    let mut waits: Vec<f64> = fans
        .iter()
        .filter_map(|f| f.waited.map(|d| d.as_secs_f64() * 1_000.0))
        .collect();
    waits.sort_by(f64::total_cmp);
    let mut report = DropReport {
        protocol: json::protocol(protocol),
        event_id: event.to_owned(),
        seats: args.seats,
        fans: args.fans,
        concurrency: args.concurrency,
        waiting_room: !args.no_waiting_room,
        attempts: latencies.len() as u64,
        sold: 0,
        sold_out: 0,
        sold_out_by_room: 0,
        conflicts: 0,
        declines: 0,
        unknown: 0,
        unknown_resolved: fans.iter().filter(|f| f.resolved).count() as u64,
        aborted: 0,
        expired: 0,
        errors: 0,
        rejoins: fans.iter().map(|f| f.rejoins).sum(),
        requeued_after_expiry: fans.iter().map(|f| f.requeues).sum(),
        oversold: audit.map(|a| a.oversold),
        audit_violations: audit.map(|a| a.violations.len()),
        violations_by_kind: audit
            .map(|a| {
                let mut by_kind = std::collections::BTreeMap::new();
                for v in &a.violations {
                    *by_kind.entry(v.kind.name().to_owned()).or_insert(0) += 1;
                }
                by_kind
            })
            .unwrap_or_default(),
        first_violations: audit
            .map(|a| {
                a.violations
                    .iter()
                    .take(VIOLATIONS_SHOWN)
                    .map(|v| format!("{} [{}]: {}", v.kind.name(), v.ids.join(", "), v.detail))
                    .collect()
            })
            .unwrap_or_default(),
        seats_unsold_while_turned_away: 0,
        fairness_violations: fairness_violations(fans),
        max_concurrent_purchases: max_concurrent.unwrap_or(args.concurrency as u64),
        duration_s: duration.as_secs_f64(),
        purchases_per_s: 0.0,
        attempts_per_s: latencies.len() as f64 / duration.as_secs_f64().max(1e-9),
        p50_ms: tenth(percentile(&latencies, 0.50)),
        p95_ms: tenth(percentile(&latencies, 0.95)),
        p99_ms: tenth(percentile(&latencies, 0.99)),
        wait_p50_ms: tenth(percentile(&waits, 0.50)),
        wait_p99_ms: tenth(percentile(&waits, 0.99)),
        last_sale_s: fans
            .iter()
            .filter(|f| matches!(f.answer, Answer::Sold(_)))
            .map(|f| f.answered_at.as_secs_f64())
            .fold(0.0, f64::max),
        timeline: timeline(fans, duration),
        refusals: std::collections::BTreeMap::new(),
        first_error: None,
        settle_error: None,
        audit_error: None,
    };
    for fan in fans {
        for reason in &fan.refusals {
            *report.refusals.entry(reason.clone()).or_default() += 1;
        }
        match &fan.answer {
            Answer::Sold(seats) => report.sold += seats,
            Answer::SoldOut => {
                report.sold_out += 1;
                report.sold_out_by_room += u64::from(fan.answered_by_room);
            }
            Answer::Conflict => report.conflicts += 1,
            Answer::Declined => report.declines += 1,
            Answer::Unknown => report.unknown += 1,
            Answer::Aborted => report.aborted += 1,
            Answer::Expired => report.expired += 1,
            Answer::Error(message) => {
                report.errors += 1;
                report.first_error.get_or_insert(message.clone());
            }
        }
    }
    let turned_away = report.sold_out + report.conflicts + report.expired + report.aborted;
    if let Some(audit) = audit
        && turned_away > 0
    {
        report.seats_unsold_while_turned_away =
            u64::try_from(audit.capacity - audit.sold).unwrap_or(0);
    }
    report.purchases_per_s = report.sold as f64 / duration.as_secs_f64().max(1e-9);
    report
}

/// Sales and answers so far at evenly spaced moments of the drop, ending at its end.
pub(crate) fn timeline(fans: &[Fan], duration: Duration) -> Vec<TimelinePoint> {
    let mut answers: Vec<(Duration, u64)> = fans
        .iter()
        .map(|f| {
            let sold = match f.answer {
                Answer::Sold(seats) => seats,
                _ => 0,
            };
            (f.answered_at, sold)
        })
        .collect();
    answers.sort_unstable_by_key(|(at, _)| *at);
    let step = (duration / TIMELINE_POINTS).max(Duration::from_millis(50));
    let mut points = vec![TimelinePoint {
        t_s: 0.0,
        sold: 0,
        answered: 0,
    }];
    let (mut sold, mut answered, mut next) = (0, 0, 0);
    let mut at = Duration::ZERO;
    while at < duration {
        at = (at + step).min(duration);
        while let Some((answered_at, seats)) = answers.get(next)
            && *answered_at <= at
        {
            sold += seats;
            answered += 1;
            next += 1;
        }
        points.push(TimelinePoint {
            t_s: at.as_secs_f64(),
            sold,
            answered,
        });
    }
    points
}

/// Fans admitted ahead of someone who joined earlier: in join order, a fan counts when
/// any earlier fan was admitted after them, or never (and did not leave).
pub(crate) fn fairness_violations(fans: &[Fan]) -> u64 {
    let mut joined: Vec<(u64, Option<u64>)> = fans
        .iter()
        .filter_map(|f| f.join_number.map(|j| (j, f.admission_number)))
        .collect();
    joined.sort_unstable();
    // The latest admission among earlier fans; None once an earlier fan was never admitted.
    let mut latest_earlier = Some(0u64);
    let mut unfair = 0;
    for (_, admission) in joined {
        if let (Some(admitted), Some(latest)) = (admission, latest_earlier)
            && admitted < latest
        {
            unfair += 1;
        } else if admission.is_some() && latest_earlier.is_none() {
            unfair += 1;
        }
        latest_earlier = match (latest_earlier, admission) {
            (Some(latest), Some(admitted)) => Some(latest.max(admitted)),
            _ => None,
        };
    }
    unfair
}

/// The `q` quantile (0 to 1) of values sorted ascending, by nearest rank; 0 for no
/// values. The one definition behind every percentile the command line prints: the
/// drop's, the bench's and the lab's.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
    sorted[index]
}

/// [`percentile`] of values in any order.
pub fn percentile_of(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    percentile(&sorted, q)
}

/// A figure in milliseconds to a tenth, as the drop's report prints it.
fn tenth(ms: f64) -> f64 {
    (ms * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::fans::{Answer, Fan};

    /// A fan who joined `joined`-th and was admitted `admitted`-th (None: never).
    fn fan(joined: u64, admitted: Option<u64>) -> Fan {
        let mut fan = Fan::new(Answer::SoldOut);
        fan.join_number = Some(joined);
        fan.admission_number = admitted;
        fan
    }

    #[test]
    fn a_fan_admitted_ahead_of_an_earlier_joiner_is_counted_once() {
        // In join order: fair, whatever order the fans are listed in.
        assert_eq!(
            fairness_violations(&[fan(2, Some(2)), fan(1, Some(1)), fan(3, Some(3))]),
            0
        );
        // The third to join was admitted before the second.
        assert_eq!(
            fairness_violations(&[fan(1, Some(1)), fan(2, Some(3)), fan(3, Some(2))]),
            1
        );
        // An earlier fan was never admitted (sold out): every later admission is unfair.
        assert_eq!(
            fairness_violations(&[fan(1, None), fan(2, Some(1)), fan(3, Some(2))]),
            2
        );
        // Late joiners who were never admitted are not unfair to anyone.
        assert_eq!(
            fairness_violations(&[fan(1, Some(1)), fan(2, None), fan(3, None)]),
            0
        );
        assert_eq!(fairness_violations(&[]), 0);
    }

    #[test]
    fn a_percentile_of_nothing_is_zero_and_of_a_sorted_list_is_one_of_its_values() {
        assert_eq!(percentile(&[], 0.99), 0.0);
        let values = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(
            percentile(&values, 0.5),
            3.0,
            "the nearest rank, rounded up at a tie"
        );
        assert_eq!(percentile(&values, 0.99), 4.0);
        assert_eq!(percentile(&values, 0.0), 1.0);
        assert_eq!(percentile_of(&[4.0, 1.0, 3.0, 2.0], 1.0), 4.0);
        assert_eq!(percentile_of(&[], 0.5), 0.0);
    }
}
