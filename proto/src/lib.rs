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

/// A seat id as a person reads it: `"A-12-7"` (inventory's "section-row-number") is
/// `"Section A, row 12, seat 7"`; an id in another form is returned as it is.
pub fn seat_label(seat_id: &str) -> String {
    let mut parts = seat_id.rsplitn(3, '-');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(number), Some(row), Some(section))
            if !section.is_empty()
                && number.parse::<u32>().is_ok()
                && row.parse::<u32>().is_ok() =>
        {
            format!("Section {section}, row {row}, seat {number}")
        }
        _ => seat_id.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_seat_id_reads_as_section_row_and_seat() {
        assert_eq!(super::seat_label("A-12-7"), "Section A, row 12, seat 7");
        assert_eq!(
            super::seat_label("floor-1-20"),
            "Section floor, row 1, seat 20"
        );
        assert_eq!(super::seat_label("VIP"), "VIP");
        assert_eq!(super::seat_label("A-x-1"), "A-x-1");
    }
}
