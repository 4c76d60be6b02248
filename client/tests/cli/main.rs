//! The `ticketdrop` binary against a real mesh: every subcommand, asserted on its JSON
//! output; Mermaid diagrams parsed for their structure; the audit against databases
//! corrupted on purpose; a ticket drop under all three protocols through the waiting
//! room; the room commands.

mod audit;
mod commands;
mod common;
mod drop;
mod mermaid;
mod room;
