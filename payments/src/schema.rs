//! The payments database schema, applied in order at start.

use server_kit::pg::Migration;

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "payments, ledger, idempotency keys, 2pc participants",
        sql: include_str!("../migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "the coordinator log of every 2PC branch",
        sql: include_str!("../migrations/0002_log_ids.sql"),
    },
];
