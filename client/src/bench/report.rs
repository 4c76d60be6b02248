//! The bench's report: a summary on stdout, docs/benchmarks.md (figures, then the kept
//! hand-written analysis) and an SVG of sales and answers over time.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

use super::{Bench, BenchArgs, Measured};
use crate::drop::audited;

/// The hand-written section kept below the generated figures.
const ANALYSIS: &str = "## What the figures say";

pub fn print(bench: &Bench) {
    let raw = &bench.stores.dynamodb_sale;
    println!(
        "raw: DynamoDB {:.0} one-sale TransactWriteItems/s; PostgreSQL {:.0} prepared commits/s; Redis {:.0} SET NX PX/s",
        raw.sales_per_s,
        bench.stores.postgres_prepared.operations_per_s,
        bench.stores.redis_set_nx_px.operations_per_s
    );
    for m in &bench.drops {
        let d = &m.drop;
        println!(
            "{:>5}: {} fans / {} seats: sold {}, oversold (audit) {}, all answered in {:.2} s (last sale at {:.2} s), {:.0} sales/s = {:.0} % of raw",
            d.protocol,
            d.fans,
            d.seats,
            d.sold,
            audited(d.oversold),
            d.duration_s,
            d.last_sale_s,
            sales_per_s(m),
            m.efficiency_pct
        );
        let mut split: Vec<(&String, f64)> =
            m.usage.iter().map(|(name, u)| (name, u.cpu_s)).collect();
        split.sort_by(|a, b| b.1.total_cmp(&a.1));
        let split: Vec<String> = split
            .into_iter()
            .map(|(name, cpu)| format!("{name} {cpu:.1}"))
            .collect();
        println!("       CPU s: {}", split.join(", "));
    }
    for scale in &bench.coordinators {
        let d = &scale.measured.drop;
        println!(
            "{:>5}: {} coordinator(s), {} fans / {} seats: all answered in {:.2} s, {:.0} sales/s = {:.0} % of raw",
            d.protocol,
            scale.coordinators,
            d.fans,
            d.seats,
            d.duration_s,
            sales_per_s(&scale.measured),
            scale.measured.efficiency_pct
        );
    }
    if let Some(t) = &bench.takeover {
        println!(
            "{:>5}: 3 coordinators, one SIGKILLed {:.1} s in, {} fans / {} seats, {:.0} % declined: sold {}, errors {}, unknown {}, audit violations {}; {} of its {} purchases taken over, p50 {:.0} ms, p99 {:.0} ms after the kill",
            t.protocol,
            t.killed_after_s,
            t.fans,
            t.seats,
            t.decline_rate * 100.0,
            t.drop.sold,
            t.drop.errors,
            t.drop.unknown,
            audited(t.drop.audit_violations),
            t.taken_over,
            t.began_by_killed,
            t.takeover_p50_ms,
            t.takeover_p99_ms
        );
    }
    for run in &bench.confirmations {
        let d = &run.measured.drop;
        println!(
            "{:>5}: {} fans / {} seats, {}: all answered in {:.2} s, p99 {:.0} ms, {} of {} mails delivered{}",
            d.protocol,
            d.fans,
            d.seats,
            run.mode.label(),
            d.duration_s,
            d.p99_ms,
            run.delivered,
            d.sold,
            run.all_delivered_s
                .map_or(String::new(), |s| format!(" {s:.1} s later"))
        );
    }
    super::seat_map::print(&bench.seat_maps);
    for (label, latencies) in [
        ("fresh", &bench.latency_fresh),
        ("aged", &bench.latency_aged),
    ] {
        for l in latencies {
            println!(
                "{:>5}: {} sequential purchases, {label} store: p50 {:.1} ms, p99 {:.1} ms",
                l.protocol, l.purchases, l.p50_ms, l.p99_ms
            );
        }
    }
    super::goals::print(bench);
}

fn sales_per_s(m: &Measured) -> f64 {
    m.drop.sold as f64 / m.drop.last_sale_s.max(1e-9)
}

/// The CPU of every process measured: the stack's and the simulated fans' client.
fn cpu_total(m: &Measured) -> f64 {
    m.usage.values().map(|u| u.cpu_s).sum()
}

pub fn markdown(
    bench: &Bench,
    path: &Path,
    svg: Option<&Path>,
    args: &BenchArgs,
) -> anyhow::Result<()> {
    let kept = std::fs::read_to_string(path)
        .ok()
        .and_then(|old| old.find(ANALYSIS).map(|at| old[at..].to_owned()));
    let mut out = String::new();
    let machine = crate::machine::Machine::read();
    let w = &mut out;
    writeln!(w, "# Benchmarks\n")?;
    writeln!(
        w,
        "`make bench`: a freshly reset local stack (`make stack-reset`, then `make up`: release \
         builds, DynamoDB Local with `-dbPath`, PostgreSQL with fsync, Redis with its \
         append-only file), then `ticketdrop bench --scaling`. Every figure below comes from \
         that one run.\n"
    )?;
    writeln!(
        w,
        "Machine: {} cores ({}), {} of memory. Commit {}, {}.\n",
        machine.cores,
        machine.cpu,
        machine.memory,
        machine.commit,
        chrono::Utc::now().format("%Y-%m-%d")
    )?;

    super::goals::markdown(w, bench)?;
    writeln!(w, "## The stores' own pace\n")?;
    writeln!(
        w,
        "Measured first, in the same run, at concurrency {} (PostgreSQL: {} connections).\n",
        bench.stores.dynamodb_sale.concurrency, bench.stores.postgres_prepared.concurrency
    )?;
    writeln!(
        w,
        "| operation | per second | sales per second | p50 (ms) | p99 (ms) |"
    )?;
    writeln!(w, "| --- | ---: | ---: | ---: | ---: |")?;
    let s = &bench.stores;
    for rate in std::iter::once(&s.dynamodb_sale)
        .chain(&s.dynamodb_grouped)
        .chain([&s.postgres_prepared, &s.redis_set_nx_px])
    {
        writeln!(
            w,
            "| {} | {:.0} | {:.0} | {:.1} | {:.1} |",
            rate.what, rate.operations_per_s, rate.sales_per_s, rate.p50_ms, rate.p99_ms
        )?;
    }

    let raw = s.dynamodb_sale.sales_per_s;
    writeln!(w, "\n## The drop\n")?;
    writeln!(
        w,
        "`{}` fans through the waiting room ({} buying at once), `{}` seats, one seat each. \
         Sales/s is the seats sold over the time until the last sale; efficiency is that \
         against one raw TransactWriteItems per sale ({raw:.0}/s above). Goals: every fan \
         answered within 5 s, efficiency at least 80 %.\n",
        args.fans, args.concurrency, args.seats
    )?;
    writeln!(w, "| | {} |", names(&bench.drops))?;
    writeln!(w, "| --- |{}", " ---: |".repeat(bench.drops.len()))?;
    type Cell = fn(&Measured) -> String;
    let rows: [(&str, Cell); 11] = [
        ("sold", |m| m.drop.sold.to_string()),
        ("oversold (audit)", |m| audited(m.drop.oversold)),
        ("audit violations", |m| audited(m.drop.audit_violations)),
        ("told sold out", |m| m.drop.sold_out.to_string()),
        ("errors / unknown", |m| {
            format!("{} / {}", m.drop.errors, m.drop.unknown)
        }),
        ("**every fan answered (s)**", |m| {
            format!("**{:.2}**", m.drop.duration_s)
        }),
        ("last sale (s)", |m| format!("{:.2}", m.drop.last_sale_s)),
        ("sales/s", |m| format!("{:.0}", sales_per_s(m))),
        ("**efficiency**", |m| {
            format!("**{:.0} %**", m.efficiency_pct)
        }),
        ("purchase p50 / p99 (ms)", |m| {
            format!("{:.0} / {:.0}", m.drop.p50_ms, m.drop.p99_ms)
        }),
        ("CPU s per sale (all processes)", |m| {
            format!("{:.3}", cpu_total(m) / (m.drop.sold.max(1)) as f64)
        }),
    ];
    for (label, cell) in rows {
        let cells: Vec<String> = bench.drops.iter().map(cell).collect();
        writeln!(w, "| {label} | {} |", cells.join(" | "))?;
    }
    if let Some(svg) = svg {
        let name = svg
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("drop.svg");
        writeln!(w, "\n![Sales and answers over time, per protocol]({name})")?;
    }

    cpu_split(w, &bench.drops)?;
    super::ops::markdown(w, &bench.drops, bench.idle.as_ref())?;

    writeln!(w, "\n## Uncontended purchase latency\n")?;
    writeln!(
        w,
        "One purchase at a time, one seat, no waiting room. Goal: p99 at most 25 ms, on the \
         fresh store and on the store aged by this run's drops ({} fans).\n",
        bench.fans_before_aged
    )?;
    writeln!(
        w,
        "| protocol | fresh p50 | fresh p99 | aged p50 | aged p99 | aged max |"
    )?;
    writeln!(w, "| --- | ---: | ---: | ---: | ---: | ---: |")?;
    for (fresh, aged) in bench.latency_fresh.iter().zip(&bench.latency_aged) {
        writeln!(
            w,
            "| {} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms |",
            fresh.protocol, fresh.p50_ms, fresh.p99_ms, aged.p50_ms, aged.p99_ms, aged.max_ms
        )?;
    }

    super::seat_map::markdown(w, &bench.seat_maps)?;

    if !bench.scaling.is_empty() {
        writeln!(w, "\n## How cost grows\n")?;
        writeln!(
            w,
            "Each drop through the waiting room. CPU is every process during the drop (the \
             services, PostgreSQL, DynamoDB Local, Redis and the fans' own client); memory is \
             each process's peak resident set.\n"
        )?;
        let mut all: Vec<&Measured> = bench.drops.iter().chain(&bench.scaling).collect();
        all.sort_by_key(|m| (m.drop.seats, m.drop.fans, m.drop.protocol));
        let processes: Vec<String> = all
            .first()
            .map(|m| m.usage.keys().cloned().collect())
            .unwrap_or_default();
        writeln!(
            w,
            "| protocol | fans | seats | duration (s) | sales/s | answers/s | CPU s/sale | {} |",
            processes
                .iter()
                .map(|p| format!("{p} peak MiB"))
                .collect::<Vec<_>>()
                .join(" | ")
        )?;
        writeln!(
            w,
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |{}",
            " ---: |".repeat(processes.len())
        )?;
        for m in all {
            let d = &m.drop;
            let memory: Vec<String> = processes
                .iter()
                .map(|p| {
                    m.usage
                        .get(p)
                        .map_or("-".into(), |u| format!("{:.0}", u.peak_rss_mib))
                })
                .collect();
            writeln!(
                w,
                "| {} | {} | {} | {:.2} | {:.0} | {:.0} | {:.3} | {} |",
                d.protocol,
                d.fans,
                d.seats,
                d.duration_s,
                sales_per_s(m),
                f64::from(d.fans) / d.duration_s.max(1e-9),
                cpu_total(m) / d.sold.max(1) as f64,
                memory.join(" | ")
            )?;
        }
    }
    coordinators(w, bench)?;
    confirmations(w, bench)?;
    if let Some(kept) = kept {
        writeln!(w, "\n{kept}")?;
    }
    std::fs::write(path, out)?;
    Ok(())
}

/// Several coordinators on one log: the headline drop with 1, 2 and 3, and one killed.
fn coordinators(w: &mut String, bench: &Bench) -> std::fmt::Result {
    if bench.coordinators.is_empty() {
        return Ok(());
    }
    writeln!(w, "\n## Several coordinators on one log\n")?;
    writeln!(
        w,
        "The headline drop under 2pc, its fans' calls spread over 1, 2 and 3 coordinators \
         sharing the log (`make up` runs two; the bench starts the third). The stores are \
         shared too, so the coordinators add no pace the stores do not have: the rows show \
         what more coordinators cost or buy on this machine's two cores.\n"
    )?;
    writeln!(
        w,
        "| coordinators | fans | seats | all answered (s) | sales/s | % of raw | CPU s/sale | coordinators' CPU s |"
    )?;
    writeln!(
        w,
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    )?;
    for scale in &bench.coordinators {
        let m = &scale.measured;
        let d = &m.drop;
        writeln!(
            w,
            "| {} | {} | {} | {:.2} | {:.0} | {:.0} % | {:.3} | {:.1} |",
            scale.coordinators,
            d.fans,
            d.seats,
            d.duration_s,
            sales_per_s(m),
            m.efficiency_pct,
            cpu_total(m) / d.sold.max(1) as f64,
            m.usage.get("coordinator").map_or(0.0, |u| u.cpu_s)
        )?;
    }
    if let Some(t) = &bench.takeover {
        writeln!(
            w,
            "\n**A coordinator killed.** Three coordinators, {} fans on {} seats under {}, {:.0} % \
             of cards declined; the third coordinator SIGKILLed {:.1} s into the drop and left \
             down. Sold {}, errors {}, unknown after settling {}, audit violations {}{}. It had \
             begun {} purchases; {} of them were unfinished and taken over by the other two, \
             p50 {:.0} ms, p99 {:.0} ms (longest {:.0} ms) after the kill (`--ownership-ttl-ms` \
             4000, takeover every 500 ms).",
            t.fans,
            t.seats,
            t.protocol,
            t.decline_rate * 100.0,
            t.killed_after_s,
            t.drop.sold,
            t.drop.errors,
            t.drop.unknown,
            audited(t.drop.audit_violations),
            t.drop
                .audit_error
                .as_ref()
                .map_or(String::new(), |e| format!(" (NOT AUDITED: {e})")),
            t.began_by_killed,
            t.taken_over,
            t.takeover_p50_ms,
            t.takeover_p99_ms,
            t.takeover_max_ms
        )?;
    }
    Ok(())
}

/// The confirmation drops: the same drop with no contact, with email and SMTP up, and
/// with email and SMTP down, per protocol.
fn confirmations(w: &mut String, bench: &Bench) -> std::fmt::Result {
    let Some(first) = bench.confirmations.first() else {
        return Ok(());
    };
    writeln!(w, "\n## Confirmations never slow a purchase\n")?;
    writeln!(
        w,
        "The same drop ({} fans through the waiting room, {} seats) three times under each \
         protocol: with no contact on the purchases; with every fan's email while the SMTP \
         server is up; and with every fan's email while it is down (`scripts/stack.sh \
         smtp-down`) for the whole drop. Every committed purchase writes its outbox row in \
         the statement of its commit decision, contact or not; the relay and the notifier \
         send afterwards, off the purchase's path. \"All mails delivered after\" counts \
         from the drop's end, or from SMTP coming back.\n",
        first.measured.drop.fans, first.measured.drop.seats
    )?;
    writeln!(
        w,
        "| protocol | contact | every fan answered (s) | sales/s | purchase p50 / p99 (ms) | sold | mails delivered | failed attempts | all mails delivered after (s) | notifier CPU s |"
    )?;
    writeln!(
        w,
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    )?;
    for run in &bench.confirmations {
        let d = &run.measured.drop;
        let contact = run.mode != super::confirm::Mode::NoContact;
        writeln!(
            w,
            "| {} | {} | {:.2} | {:.0} | {:.0} / {:.0} | {} | {} | {} | {} | {:.1} |",
            d.protocol,
            run.mode.label(),
            d.duration_s,
            sales_per_s(&run.measured),
            d.p50_ms,
            d.p99_ms,
            d.sold,
            if contact {
                run.delivered.to_string()
            } else {
                "-".into()
            },
            if contact {
                run.failed_attempts.to_string()
            } else {
                "-".into()
            },
            run.all_delivered_s
                .map_or("-".into(), |s| format!("{s:.1}")),
            run.measured.usage.get("notifier").map_or(0.0, |u| u.cpu_s)
        )?;
    }
    Ok(())
}

/// Where each drop's CPU went, process by process, against what the machine offered
/// over the same window (/proc/stat): the processes, the rest of the machine and the
/// idle time add up to 100 %.
fn cpu_split(w: &mut String, drops: &[Measured]) -> std::fmt::Result {
    let Some(first) = drops.first() else {
        return Ok(());
    };
    writeln!(w, "\n### Where the CPU goes\n")?;
    writeln!(
        w,
        "CPU seconds each process spent from just before the first fan joined to the last \
         fan's answer, \
         and its share of the CPU time every core offered over that same window (read from \
         /proc/stat). The fans are this bench's own client, measured like the stack; \
         \"the rest of the machine\" is every other process and the kernel; idle is \
         measured, not derived. The column adds up to 100 %.\n"
    )?;
    writeln!(w, "| process | {} |", names(drops))?;
    writeln!(w, "| --- |{}", " ---: |".repeat(drops.len()))?;
    let share = |m: &Measured, cpu: f64| {
        format!(
            "{cpu:.1} s ({:.1} %)",
            100.0 * cpu / m.window.offered_cpu_s.max(1e-9)
        )
    };
    let mut processes: Vec<&String> = first.usage.keys().collect();
    processes.sort_by(|a, b| {
        let total = |p: &String| {
            drops
                .iter()
                .filter_map(|m| m.usage.get(p))
                .map(|u| u.cpu_s)
                .sum::<f64>()
        };
        total(b).total_cmp(&total(a))
    });
    for process in processes {
        let cells: Vec<String> = drops
            .iter()
            .map(|m| share(m, m.usage.get(process).map_or(0.0, |u| u.cpu_s)))
            .collect();
        writeln!(w, "| {process} | {} |", cells.join(" | "))?;
    }
    let rest: Vec<String> = drops
        .iter()
        .map(|m| share(m, m.window.busy_cpu_s - cpu_total(m)))
        .collect();
    writeln!(w, "| the rest of the machine | {} |", rest.join(" | "))?;
    let idle: Vec<String> = drops
        .iter()
        .map(|m| share(m, m.window.idle_cpu_s))
        .collect();
    writeln!(w, "| idle | {} |", idle.join(" | "))?;
    let offered: Vec<String> = drops
        .iter()
        .map(|m| {
            format!(
                "{:.1} s over {:.2} s",
                m.window.offered_cpu_s, m.window.seconds
            )
        })
        .collect();
    writeln!(w, "| offered (100 %) | {} |", offered.join(" | "))
}

fn names(drops: &[Measured]) -> String {
    drops
        .iter()
        .map(|m| m.drop.protocol)
        .collect::<Vec<_>>()
        .join(" | ")
}

/// What a panel of the picture draws of a timeline point.
type Value = fn(&crate::load::TimelinePoint) -> u64;

/// Sold seats (left) and answered fans (right) over time, a line per protocol.
pub fn svg(bench: &Bench, path: &Path) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (900, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(450);
    let end = bench
        .drops
        .iter()
        .map(|m| m.drop.duration_s)
        .fold(1.0, f64::max);
    let colors = [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
    ];
    let sold_top = bench.drops.iter().map(|m| m.drop.sold).max().unwrap_or(1);
    let fans_top = bench
        .drops
        .iter()
        .map(|m| u64::from(m.drop.fans))
        .max()
        .unwrap_or(1);
    let panels: [(_, _, Value, _); 2] = [
        (&left, "seats sold", |p| p.sold, sold_top.max(1)),
        (&right, "fans answered", |p| p.answered, fans_top.max(1)),
    ];
    for (area, title, value, top) in panels {
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(32)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..end, 0u64..top + top / 20)?;
        chart
            .configure_mesh()
            .x_desc("seconds since the drop began")
            .disable_x_mesh()
            .draw()?;
        for (m, color) in bench.drops.iter().zip(colors) {
            chart
                .draw_series(LineSeries::new(
                    m.drop.timeline.iter().map(|p| (p.t_s, value(p))),
                    color.stroke_width(2),
                ))?
                .label(m.drop.protocol)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}
