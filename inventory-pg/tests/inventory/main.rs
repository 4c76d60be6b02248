//! inventory-pg against the real PostgreSQL: the real binary, started by the test
//! harness on its own database, called over gRPC; rows asserted with SQL.

mod bad_input;
mod browse;
mod common;
mod contention;
mod fencing;
mod saga;
mod two_phase;
