//! The `ticketdrop.v1` gRPC contracts: messages, clients and servers generated from
//! `proto/ticketdrop/v1/*.proto`, plus the descriptor set for server reflection.
//!
//! The `.proto` files are the documentation; this crate exposes what they generate, and
//! how a refusal is built and read ([`error`]), how a caller reads a failed call
//! ([`outcome`]), and the limits every service enforces alike ([`MAX_SEATS`]).

pub mod error;
pub mod outcome;

/// The most seats one purchase, order or admission may name: every service refuses more
/// as an invalid field, and the clients offer no more.
pub const MAX_SEATS: usize = 10;

pub mod v1 {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    tonic::include_proto!("ticketdrop.v1");

    /// Encoded `FileDescriptorSet` of every ticketdrop.v1 file and its imports, with
    /// comments, for `tonic_reflection`.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("ticketdrop_descriptor");
}
