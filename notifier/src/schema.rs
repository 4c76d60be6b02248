//! The notifier database schema, applied in order at start.

use server_kit::pg::Migration;

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "confirmations, deliveries, attempts, webhook endpoints",
    sql: include_str!("../migrations/0001_initial.sql"),
}];
