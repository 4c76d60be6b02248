//! payments against the real PostgreSQL: the real binary on its own database, called
//! over gRPC; rows and the ledger asserted with SQL after every test.

mod common;
mod declines;
mod idempotency;
mod lifecycle;
mod two_phase;
