//! Ed25519 keys and signatures, in the text forms people copy around: a
//! public key is `ed25519:<base64>` (what `xtask.toml`'s `trusted-keys` and
//! `--remote-cache-trust` hold), a private key file is one line
//! `ed25519-private:<base64 of the 32-byte seed>`.
//!
//! Verification is `verify_strict` (no malleable or small-order keys), so
//! one verdict has exactly one valid signature per key.

use std::path::Path;

use anyhow::{Context as _, Result};
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};

const PUBLIC_PREFIX: &str = "ed25519:";
const PRIVATE_PREFIX: &str = "ed25519-private:";

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// A public key a reader trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Parses `ed25519:<base64>`.
    pub fn parse(text: &str) -> Result<PublicKey, String> {
        let text = text.trim();
        let body = text
            .strip_prefix(PUBLIC_PREFIX)
            .ok_or_else(|| format!("{text:?}: expected a public key ed25519:<base64>"))?;
        let bytes = b64().decode(body).map_err(|err| format!("{text:?}: not base64: {err}"))?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| format!("{text:?}: an Ed25519 public key is 32 bytes"))?;
        VerifyingKey::from_bytes(&bytes).map(PublicKey).map_err(|_| format!("{text:?}: not an Ed25519 public key"))
    }

    /// Whether `signature` (base64) is this key's signature of `message`.
    pub fn verifies(&self, message: &[u8], signature: &str) -> bool {
        let Ok(bytes) = b64().decode(signature.trim()) else { return false };
        let Ok(signature) = ed25519_dalek::Signature::from_slice(&bytes) else { return false };
        self.0.verify_strict(message, &signature).is_ok()
    }
}

impl std::fmt::Display for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{PUBLIC_PREFIX}{}", b64().encode(self.0.to_bytes()))
    }
}

/// A writer's private key.
pub struct PrivateKey(SigningKey);

impl PrivateKey {
    /// A new key from the operating system's random source.
    pub fn generate() -> Result<PrivateKey> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|err| anyhow::anyhow!("no random numbers from the system: {err}"))?;
        Ok(PrivateKey(SigningKey::from_bytes(&seed)))
    }

    /// Reads a key file written by [`PrivateKey::write_new`].
    pub fn read(path: &Path) -> Result<PrivateKey> {
        let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read the key", path.display()))?;
        let body = text
            .trim()
            .strip_prefix(PRIVATE_PREFIX)
            .with_context(|| format!("{}: not a private key file ({PRIVATE_PREFIX}<base64>)", path.display()))?;
        let seed: [u8; 32] = b64()
            .decode(body)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .with_context(|| format!("{}: the key is not 32 bytes of base64", path.display()))?;
        Ok(PrivateKey(SigningKey::from_bytes(&seed)))
    }

    /// Writes the key to a new file, readable by its owner only; an existing
    /// file is never replaced (a rotated-out key must be removed on purpose).
    pub fn write_new(&self, path: &Path) -> Result<()> {
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        // A temporary file is created 0600; the rename that refuses an
        // existing target leaves nothing half-written either way.
        let mut file = tempfile::NamedTempFile::new_in(dir)
            .with_context(|| format!("{}: cannot create a file there", dir.display()))?;
        std::io::Write::write_all(
            &mut file,
            format!("{PRIVATE_PREFIX}{}\n", b64().encode(self.0.to_bytes())).as_bytes(),
        )?;
        file.as_file().sync_all()?;
        file.persist_noclobber(path).map_err(|err| {
            if err.error.kind() == std::io::ErrorKind::AlreadyExists {
                anyhow::anyhow!("{}: already exists; remove it first or choose another --out", path.display())
            } else {
                anyhow::anyhow!("{}: cannot write the key: {}", path.display(), err.error)
            }
        })?;
        Ok(())
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// The signature of `message`, base64.
    pub fn sign(&self, message: &[u8]) -> String {
        b64().encode(self.0.sign(message).to_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_signatures_bind_key_and_message() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("writer.key");
        let key = PrivateKey::generate().unwrap();
        key.write_new(&path).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);
        assert!(key.write_new(&path).unwrap_err().to_string().contains("already exists"));
        let read = PrivateKey::read(&path).unwrap();
        assert_eq!(read.public(), key.public());

        let public = PublicKey::parse(&key.public().to_string()).unwrap();
        let signature = read.sign(b"verdict");
        assert!(public.verifies(b"verdict", &signature));
        assert!(!public.verifies(b"verdicT", &signature));
        let other = PrivateKey::generate().unwrap().public();
        assert!(!other.verifies(b"verdict", &signature));
        assert!(!public.verifies(b"verdict", "not base64!"));

        for bad in ["ssh-ed25519 AAAA", "ed25519:AAAA", "ed25519:!!"] {
            assert!(PublicKey::parse(bad).is_err(), "{bad}");
        }
    }
}
