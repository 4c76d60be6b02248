//! Signed tickets: `td1.<payload>.<signature>`, both base64url without padding. The
//! payload is the ticket id, event, seat, order, user and issue time, one per line; the
//! signature is HMAC-SHA256 over the payload with the service's ticket key, so anyone
//! holding the key can verify a ticket offline.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use proto::v1::Ticket;
use sha2::{Digest, Sha256};

const PREFIX: &str = "td1";

/// What a ticket token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketClaims {
    pub ticket_id: String,
    pub event_id: String,
    pub seat_id: String,
    pub order_id: String,
    pub user_id: String,
    pub issued_at: i64,
}

/// Why a token does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    Malformed,
    BadSignature,
}

impl Invalid {
    pub fn reason(self) -> &'static str {
        match self {
            Invalid::Malformed => "malformed",
            Invalid::BadSignature => "bad_signature",
        }
    }
}

/// Issues and verifies ticket tokens with one key.
#[derive(Clone)]
pub struct TicketSigner {
    key: Vec<u8>,
}

impl TicketSigner {
    pub fn new(key: &[u8]) -> Self {
        Self { key: key.to_vec() }
    }

    /// The ticket for one seat of an order. The id derives from order and seat, so
    /// issuing again (a retried confirm) yields the same ticket.
    pub fn issue(
        &self,
        order_id: &str,
        event_id: &str,
        seat_id: &str,
        user_id: &str,
        issued_at: i64,
    ) -> Ticket {
        let digest = Sha256::digest(format!("{order_id}\n{seat_id}").as_bytes());
        let ticket_id = format!("tkt-{}", hex(&digest[..10]));
        let claims = TicketClaims {
            ticket_id: ticket_id.clone(),
            event_id: event_id.to_owned(),
            seat_id: seat_id.to_owned(),
            order_id: order_id.to_owned(),
            user_id: user_id.to_owned(),
            issued_at,
        };
        Ticket {
            ticket_id,
            event_id: event_id.to_owned(),
            seat_id: seat_id.to_owned(),
            order_id: order_id.to_owned(),
            user_id: user_id.to_owned(),
            token: self.sign(&claims),
            issued_at: Some(prost_types::Timestamp {
                seconds: issued_at,
                nanos: 0,
            }),
        }
    }

    pub fn sign(&self, claims: &TicketClaims) -> String {
        let payload = payload(claims);
        let signature = self.mac(payload.as_bytes()).finalize().into_bytes();
        format!(
            "{PREFIX}.{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(signature)
        )
    }

    pub fn verify(&self, token: &str) -> Result<TicketClaims, Invalid> {
        let (payload, signature) = split(token).ok_or(Invalid::Malformed)?;
        self.mac(&payload)
            .verify_slice(&signature)
            .map_err(|_| Invalid::BadSignature)?;
        parse_payload(&payload).ok_or(Invalid::Malformed)
    }

    fn mac(&self, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(payload);
        mac
    }
}

/// Reads a token's claims without checking its signature (for stored tickets).
pub fn decode_unverified(token: &str) -> Option<TicketClaims> {
    split(token).and_then(|(payload, _)| parse_payload(&payload))
}

fn payload(claims: &TicketClaims) -> String {
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        claims.ticket_id,
        claims.event_id,
        claims.seat_id,
        claims.order_id,
        claims.user_id,
        claims.issued_at
    )
}

fn split(token: &str) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut parts = token.split('.');
    let (prefix, payload, signature) = (parts.next()?, parts.next()?, parts.next()?);
    if prefix != PREFIX || parts.next().is_some() {
        return None;
    }
    Some((
        URL_SAFE_NO_PAD.decode(payload).ok()?,
        URL_SAFE_NO_PAD.decode(signature).ok()?,
    ))
}

fn parse_payload(payload: &[u8]) -> Option<TicketClaims> {
    let text = std::str::from_utf8(payload).ok()?;
    let fields: Vec<&str> = text.split('\n').collect();
    let [ticket_id, event_id, seat_id, order_id, user_id, issued_at] = fields.as_slice() else {
        return None;
    };
    Some(TicketClaims {
        ticket_id: (*ticket_id).to_owned(),
        event_id: (*event_id).to_owned(),
        seat_id: (*seat_id).to_owned(),
        order_id: (*order_id).to_owned(),
        user_id: (*user_id).to_owned(),
        issued_at: issued_at.parse().ok()?,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The ticket's token as a QR code in a black-on-white grayscale PNG, 8 pixels per
/// module, with the 4-module quiet zone scanners expect: what an email shows inline and
/// `ticketdrop purchase --qr-out` writes.
pub fn qr_png(token: &str) -> Result<Vec<u8>, String> {
    const SCALE: usize = 8;
    const QUIET: usize = 4;
    let code = qrcode::QrCode::new(token.as_bytes())
        .map_err(|e| format!("encoding the ticket as a QR code: {e}"))?;
    let width = code.width();
    let colors = code.to_colors();
    let side = (width + 2 * QUIET) * SCALE;
    let mut pixels = vec![255u8; side * side];
    for y in 0..width {
        for x in 0..width {
            if colors[y * width + x] == qrcode::Color::Dark {
                for dy in 0..SCALE {
                    let row = (y + QUIET) * SCALE + dy;
                    let start = row * side + (x + QUIET) * SCALE;
                    pixels[start..start + SCALE].fill(0);
                }
            }
        }
    }
    let side = u32::try_from(side).map_err(|_| "QR image too large".to_owned())?;
    let mut png = Vec::new();
    let mut encoder = png::Encoder::new(&mut png, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    encoder
        .write_header()
        .and_then(|mut writer| writer.write_image_data(&pixels))
        .map_err(|e| format!("writing the QR PNG: {e}"))?;
    Ok(png)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> TicketSigner {
        TicketSigner::new(b"test key")
    }

    #[test]
    fn a_ticket_verifies_with_its_key_only() {
        let ticket = signer().issue("ord-1", "evt-1", "A-1-1", "alice", 1_900_000_000);
        let claims = signer().verify(&ticket.token).expect("verifies");
        assert_eq!(claims.seat_id, "A-1-1");
        assert_eq!(claims.user_id, "alice");
        assert_eq!(
            TicketSigner::new(b"other key").verify(&ticket.token),
            Err(Invalid::BadSignature)
        );
    }

    #[test]
    fn issuing_twice_gives_the_same_ticket() {
        let a = signer().issue("ord-1", "evt-1", "A-1-1", "alice", 5);
        let b = signer().issue("ord-1", "evt-1", "A-1-1", "alice", 5);
        assert_eq!(a, b);
        assert_ne!(
            a.ticket_id,
            signer()
                .issue("ord-1", "evt-1", "A-1-2", "alice", 5)
                .ticket_id
        );
    }

    #[test]
    fn garbage_is_malformed() {
        assert_eq!(signer().verify("nonsense"), Err(Invalid::Malformed));
        assert_eq!(signer().verify("td1.!!.??"), Err(Invalid::Malformed));
    }
}
