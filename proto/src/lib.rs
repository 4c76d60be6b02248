//! The `ticketdrop.v1` gRPC contracts: messages, clients and servers generated from
//! `proto/ticketdrop/v1/*.proto`, plus the descriptor set for server reflection.
//!
//! The `.proto` files are the documentation; this crate exposes what they generate, and
//! how a caller reads a failed call ([`outcome`]).

pub mod outcome;

pub mod v1 {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    tonic::include_proto!("ticketdrop.v1");

    /// Encoded `FileDescriptorSet` of every ticketdrop.v1 file and its imports, with
    /// comments, for `tonic_reflection`.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("ticketdrop_descriptor");
}
