//! The coordinator database schema, applied in order at start.

use server_kit::pg::Migration;

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "transactions and steps",
        sql: include_str!("../migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "admissions, honest sold-out, leased seats, buyer lookups",
        sql: include_str!("../migrations/0002_admissions.sql"),
    },
    Migration {
        version: 3,
        name: "confirmation outbox",
        sql: include_str!("../migrations/0003_outbox.sql"),
    },
    Migration {
        version: 4,
        name: "the buyer's contact for the confirmation",
        sql: include_str!("../migrations/0004_contact.sql"),
    },
    Migration {
        version: 5,
        name: "the trace of each purchase",
        sql: include_str!("../migrations/0005_traceparent.sql"),
    },
    Migration {
        version: 6,
        name: "several coordinators: the log's id, owners, epochs, takeovers",
        sql: include_str!("../migrations/0006_ownership.sql"),
    },
    Migration {
        version: 7,
        name: "the fencing floor of each event",
        sql: include_str!("../migrations/0007_fencing_floor.sql"),
    },
    Migration {
        version: 8,
        name: "which coordinator ended each purchase",
        sql: include_str!("../migrations/0008_finished_by.sql"),
    },
];
