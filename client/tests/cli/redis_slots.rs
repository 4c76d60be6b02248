//! Redis Cluster can hold the mesh's keys only if every command touches one hash slot:
//! every key of one event — the waiting room's and the lease protocol's — must hash to
//! that event's slot, and every script must touch one slot. Observed, not assumed: a
//! drop under each protocol, through the waiting room, runs on a Redis of its own while
//! `redis-cli monitor` records every command (a script's own commands too), and each is
//! checked with the slot function of Redis Cluster (CRC16 of the `{...}` hash tag).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use local_mesh::{MeshOptions, PrivateRedis};
use tokio::io::AsyncBufReadExt;

use crate::common::*;

/// Redis Cluster's key slot: CRC16/XMODEM of the hash tag (the text between the first
/// `{` and the next `}`, if not empty), else of the whole key, modulo 16384.
fn slot(key: &str) -> u16 {
    let hashed = key
        .find('{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            rest.find('}')
                .filter(|&close| close > 0)
                .map(|close| &rest[..close])
        })
        .unwrap_or(key);
    let mut crc: u16 = 0;
    for byte in hashed.bytes() {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16384
}

/// One line of `redis-cli monitor`: who sent it (`lua` for a script's own commands) and
/// the command's arguments, unquoted.
fn parse_monitor_line(line: &str) -> Option<(String, Vec<String>)> {
    let open = line.find('[')?;
    let close = open + line[open..].find(']')?;
    let client = line[open + 1..close].split_whitespace().nth(1)?.to_owned();
    let mut args = Vec::new();
    let mut chars = line[close + 1..].chars().peekable();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut arg = String::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next()? {
                    'n' => arg.push('\n'),
                    'r' => arg.push('\r'),
                    't' => arg.push('\t'),
                    'x' => {
                        let hex: String = [chars.next()?, chars.next()?].iter().collect();
                        arg.push(char::from(u8::from_str_radix(&hex, 16).ok()?));
                    }
                    other => arg.push(other),
                },
                other => arg.push(other),
            }
        }
        args.push(arg);
    }
    Some((client, args))
}

/// The keys of a command, by Redis's key specs for the commands the mesh sends.
fn keys_of(args: &[String]) -> Vec<String> {
    let Some(name) = args.first().map(|n| n.to_ascii_uppercase()) else {
        return Vec::new();
    };
    match name.as_str() {
        "EVAL" | "EVALSHA" | "EVAL_RO" | "EVALSHA_RO" | "FCALL" | "FCALL_RO" => {
            let count: usize = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(0);
            args.iter().skip(3).take(count).cloned().collect()
        }
        "DEL" | "UNLINK" | "EXISTS" | "MGET" | "TOUCH" => args[1..].to_vec(),
        "PING" | "ECHO" | "CLIENT" | "HELLO" | "SELECT" | "INFO" | "SCRIPT" | "TIME" | "SCAN"
        | "KEYS" | "MONITOR" | "COMMAND" | "CONFIG" | "AUTH" | "MULTI" | "EXEC" | "DISCARD"
        | "READONLY" | "DBSIZE" | "FLUSHALL" | "FLUSHDB" => Vec::new(),
        _ => args.get(1).cloned().into_iter().collect(),
    }
}

/// A command (a script with the commands it ran) whose keys are in more than one slot,
/// or a key of one of `events` outside its event's slot.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Violation {
    /// `script` for EVAL and EVALSHA.
    command: String,
    slots: BTreeSet<u16>,
    /// The keys, with the event as `E` and the room's prefix as `P`: the same defect
    /// reads the same for every event.
    keys: BTreeSet<String>,
}

fn violations(lines: &[String], events: &[String], prefix: &str) -> BTreeSet<Violation> {
    let shape = |key: &str| {
        let mut key = key.replacen(prefix, "P", 1);
        for event in events {
            key = key.replace(event.as_str(), "E");
        }
        key
    };
    // Each client command, with the commands a script ran right after it (a script is
    // atomic: nothing else runs between them).
    let mut calls: Vec<(String, Vec<String>)> = Vec::new();
    for line in lines {
        let Some((client, args)) = parse_monitor_line(line) else {
            continue;
        };
        let keys = keys_of(&args);
        match (client == "lua", calls.last_mut()) {
            (true, Some((_, call_keys))) => call_keys.extend(keys),
            _ => {
                let command = args[0].to_ascii_uppercase();
                let command = if command.starts_with("EVAL") {
                    "script".to_owned()
                } else {
                    command
                };
                calls.push((command, keys));
            }
        }
    }
    let mut found = BTreeSet::new();
    for (command, keys) in &calls {
        let slots: BTreeSet<u16> = keys.iter().map(|k| slot(k)).collect();
        let outside = keys.iter().any(|key| {
            events
                .iter()
                .any(|e| key.contains(e.as_str()) && slot(key) != slot(&format!("{{{e}}}")))
        });
        if slots.len() > 1 || outside {
            found.insert(Violation {
                command: command.clone(),
                slots,
                keys: keys.iter().map(|k| shape(k)).collect(),
            });
        }
    }
    found
}

#[test]
fn the_slot_function_is_redis_clusters() {
    // The CRC16 check value of the Redis Cluster specification.
    assert_eq!(slot("123456789"), 0x31C3);
    assert_eq!(slot("lock:seat:{rush}:A-1-1"), slot("fencing:{rush}"));
    assert_eq!(slot("room:{rush}:queue"), slot("rush"));
    // An empty tag hashes the whole key.
    assert_eq!(slot("a{}b"), slot("a{}b"));
    assert_ne!(slot("x{}1"), slot("x{}2"));
    assert_eq!(
        parse_monitor_line(r#"1.5 [0 lua] "set" "k:{a}" "v\"1\x41""#),
        Some((
            "lua".to_owned(),
            vec!["set".to_owned(), "k:{a}".to_owned(), "v\"1A".to_owned()]
        ))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_redis_key_of_an_event_lives_in_the_events_hash_slot() {
    let redis = PrivateRedis::start().expect("a private redis");
    let url = redis.url();
    let mut monitor = tokio::process::Command::new("redis-cli")
        .args(["-u", &url, "monitor"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-cli monitor runs");
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut reader = tokio::io::BufReader::new(monitor.stdout.take().expect("a pipe")).lines();
    let collected = lines.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = reader.next_line().await {
            collected.lock().expect("not poisoned").push(line);
        }
    });
    let seen = |text: &'static str| {
        let lines = lines.clone();
        move || {
            let found = lines
                .lock()
                .expect("not poisoned")
                .iter()
                .any(|l| l.contains(text));
            async move { found }
        }
    };
    local_mesh::eventually("MONITOR to start", Duration::from_secs(10), seen("OK")).await;

    let cli = Cli::start_with(MeshOptions {
        env: vec![("TICKETDROP_REDIS_URL", url.as_str())],
        ..MeshOptions::default()
    })
    .await;
    let reports = cli
        .json(&[
            "drop",
            "--event",
            "slots",
            "--protocol",
            "all",
            "--fans",
            "80",
            "--seats",
            "20",
            "--redis-url",
            &url,
            "--json",
        ])
        .await;
    for report in reports.as_array().expect("one report per protocol") {
        assert_eq!(report["sold"], 20, "{report}");
        assert_eq!(report["audit_violations"], 0, "{report}");
    }
    // A fan leaving a room (leave.lua), which a drop does not do.
    cli.text(&[
        "room",
        "leave",
        "--event",
        "slots-2pc",
        "--user",
        "fan-left",
    ])
    .await;
    // Everything sent so far is in the monitor's output once this is.
    let end = tokio::process::Command::new("redis-cli")
        .args(["-u", &url, "echo", "ticketdrop-slots-end"])
        .output()
        .await
        .expect("redis-cli echo");
    assert!(end.status.success());
    local_mesh::eventually(
        "the monitor to see the end",
        Duration::from_secs(10),
        seen("ticketdrop-slots-end"),
    )
    .await;

    let lines = lines.lock().expect("not poisoned").clone();
    let scripts = lines
        .iter()
        .filter_map(|line| parse_monitor_line(line))
        .filter(|(client, args)| {
            client != "lua" && args[0].to_ascii_uppercase().starts_with("EVAL")
        })
        .count();
    assert!(
        scripts > 100,
        "the drops ran the scripts: {scripts} script calls"
    );
    let events: Vec<String> = ["2pc", "saga", "lease"]
        .iter()
        .map(|p| format!("slots-{p}"))
        .collect();
    let prefix = &cli.mesh.room_prefix;
    let lease_keys = lines.iter().any(|l| l.contains("lock:seat:{slots-lease}:"));
    assert!(lease_keys, "the lease drop took seat leases");
    let left = lines.iter().any(|l| l.contains(":fan:fan-left"));
    assert!(left, "the room ran the leave script");
    // Known, reported with issue 27: opening a room adds the event to the set of every
    // room (`P:rooms`) in the same script as the room's hash, across two slots, which
    // Redis Cluster refuses (CROSSSLOT). Every other command stays in its event's slot.
    let known: BTreeSet<Violation> = events
        .iter()
        .map(|event| Violation {
            command: "script".to_owned(),
            slots: [
                slot(&format!("{{{event}}}")),
                slot(&format!("{prefix}:rooms")),
            ]
            .into(),
            keys: ["P:{E}".to_owned(), "P:rooms".to_owned()].into(),
        })
        .collect();
    let found = violations(&lines, &events, prefix);
    let unexpected: Vec<&Violation> = found.difference(&known).collect();
    assert!(
        unexpected.is_empty(),
        "commands across slots, or keys outside their event's slot: {unexpected:#?}"
    );
    assert_eq!(
        found, known,
        "OpenRoom no longer crosses slots? Then `known` goes: every key is in its event's slot"
    );
    drop(redis);
}
