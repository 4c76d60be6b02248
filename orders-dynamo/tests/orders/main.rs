//! orders-dynamo against the real DynamoDB Local: the real binary on a table of its own,
//! called over gRPC; items asserted with the AWS SDK.

mod common;
mod conflicts;
mod durability;
mod group;
mod inputs;
mod table;
mod tickets;
mod two_phase;
