//! Admission tokens: a JWT (HS256) naming the fan (`sub`), the event, the admission id
//! and the expiry, signed with the room's key. The coordinator passes a purchase's token
//! to ClaimAdmission, where this module verifies it; the room's own record of the
//! admission (state, expiry in ms) stays authoritative.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

const ISSUER: &str = "ticketdrop-waiting-room";
const AUDIENCE: &str = "ticketdrop-purchase";

/// What an admission token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The admitted fan.
    pub sub: String,
    pub event: String,
    /// Admission id, unique in the room.
    pub adm: String,
    pub iat: i64,
    /// Expiry, seconds since the epoch (rounded up from the room's milliseconds).
    pub exp: i64,
}

/// Why a token is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not a token, or not one of ours: "malformed", "bad_signature", "other_user",
    /// "other_event".
    Invalid(&'static str),
    Expired,
}

/// Signs and verifies admission tokens with one key.
#[derive(Clone)]
pub struct Signer {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl Signer {
    pub fn new(key: &[u8]) -> Self {
        Self {
            encoding: EncodingKey::from_secret(key),
            decoding: DecodingKey::from_secret(key),
        }
    }

    /// The token of one admission. Deterministic: the same admission gets the same token
    /// on every Watch.
    pub fn sign(
        &self,
        event_id: &str,
        user_id: &str,
        admission_id: &str,
        admitted_at_ms: i64,
        expires_at_ms: i64,
    ) -> String {
        let claims = Claims {
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            sub: user_id.to_owned(),
            event: event_id.to_owned(),
            adm: admission_id.to_owned(),
            iat: admitted_at_ms / 1000,
            exp: (expires_at_ms + 999) / 1000,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing of plain claims cannot fail")
    }

    /// Verifies `token` for `user_id` buying at `event_id`, unexpired at `as_of_ms` (when
    /// the coordinator received the purchase), and returns its claims.
    pub fn verify(
        &self,
        token: &str,
        event_id: &str,
        user_id: &str,
        as_of_ms: i64,
    ) -> Result<Claims, Refusal> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        // Expiry is checked below against `as_of_ms`, not the verifier's clock.
        validation.validate_exp = false;
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "sub", "aud", "iss"]);
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|error| match error.kind() {
                ErrorKind::ExpiredSignature => Refusal::Expired,
                ErrorKind::InvalidSignature => Refusal::Invalid("bad_signature"),
                _ => Refusal::Invalid("malformed"),
            })?
            .claims;
        // `exp` is the room's expiry in ms rounded up to seconds: expired once passed.
        if claims.exp * 1_000 <= as_of_ms {
            return Err(Refusal::Expired);
        }
        if claims.sub != user_id {
            return Err(Refusal::Invalid("other_user"));
        }
        if claims.event != event_id {
            return Err(Refusal::Invalid("other_event"));
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now_ms() -> i64 {
        chrono::Utc::now().timestamp_millis()
    }

    #[test]
    fn a_token_verifies_only_for_its_user_event_and_key() {
        let signer = Signer::new(b"key");
        let token = signer.sign("show", "ana", "adm-1", now_ms(), now_ms() + 60_000);
        let claims = signer
            .verify(&token, "show", "ana", now_ms())
            .expect("valid");
        assert_eq!((claims.sub.as_str(), claims.adm.as_str()), ("ana", "adm-1"));
        assert_eq!(
            signer.verify(&token, "show", "bob", now_ms()),
            Err(Refusal::Invalid("other_user"))
        );
        assert_eq!(
            signer.verify(&token, "other", "ana", now_ms()),
            Err(Refusal::Invalid("other_event"))
        );
        assert_eq!(
            Signer::new(b"another key").verify(&token, "show", "ana", now_ms()),
            Err(Refusal::Invalid("bad_signature"))
        );
        assert_eq!(
            signer.verify("not a token", "show", "ana", now_ms()),
            Err(Refusal::Invalid("malformed"))
        );
    }

    #[test]
    fn a_changed_payload_or_a_past_expiry_is_refused() {
        let signer = Signer::new(b"key");
        let token = signer.sign("show", "ana", "adm-1", now_ms(), now_ms() + 60_000);
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let forged = signer.sign("show", "bob", "adm-1", now_ms(), now_ms() + 60_000);
        parts[1] = forged.split('.').nth(1).expect("a payload").to_owned();
        assert_eq!(
            signer.verify(&parts.join("."), "show", "bob", now_ms()),
            Err(Refusal::Invalid("bad_signature"))
        );
        let old = signer.sign("show", "ana", "adm-2", now_ms() - 20_000, now_ms() - 10_000);
        assert_eq!(
            signer.verify(&old, "show", "ana", now_ms()),
            Err(Refusal::Expired)
        );
        // Received while it was still valid: accepted, whenever it is checked.
        assert!(
            signer
                .verify(&old, "show", "ana", now_ms() - 15_000)
                .is_ok()
        );
    }
}
