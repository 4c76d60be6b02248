use std::collections::HashSet;

use crate::common::*;

/// A declared participant: (id, display name).
type Declared = (String, String);
/// An arrow: (from, to, message).
type Arrow = (String, String, String);

/// A structural parse of a sequence diagram: its declared participants and its arrows.
/// Panics on a line it does not understand.
fn parse_sequence(diagram: &str) -> (Vec<Declared>, Vec<Arrow>) {
    let mut lines = diagram.lines();
    assert_eq!(
        lines.next().map(str::trim),
        Some("sequenceDiagram"),
        "the diagram type line"
    );
    let mut participants = Vec::new();
    let mut arrows = Vec::new();
    for line in lines.map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("participant ") {
            let (id, name) = rest.split_once(" as ").expect("participant ID as NAME");
            participants.push((id.to_owned(), name.to_owned()));
        } else if line.starts_with("title ") {
        } else {
            let (head, message) = line
                .split_once(": ")
                .unwrap_or_else(|| panic!("not an arrow: {line}"));
            let (from, to) = head
                .split_once("-->>")
                .or_else(|| head.split_once("->>"))
                .unwrap_or_else(|| panic!("not an arrow: {line}"));
            arrows.push((from.to_owned(), to.to_owned(), message.to_owned()));
        }
    }
    (participants, arrows)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_and_failure_diagrams_are_well_formed_mermaid() {
    let cli = Cli::start().await;
    cli.event("diagram", 4, "").await;
    let bought = cli
        .json(&[
            "purchase",
            "--user",
            "di",
            "--event",
            "diagram",
            "--seats",
            "A-1-1",
            "--protocol",
            "2pc",
            "--json",
        ])
        .await;
    for (user, seat, protocol) in [
        ("x", "A-1-2", "saga"),
        ("y", "A-1-3", "lease"),
        ("z", "A-1-4", "saga"),
    ] {
        let output = cli
            .run(&[
                "purchase",
                "--user",
                user,
                "--event",
                "diagram",
                "--seats",
                seat,
                "--protocol",
                protocol,
                "--card",
                "tok_declined",
            ])
            .await;
        assert_eq!(output.status.code(), Some(1));
    }

    let diagram = cli
        .text(&[
            "txn",
            "show",
            bought["txid"].as_str().unwrap(),
            "--format",
            "mermaid",
        ])
        .await;
    let (participants, arrows) = parse_sequence(&diagram);
    let ids: HashSet<&str> = participants.iter().map(|(id, _)| id.as_str()).collect();
    let names: Vec<&str> = participants.iter().map(|(_, name)| name.as_str()).collect();
    assert_eq!(
        names,
        ["coordinator", "inventory-pg", "orders-dynamo", "payments"]
    );
    for (from, to, _) in &arrows {
        assert!(
            ids.contains(from.as_str()) && ids.contains(to.as_str()),
            "arrow {from} -> {to} between declared participants"
        );
    }
    let requests: Vec<&str> = arrows
        .iter()
        .filter(|(from, _, _)| from == "C")
        .map(|(_, _, m)| m.as_str())
        .collect();
    // One step per participant and phase. A phase-two call retried on a loaded machine
    // (a cold DynamoDB Local answering past the call's timeout) adds an attempt, #2,
    // never a step: count first attempts, and one answer per request.
    let first_attempts = |phase: &str| {
        requests
            .iter()
            .filter(|m| m.starts_with(phase) && m.ends_with(" #1"))
            .count()
    };
    assert_eq!(first_attempts("prepare"), 3, "{requests:?}");
    assert_eq!(first_attempts("commit"), 3, "{requests:?}");
    assert!(
        requests
            .iter()
            .all(|m| m.starts_with("prepare") || m.starts_with("commit")),
        "{requests:?}"
    );
    assert_eq!(
        arrows.len(),
        2 * requests.len(),
        "one request and one answer per attempt"
    );

    for group_by in ["error", "message", "protocol", "step", "participant"] {
        let summary = cli
            .json(&[
                "txn",
                "failures",
                "--since",
                "10m",
                "--group-by",
                group_by,
                "--format",
                "json",
            ])
            .await;
        let pie = cli
            .text(&[
                "txn",
                "failures",
                "--since",
                "10m",
                "--group-by",
                group_by,
                "--format",
                "mermaid",
            ])
            .await;
        let mut lines = pie.lines();
        assert!(
            lines.next().is_some_and(|l| l.starts_with("pie title ")),
            "the diagram type line: {pie}"
        );
        let slices: Vec<(String, u64)> = lines
            .map(|line| {
                let (label, count) = line
                    .trim()
                    .rsplit_once(" : ")
                    .unwrap_or_else(|| panic!("not a slice: {line}"));
                assert!(
                    label.starts_with('"') && label.ends_with('"'),
                    "a quoted label: {line}"
                );
                (
                    label.trim_matches('"').to_owned(),
                    count.parse().expect("a count"),
                )
            })
            .collect();
        assert_eq!(
            slices.iter().map(|(_, n)| n).sum::<u64>(),
            summary["total"].as_u64().unwrap(),
            "{group_by}"
        );
        assert_eq!(
            summary["total"], 3,
            "three declined purchases, one failed step each"
        );
        if group_by == "protocol" {
            let mut keys: Vec<&str> = slices.iter().map(|(k, _)| k.as_str()).collect();
            keys.sort();
            assert_eq!(keys, ["lease", "saga"]);
        }
    }
}
