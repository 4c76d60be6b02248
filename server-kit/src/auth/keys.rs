//! The two Ed25519 key pairs, minting tokens ([`Issuer`]) and verifying them
//! ([`Verifier`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use tonic::Status;

use super::{ADMIN_SCOPE, AUDIENCE, Authority, Caller, Claims, SERVICE_SCOPE, unauthenticated};

/// Where an authority's keys live in a key directory: `users.pem` (private, PKCS#8) and
/// `users.pub.pem` (public, SPKI); the same for `mesh`.
#[derive(Debug, Clone)]
pub struct KeyFiles {
    pub dir: PathBuf,
}

impl KeyFiles {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn private(&self, authority: Authority) -> PathBuf {
        self.dir.join(format!("{}.pem", authority.key_id()))
    }

    pub fn public(&self, authority: Authority) -> PathBuf {
        self.dir.join(format!("{}.pub.pem", authority.key_id()))
    }
}

/// Creates both key pairs in `dir`, unless they are there already; returns whether it
/// made them. Private keys are readable by their owner only. Safe when several
/// processes race to create the same directory: each writes a directory of its own and
/// renames it into place, and the first rename wins.
pub fn generate_keys(dir: &Path) -> anyhow::Result<bool> {
    let files = KeyFiles::new(dir);
    let complete = |files: &KeyFiles| {
        [Authority::Users, Authority::Mesh].iter().all(|authority| {
            files.private(*authority).exists() && files.public(*authority).exists()
        })
    };
    if complete(&files) {
        return Ok(false);
    }
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(".keys-")
        .tempdir_in(parent)
        .with_context(|| format!("creating a directory in {}", parent.display()))?;
    let staged = KeyFiles::new(staging.path());
    for authority in [Authority::Users, Authority::Mesh] {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)
            .map_err(|error| anyhow::anyhow!("reading randomness for a key: {error}"))?;
        let key = SigningKey::from_bytes(&seed);
        let private = key
            .to_pkcs8_pem(LineEnding::LF)
            .context("encoding a private key")?;
        let public = key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .context("encoding a public key")?;
        write_private(&staged.private(authority), private.as_bytes())?;
        std::fs::write(staged.public(authority), public)
            .with_context(|| format!("writing {}", staged.public(authority).display()))?;
    }
    // An empty `dir` is replaced; a full one means another process won the race.
    match std::fs::rename(staging.path(), dir) {
        Ok(()) => {
            std::mem::forget(staging);
            Ok(true)
        }
        Err(_) if complete(&files) => Ok(false),
        Err(error) => {
            Err(error).with_context(|| format!("moving the new keys into {}", dir.display()))
        }
    }
}

fn write_private(path: &Path, pem: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(pem)
        .with_context(|| format!("writing {}", path.display()))
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| {
        format!(
            "reading the key {} (`make up` creates the local stack's keys; \
             `ticketdrop keys --dir DIR` creates a pair anywhere)",
            path.display()
        )
    })
}

/// Mints tokens of one authority.
#[derive(Clone)]
pub struct Issuer {
    authority: Authority,
    key: Arc<EncodingKey>,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("authority", &self.authority)
            .finish_non_exhaustive()
    }
}

impl Issuer {
    /// Loads `authority`'s private key from `files`.
    pub fn load(files: &KeyFiles, authority: Authority) -> anyhow::Result<Self> {
        let path = files.private(authority);
        let key = EncodingKey::from_ed_pem(&read(&path)?)
            .with_context(|| format!("{} is not an Ed25519 private key", path.display()))?;
        Ok(Self {
            authority,
            key: Arc::new(key),
        })
    }

    /// A token for `subject` with `scopes`, valid for `ttl`.
    pub fn mint(&self, subject: &str, scopes: &[&str], ttl: Duration) -> String {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            iss: self.authority.issuer().to_owned(),
            aud: AUDIENCE.to_owned(),
            sub: subject.to_owned(),
            scope: scopes.join(" "),
            iat: now,
            exp: now + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.authority.key_id().to_owned());
        jsonwebtoken::encode(&header, &claims, &self.key)
            .expect("EdDSA signing of plain claims with a loaded key cannot fail")
    }
}

/// How many verified tokens a server remembers. A fan's token is checked once and then
/// found here on their next calls (Join, then Watch, then Purchase).
const REMEMBERED: usize = 200_000;

/// Verifies tokens of both authorities with their public keys, remembering verified ones
/// until they expire (an Ed25519 check costs tens of microseconds, a lookup well under one).
pub struct Verifier {
    users: DecodingKey,
    mesh: DecodingKey,
    remembered: Mutex<HashMap<Box<str>, Arc<Caller>>>,
}

impl Verifier {
    /// Loads both public keys from `files`.
    pub fn load(files: &KeyFiles) -> anyhow::Result<Self> {
        let decoding = |authority| -> anyhow::Result<DecodingKey> {
            let path = files.public(authority);
            DecodingKey::from_ed_pem(&read(&path)?)
                .with_context(|| format!("{} is not an Ed25519 public key", path.display()))
        };
        Ok(Self {
            users: decoding(Authority::Users)?,
            mesh: decoding(Authority::Mesh)?,
            remembered: Mutex::new(HashMap::new()),
        })
    }

    /// The caller a bearer token names, or UNAUTHENTICATED saying what is wrong with it.
    pub fn verify(&self, token: &str) -> Result<Arc<Caller>, Status> {
        let now = chrono::Utc::now().timestamp();
        if let Some(caller) = self.remembered().get(token)
            && caller.expires_at > now
        {
            return Ok(caller.clone());
        }
        let caller = Arc::new(self.verify_signature(token)?);
        let mut remembered = self.remembered();
        if remembered.len() >= REMEMBERED {
            remembered.retain(|_, caller| caller.expires_at > now);
            if remembered.len() >= REMEMBERED {
                remembered.clear();
            }
        }
        remembered.insert(token.into(), caller.clone());
        Ok(caller)
    }

    fn remembered(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Arc<Caller>>> {
        // A panic while holding this lock leaves a map of verified callers intact.
        self.remembered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn verify_signature(&self, token: &str) -> Result<Caller, Status> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| unauthenticated("malformed", "the bearer token is not a JWT"))?;
        let authority = match header.kid.as_deref() {
            Some("users") => Authority::Users,
            Some("mesh") => Authority::Mesh,
            other => {
                return Err(unauthenticated(
                    "unknown_key",
                    format!("the bearer token names no key of ours (kid {other:?})"),
                ));
            }
        };
        let key = match authority {
            Authority::Users => &self.users,
            Authority::Mesh => &self.mesh,
        };
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = 30;
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&[authority.issuer()]);
        validation.set_required_spec_claims(&["exp", "sub", "aud", "iss"]);
        let claims = jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map_err(|error| match error.kind() {
                ErrorKind::ExpiredSignature => {
                    unauthenticated("expired", "the bearer token has expired")
                }
                ErrorKind::InvalidSignature => unauthenticated(
                    "bad_signature",
                    "the bearer token's signature does not verify",
                ),
                _ => unauthenticated(
                    "malformed",
                    format!("the bearer token is not one of ours: {error}"),
                ),
            })?
            .claims;
        let has = |scope: &str| claims.scope.split(' ').any(|s| s == scope);
        Ok(Caller {
            admin: authority == Authority::Users && has(ADMIN_SCOPE),
            // Only the mesh's key makes a service: a user token claiming it is a user's.
            service: authority == Authority::Mesh && has(SERVICE_SCOPE),
            subject: claims.sub,
            expires_at: claims.exp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> (tempfile::TempDir, KeyFiles) {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(generate_keys(dir.path()).expect("keys"));
        assert!(!generate_keys(dir.path()).expect("kept"), "keys are kept");
        let files = KeyFiles::new(dir.path());
        (dir, files)
    }

    fn problem(status: &Status) -> String {
        proto::error::Refusal::of(status)
            .and_then(|refusal| refusal.metadata.get("problem").cloned())
            .unwrap_or_default()
    }

    #[test]
    fn tokens_verify_with_their_authoritys_key_and_scopes() {
        let (_dir, files) = keys();
        let verifier = Verifier::load(&files).expect("verifier");
        let users = Issuer::load(&files, Authority::Users).expect("users");
        let mesh = Issuer::load(&files, Authority::Mesh).expect("mesh");
        let hour = Duration::from_secs(3600);

        let fan = verifier.verify(&users.mint("ana", &[], hour)).expect("fan");
        assert_eq!(
            (fan.subject.as_str(), fan.admin, fan.service),
            ("ana", false, false)
        );
        let ops = verifier
            .verify(&users.mint("ops", &[ADMIN_SCOPE], hour))
            .expect("admin");
        assert!(ops.admin && !ops.service);
        let coordinator = verifier
            .verify(&mesh.mint("coordinator", &[SERVICE_SCOPE], hour))
            .expect("service");
        assert!(coordinator.service && !coordinator.admin);
        // A user key cannot make a service, nor the mesh key an operator.
        assert!(
            !verifier
                .verify(&users.mint("mallory", &[SERVICE_SCOPE], hour))
                .expect("valid")
                .service
        );
        assert!(
            !verifier
                .verify(&mesh.mint("coordinator", &[ADMIN_SCOPE], hour))
                .expect("valid")
                .admin
        );
    }

    #[test]
    fn bad_tokens_are_unauthenticated_and_say_why() {
        let (_dir, files) = keys();
        let verifier = Verifier::load(&files).expect("verifier");
        let users = Issuer::load(&files, Authority::Users).expect("users");
        let (_other_dir, other_files) = keys();
        let stranger = Issuer::load(&other_files, Authority::Users).expect("other");

        let cases = [
            ("not a token".to_owned(), "malformed"),
            (
                stranger.mint("ana", &[], Duration::from_secs(60)),
                "bad_signature",
            ),
        ];
        for (token, expected) in &cases {
            let status = verifier.verify(token).expect_err("refused");
            assert_eq!(status.code(), tonic::Code::Unauthenticated);
            assert_eq!(problem(&status), *expected, "{token}");
        }
        assert!(
            verifier
                .verify(&users.mint("ana", &[], Duration::from_secs(60)))
                .is_ok()
        );
        // Expired beyond the leeway.
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            iss: Authority::Users.issuer().to_owned(),
            aud: AUDIENCE.to_owned(),
            sub: "ana".to_owned(),
            scope: String::new(),
            iat: now - 600,
            exp: now - 300,
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some("users".to_owned());
        let key = EncodingKey::from_ed_pem(&read(&files.private(Authority::Users)).expect("pem"))
            .expect("key");
        let expired = jsonwebtoken::encode(&header, &claims, &key).expect("signed");
        let status = verifier.verify(&expired).expect_err("expired");
        assert_eq!(problem(&status), "expired");
    }
}
