//! The performance goals, each against what this run measured: printed at the end of
//! `make bench` and written at the top of docs/benchmarks.md.

use std::fmt::Write;

use super::Bench;

/// One goal, for one protocol or configuration.
pub struct Goal {
    pub what: String,
    pub target: String,
    pub measured: String,
    pub met: bool,
}

pub fn of(bench: &Bench) -> Vec<Goal> {
    let mut goals = Vec::new();
    for m in &bench.drops {
        let d = &m.drop;
        goals.push(Goal {
            what: format!(
                "every fan answered, {} fans / {} seats, {}",
                d.fans, d.seats, d.protocol
            ),
            target: "≤ 5 s".into(),
            measured: format!("{:.2} s", d.duration_s),
            met: d.duration_s <= 5.0 && d.errors == 0,
        });
    }
    let one = bench.stores.dynamodb_sale.sales_per_s;
    let grouped = bench
        .stores
        .dynamodb_grouped
        .iter()
        .map(|r| r.sales_per_s)
        .fold(0.0, f64::max);
    for m in &bench.drops {
        let d = &m.drop;
        let pace = d.sold as f64 / d.last_sale_s.max(1e-9);
        goals.push(Goal {
            what: format!(
                "sales/s against the one-sale pace ({one:.0}/s), {}",
                d.protocol
            ),
            target: "≥ 80 %".into(),
            measured: format!("{pace:.0}/s = {:.0} %", m.efficiency_pct),
            met: m.efficiency_pct >= 80.0,
        });
        goals.push(Goal {
            what: format!(
                "sales/s against the grouped pace ({grouped:.0}/s), {}",
                d.protocol
            ),
            target: "reported".into(),
            measured: format!("{:.0} %", 100.0 * pace / grouped.max(1e-9)),
            met: true,
        });
    }
    for (label, latencies) in [
        ("fresh", &bench.latency_fresh),
        ("aged", &bench.latency_aged),
    ] {
        for l in latencies {
            goals.push(Goal {
                what: format!("one purchase alone, p99, {label} store, {}", l.protocol),
                target: "≤ 25 ms".into(),
                measured: format!("{:.1} ms", l.p99_ms),
                met: l.p99_ms <= 25.0,
            });
        }
    }
    for run in bench.seat_maps.iter().filter(|r| r.cache) {
        goals.push(Goal {
            what: format!("{} fans load the seat map (cached)", run.loads),
            target: "≤ 5 s, p99 ≤ 100 ms".into(),
            measured: format!("{:.2} s, p99 {:.1} ms", run.all_loaded_s, run.p99_ms),
            met: run.all_loaded_s <= 5.0 && run.p99_ms <= 100.0 && run.errors == 0,
        });
        goals.push(Goal {
            what: "a seat map's staleness (asked − as_of), at most".into(),
            target: format!(
                "≤ {} ms, the stated bound",
                super::seat_map::STATED_BOUND_MS
            ),
            measured: format!(
                "{:.1} ms (p99 {:.1} ms)",
                run.staleness_max_ms, run.staleness_p99_ms
            ),
            // Every answer measured: none failed, and each carried its as_of.
            met: run.errors == 0
                && run.with_as_of == u64::from(run.loads)
                && run.staleness_max_ms <= super::seat_map::STATED_BOUND_MS as f64,
        });
    }
    goals
}

pub fn print(bench: &Bench) {
    println!("goals:");
    for goal in of(bench) {
        println!(
            "  {} {}: {} (goal {})",
            if goal.met { "met    " } else { "NOT MET" },
            goal.what,
            goal.measured,
            goal.target
        );
    }
}

pub fn markdown(w: &mut String, bench: &Bench) -> std::fmt::Result {
    writeln!(w, "## The goals\n")?;
    writeln!(w, "| goal | target | this run | met |")?;
    writeln!(w, "| --- | --- | --- | --- |")?;
    for goal in of(bench) {
        writeln!(
            w,
            "| {} | {} | {} | {} |",
            goal.what,
            goal.target,
            goal.measured,
            if goal.met { "yes" } else { "**no**" }
        )?;
    }
    writeln!(w)
}
