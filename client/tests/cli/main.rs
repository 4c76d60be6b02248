//! The `ticketdrop` binary against a real mesh: every subcommand, asserted on its JSON
//! output; Mermaid diagrams parsed for their structure; the audit against databases
//! corrupted on purpose; a ticket drop under all three protocols through the waiting
//! room, and through a killed coordinator; the room commands; the confirmation child
//! in `txn show|diagnose|failures|watch` and `notifications`; the chaos lab; the Redis
//! keys of a drop, each in its event's Redis Cluster hash slot.

mod audit;
mod chaos;
mod commands;
mod common;
mod confirmations;
mod debugging;
mod drop;
mod mermaid;
mod metrics;
mod redis_slots;
mod room;
mod traces;
