//! Mermaid diagrams of the transaction log: a sequence diagram of one purchase
//! (coordinator ↔ participants, with timings), a Gantt chart of several purchases on
//! one clock, and pie charts of failures.

use proto::v1::*;

use crate::json;

/// Mermaid ids and display names of the parties, in the order they are declared.
const PARTIES: [(Participant, &str, &str); 6] = [
    (Participant::Coordinator, "C", "coordinator"),
    (Participant::WaitingRoom, "W", "waiting-room"),
    (Participant::Inventory, "I", "inventory-pg"),
    (Participant::Orders, "O", "orders-dynamo"),
    (Participant::Payments, "P", "payments"),
    (Participant::Locks, "L", "redis locks"),
];

fn id(participant: Participant) -> &'static str {
    PARTIES
        .iter()
        .find(|(p, _, _)| *p == participant)
        .map_or("C", |(_, id, _)| id)
}

/// A sequence diagram: one request arrow and one answer arrow per attempt.
pub fn sequence(txn: &Transaction, child: &crate::notifications::Child) -> String {
    let mut out = String::from("sequenceDiagram\n");
    out.push_str(&format!(
        "    title {} {} ({})\n",
        json::protocol(txn.protocol()),
        txn.txid,
        json::short_enum(txn.state().as_str_name(), "TRANSACTION_STATE_")
    ));
    let used: Vec<Participant> = txn.steps.iter().map(|s| s.participant()).collect();
    for (participant, id, name) in PARTIES {
        if participant == Participant::Coordinator || used.contains(&participant) {
            out.push_str(&format!("    participant {id} as {name}\n"));
        }
    }
    for step in &txn.steps {
        let to = id(step.participant());
        let compensation = if step.compensation {
            " (compensation)"
        } else {
            ""
        };
        out.push_str(&format!(
            "    C->>{to}: {} #{}{}\n",
            step.operation, step.attempt, compensation
        ));
        let outcome = json::short_enum(step.outcome().as_str_name(), "STEP_OUTCOME_");
        let error = if step.error.is_empty() {
            String::new()
        } else {
            format!(" {}", sanitize(&step.error))
        };
        out.push_str(&format!(
            "    {to}-->>C: {outcome} {:.1} ms{error}\n",
            json::step_millis(step)
        ));
    }
    confirmation(&mut out, child);
    out
}

/// The confirmation child, when it has deliveries: the relay's hand-over to the
/// notifier, then one request and one answer per delivery attempt.
fn confirmation(out: &mut String, child: &crate::notifications::Child) {
    let Some(confirmation) = &child.confirmation else {
        return;
    };
    if confirmation.deliveries.is_empty() {
        return;
    }
    out.push_str("    participant N as notifier\n");
    let channels = [
        (Channel::Email, "E", "email"),
        (Channel::Sms, "S", "sms"),
        (Channel::Webhook, "H", "webhook"),
    ];
    for (channel, id, name) in channels {
        if confirmation
            .deliveries
            .iter()
            .any(|d| d.channel() == channel)
        {
            out.push_str(&format!("    participant {id} as {name}\n"));
        }
    }
    let relays = child.outbox.as_ref().map_or(0, |o| o.attempts);
    out.push_str(&format!("    C->>N: confirm (relay #{relays})\n"));
    out.push_str("    N-->>C: OK\n");
    for attempt in &confirmation.attempts {
        let to = channels
            .iter()
            .find(|(c, _, _)| *c == attempt.channel())
            .map_or("N", |(_, id, _)| id);
        let target = confirmation
            .deliveries
            .iter()
            .find(|d| d.delivery_id == attempt.delivery_id)
            .map(|d| d.target.clone())
            .unwrap_or_default();
        out.push_str(&format!(
            "    N->>{to}: deliver #{} to {}\n",
            attempt.attempt,
            sanitize(&target)
        ));
        let outcome = if attempt.delivered {
            "DELIVERED".to_owned()
        } else {
            format!(
                "FAILED {} ({})",
                sanitize(&attempt.error),
                crate::notifications::state_name(attempt.state_after())
            )
        };
        out.push_str(&format!("    {to}-->>N: {outcome}\n"));
    }
}

/// A pie chart of failure groups.
pub fn pie(title: &str, groups: &[FailureGroup]) -> String {
    let mut out = format!("pie title {}\n", sanitize(title));
    for group in groups {
        let key = if !group.label.is_empty() {
            group.label.as_str()
        } else if group.key.is_empty() {
            "(no message)"
        } else {
            group.key.as_str()
        };
        out.push_str(&format!(
            "    \"{}\" : {}\n",
            sanitize(key).replace('"', "'"),
            group.count
        ));
    }
    out
}

/// A flowchart of pending purchases and their unfinished steps.
pub fn pending(transactions: &[PendingTransaction]) -> String {
    let mut out = String::from("flowchart LR\n");
    for (i, pending) in transactions.iter().enumerate() {
        let txn = pending.transaction.clone().unwrap_or_default();
        let label = format!(
            "{} {} {}",
            json::protocol(txn.protocol()),
            txn.txid,
            json::short_enum(txn.state().as_str_name(), "TRANSACTION_STATE_")
        );
        out.push_str(&format!("    T{i}[\"{}\"]\n", sanitize(&label)));
        for (j, step) in pending.steps.iter().enumerate() {
            out.push_str(&format!(
                "    T{i} -->|\"{} x{}\"| S{i}_{j}[\"{}: {}\"]\n",
                sanitize(&step.operation),
                step.attempts,
                json::participant(step.participant()),
                sanitize(&step.last_error)
            ));
        }
    }
    out
}

/// Several purchases on one clock, a section each, one bar per step (from its start
/// to its end, in milliseconds since the epoch): failed steps are marked critical.
pub fn gantt(transactions: &[Transaction]) -> String {
    let mut out = String::from("gantt\n");
    let who: Vec<String> = transactions.iter().map(|t| t.user_id.clone()).collect();
    out.push_str(&format!("    title {}\n", sanitize(&who.join(" vs "))));
    out.push_str("    dateFormat x\n    axisFormat %S.%L\n");
    for (i, txn) in transactions.iter().enumerate() {
        out.push_str(&format!(
            "    section {}\n",
            sanitize(&format!(
                "{} {} {}",
                txn.user_id,
                json::protocol(txn.protocol()),
                json::short_enum(txn.state().as_str_name(), "TRANSACTION_STATE_")
            ))
        ));
        for (j, step) in txn.steps.iter().enumerate() {
            if step.started_at.is_none() {
                continue;
            }
            let start_ms = json::epoch_ms(&step.started_at).floor() as i64;
            // A bar shorter than a millisecond would not be drawn.
            let end_ms = start_ms + (json::step_millis(step).ceil() as i64).max(1);
            let tag = match step.outcome() {
                StepOutcome::Ok => "done, ",
                StepOutcome::Failed | StepOutcome::Unknown => "crit, ",
                _ => "",
            };
            out.push_str(&format!(
                "    {}{} {} :{tag}t{i}s{j}, {start_ms}, {end_ms}\n",
                if step.compensation { "undo " } else { "" },
                json::participant(step.participant()),
                sanitize(&step.operation).replace(':', " ")
            ));
        }
    }
    out
}

/// Keeps a label on one line and free of characters Mermaid would parse.
fn sanitize(text: &str) -> String {
    let text: String = text
        .chars()
        .map(|c| match c {
            '\n' | '\r' | ';' | '#' | '"' | '{' | '}' | '[' | ']' | '(' | ')' | '|' => ' ',
            c => c,
        })
        .collect();
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.chars().count() > 80 {
        format!("{}…", text.chars().take(80).collect::<String>())
    } else {
        text
    }
}
