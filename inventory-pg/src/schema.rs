//! The inventory database schema, applied in order at start.

use server_kit::pg::Migration;

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "seats, events, venues, 2pc participants, saga barrier",
        sql: include_str!("../migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "prepared branches by event",
        sql: include_str!("../migrations/0002_prepared_by_event.sql"),
    },
    Migration {
        version: 3,
        name: "the coordinator log of every 2PC branch",
        sql: include_str!("../migrations/0003_log_ids.sql"),
    },
];
