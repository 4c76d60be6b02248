//! docs/debugging.md cannot rot: every ```sh block in it runs, in order, in bash
//! against a fresh mesh, with `ticketdrop` on the PATH and the mesh's endpoints in the
//! environment. A block must succeed; a line ending in `# refused` must fail. The
//! ```text block after it must show what the commands printed: the same lines, once ids,
//! times and figures are masked (a run's ids and timings are its own; retries repeat a
//! line a varying number of times, and parallel steps print in either order).
//!
//! With TICKETDROP_WRITE_DEBUGGING_DOC=1 the ```text block after each ```sh block is
//! rewritten with what the commands printed, so the document shows a real run.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use local_mesh::MeshOptions;

use crate::common::*;

/// One ```sh block: its script, and the line range of the ```text block after it.
struct Block {
    script: String,
    output: Option<(usize, usize)>,
}

fn doc_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/debugging.md")
}

/// The fenced blocks of the document, in order.
fn blocks(lines: &[&str]) -> Vec<Block> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() != "```sh" {
            i += 1;
            continue;
        }
        let end = (i + 1..lines.len())
            .find(|&j| lines[j].trim() == "```")
            .expect("every ```sh block is closed");
        let script = lines[i + 1..end].join("\n");
        // The ```text block that follows, past blank lines only.
        let mut next = end + 1;
        while next < lines.len() && lines[next].trim().is_empty() {
            next += 1;
        }
        let output = (next < lines.len() && lines[next].trim() == "```text").then(|| {
            let close = (next + 1..lines.len())
                .find(|&j| lines[j].trim() == "```")
                .expect("every ```text block is closed");
            (next, close)
        });
        found.push(Block { script, output });
        i = end + 1;
    }
    found
}

/// The distinct lines of an output, as the comparison sees them: every run of hex digits
/// of six or more holding a digit (txids, order and payment ids, trace ids, the drop's
/// run id) becomes `ID`, every other number `#`; runs of spaces and of a table's rules
/// shrink to one, and a line's trailing comma goes.
fn masked(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(mask_line)
        .filter(|line| !line.is_empty())
        .collect()
}

fn mask_line(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_hexdigit() {
            let end = (i..chars.len())
                .find(|&j| !chars[j].is_ascii_hexdigit())
                .unwrap_or(chars.len());
            let run = &chars[i..end];
            if run.len() >= 6 && run.iter().any(char::is_ascii_digit) {
                out.push_str("ID");
            } else {
                let mut digits = false;
                for &d in run {
                    if d.is_ascii_digit() {
                        if !digits {
                            out.push('#');
                        }
                        digits = true;
                    } else {
                        out.push(d);
                        digits = false;
                    }
                }
            }
            i = end;
            continue;
        }
        let repeats = matches!(c, ' ' | '─' | '═' | '-');
        if !(repeats && out.ends_with(c)) {
            out.push(c);
        }
        i += 1;
    }
    // "#.#" is one figure.
    while out.contains("#.#") {
        out = out.replace("#.#", "#");
    }
    out.trim().trim_end_matches(',').to_owned()
}

/// The block as bash runs it: a `# refused` line must fail.
fn runnable(script: &str) -> String {
    script
        .lines()
        .map(|line| match line.trim_end().strip_suffix("# refused") {
            Some(command) => format!(
                "if {command}; then echo 'expected a refusal: {}' >&2; exit 1; fi",
                command.trim().replace('\'', "'\\''")
            ),
            None => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_in_the_debugging_guide_runs_against_the_mesh() {
    // Recovery looks for parked purchases every 10 s (not every 0.5 s): a purchase the
    // guide shows parked stays parked for at least that long, however loaded the machine.
    let cli = Cli::start_with(MeshOptions {
        coordinator_args: vec![
            "--recovery-interval-ms",
            "10000",
            "--takeover-interval-ms",
            "10000",
        ],
        ..MeshOptions::default()
    })
    .await;
    let text = std::fs::read_to_string(doc_path()).expect("docs/debugging.md");
    let lines: Vec<&str> = text.lines().collect();
    let blocks = blocks(&lines);
    assert!(blocks.len() >= 10, "the guide's blocks: {}", blocks.len());
    let commands = blocks
        .iter()
        .flat_map(|b| b.script.lines())
        .filter(|l| l.trim_start().starts_with("ticketdrop "))
        .count();
    assert!(commands >= 20, "{commands} ticketdrop commands");

    let bin = Path::new(env!("CARGO_BIN_EXE_ticketdrop"))
        .parent()
        .expect("the binary's directory")
        .to_owned();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let workdir = tempfile::tempdir().expect("a working directory");
    let mut outputs = Vec::new();
    for block in &blocks {
        let output = tokio::process::Command::new("bash")
            .args(["-euo", "pipefail", "-c"])
            .arg(format!("exec 2>&1\n{}", runnable(&block.script)))
            .current_dir(workdir.path())
            .env("PATH", &path)
            .envs(cli.environment())
            .env_remove("TICKETDROP_TOKEN")
            .output()
            .await
            .expect("bash runs");
        let printed = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "this block of docs/debugging.md failed ({}):\n{}\n--- it printed:\n{printed}",
            output.status,
            block.script
        );
        outputs.push(printed);
    }
    if std::env::var_os("TICKETDROP_WRITE_DEBUGGING_DOC").is_none() {
        for (block, printed) in blocks.iter().zip(&outputs) {
            let Some((open, close)) = block.output else {
                continue;
            };
            let shown = masked(&lines[open + 1..close].join("\n"));
            let ran = masked(printed);
            assert_eq!(
                shown,
                ran,
                "docs/debugging.md shows other output for this block than it prints \
                 (ids, times and figures masked; rewrite the blocks with \
                 TICKETDROP_WRITE_DEBUGGING_DOC=1):\n{}\n--- only in the document: {:?}\n\
                 --- only in the run: {:?}",
                block.script,
                shown.difference(&ran).collect::<Vec<_>>(),
                ran.difference(&shown).collect::<Vec<_>>(),
            );
        }
    }

    // What the race recipe shows: one of the two fans bought the seat, the other was
    // refused, and the side-by-side views hold both purchases.
    let race = cli
        .json(&[
            "txn", "show", "--key", "race-ana", "--key", "race-bob", "--format", "json",
        ])
        .await;
    let mut states: Vec<&str> = race["transactions"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|t| t["state"].as_str().expect("a state"))
        .collect();
    states.sort_unstable();
    assert_eq!(states, ["ABORTED", "COMMITTED"], "{race}");
    let txids: Vec<&str> = race["transactions"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|t| t["txid"].as_str().expect("a txid"))
        .collect();
    let columns = cli
        .text(&["txn", "show", "--key", "race-ana", "--key", "race-bob"])
        .await;
    let heading = columns.lines().nth(1).expect("the txid line");
    assert!(txids.iter().all(|txid| heading.contains(txid)), "{columns}");
    let gantt = cli
        .text(&[
            "txn", "show", "--key", "race-ana", "--key", "race-bob", "--format", "mermaid",
        ])
        .await;
    assert_eq!(gantt.lines().next(), Some("gantt"), "{gantt}");
    assert_eq!(
        gantt
            .lines()
            .filter(|l| l.trim_start().starts_with("section "))
            .count(),
        2,
        "{gantt}"
    );
    let bars = gantt
        .lines()
        .skip(4)
        .filter(|l| !l.trim_start().starts_with("section "));
    for bar in bars {
        let (_, data) = bar.split_once(" :").expect("a bar is NAME :DATA");
        let fields: Vec<&str> = data.split(", ").collect();
        let [.., start, end] = fields.as_slice() else {
            panic!("a bar has an id, a start and an end: {bar}");
        };
        let (start, end): (u64, u64) = (start.parse().expect("ms"), end.parse().expect("ms"));
        assert!(start < end, "{bar}");
    }

    // `txn list --user` finds a fan's purchase, with how long it took.
    let ana = cli
        .json(&["txn", "list", "--user", "ana", "--format", "json"])
        .await;
    let listed = ana["transactions"].as_array().expect("a list");
    assert_eq!(listed.len(), 1, "{ana}");
    assert_eq!(listed[0]["user_id"], "ana");
    assert_eq!(listed[0]["idempotency_key"], "race-ana");
    assert!(
        listed[0]["duration_ms"].as_f64().expect("finished") > 0.0,
        "{ana}"
    );

    if std::env::var_os("TICKETDROP_WRITE_DEBUGGING_DOC").is_some() {
        let mut rewritten: Vec<String> = Vec::new();
        let mut at = 0;
        for (block, printed) in blocks.iter().zip(&outputs) {
            let Some((open, close)) = block.output else {
                continue;
            };
            rewritten.extend(lines[at..=open].iter().map(|l| (*l).to_owned()));
            rewritten.extend(printed.trim_end().lines().map(str::to_owned));
            at = close;
        }
        rewritten.extend(lines[at..].iter().map(|l| (*l).to_owned()));
        std::fs::write(doc_path(), rewritten.join("\n") + "\n").expect("the guide is written");
    }
}

#[test]
fn the_mask_keeps_words_and_hides_ids_times_and_figures() {
    assert_eq!(
        mask_line("tx-01a23abb49a9748981af190e5edf2355 (saga) is ABORTED"),
        "tx-ID (saga) is ABORTED"
    );
    assert_eq!(
        mask_line("+53.9ms payments.authorize #1 FAILED 21.3ms"),
        "+#ms payments.authorize ## FAILED #ms"
    );
    assert_eq!(
        mask_line("│ duration                         ┆ 3.20 s                 │"),
        "│ duration ┆ # s │"
    );
    assert_eq!(mask_line("fan-f581fab7-137,"), "fan-ID-#");
    // A word changed is a line changed.
    assert_ne!(
        mask_line("payments.authorize #1 FAILED"),
        mask_line("payments.authorize #1 SUCCEEDED")
    );
}
