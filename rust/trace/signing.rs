//! Ed25519 keys of signed checkpoints: generated into PEM files (the
//! private key as PKCS#8, mode 0600; the public key as SPKI in `PATH.pub`),
//! loaded back, and named by a key id derived from the public key.

use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::error::{CoreError, Result};

/// Hex digits of a key id: the start of SHA-256 over the raw public key.
const KEY_ID_HEX: usize = 16;

/// The key id of a public key: the first 16 hex digits of SHA-256 over
/// its 32 raw bytes.
pub fn key_id(key: &VerifyingKey) -> String {
    let digest = Sha256::digest(key.as_bytes());
    hex::encode(digest)[..KEY_ID_HEX].to_string()
}

/// A private key that signs checkpoints.
pub struct CheckpointSigner {
    key: SigningKey,
    key_id: String,
}

impl CheckpointSigner {
    pub fn from_pem_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| CoreError::io(path.display(), e))?;
        let key = SigningKey::from_pkcs8_pem(&text).map_err(|e| {
            bad_key(
                "/signing_key",
                format!(
                    "{} is not an Ed25519 private key in PKCS#8 PEM ({e})",
                    path.display()
                ),
            )
        })?;
        Ok(Self::from_key(key))
    }

    pub fn from_key(key: SigningKey) -> Self {
        let key_id = key_id(&key.verifying_key());
        CheckpointSigner { key, key_id }
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn public_key(&self) -> CheckpointKey {
        CheckpointKey::from_key(self.key.verifying_key())
    }

    /// The signature of `message`, as 128 lower-case hex digits.
    pub fn sign(&self, message: &[u8]) -> String {
        hex::encode(self.key.sign(message).to_bytes())
    }
}

/// A public key that checks checkpoint signatures.
#[derive(Clone)]
pub struct CheckpointKey {
    key: VerifyingKey,
    key_id: String,
}

impl CheckpointKey {
    pub fn from_pem_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| CoreError::io(path.display(), e))?;
        Self::from_pem(&text).map_err(|e| {
            bad_key(
                "/public_key",
                format!(
                    "{} is not an Ed25519 public key in SPKI PEM ({e})",
                    path.display()
                ),
            )
        })
    }

    pub fn from_pem(text: &str) -> std::result::Result<Self, String> {
        VerifyingKey::from_public_key_pem(text)
            .map(Self::from_key)
            .map_err(|e| e.to_string())
    }

    pub fn from_key(key: VerifyingKey) -> Self {
        let key_id = key_id(&key);
        CheckpointKey { key, key_id }
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// True if `signature_hex` (128 hex digits) signs `message`.
    pub fn verify(&self, message: &[u8], signature_hex: &str) -> bool {
        let Ok(bytes) = hex::decode(signature_hex) else {
            return false;
        };
        let Ok(bytes) = <[u8; 64]>::try_from(bytes.as_slice()) else {
            return false;
        };
        self.key
            .verify(message, &Signature::from_bytes(&bytes))
            .is_ok()
    }

    /// The key as SPKI PEM.
    pub fn to_pem(&self) -> String {
        self.key
            .to_public_key_pem(LineEnding::LF)
            .unwrap_or_default()
    }
}

fn bad_key(path: &str, message: String) -> CoreError {
    CoreError::invalid("INVALID_KEY", path, message)
}

/// The public key file of the private key at `path`: `PATH.pub`.
pub fn public_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

/// Writes a new key pair: the private key to `path` (PKCS#8 PEM, created
/// with mode 0600, never over an existing file) and its public key to
/// `PATH.pub` (SPKI PEM). Returns the key id.
pub fn generate(path: &Path) -> Result<String> {
    let public = public_path(path);
    for p in [path, public.as_path()] {
        if p.exists() {
            return Err(CoreError::invalid(
                "FILE_EXISTS",
                "/path",
                format!("{} exists; keys are never overwritten", p.display()),
            ));
        }
    }
    let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    let private = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| CoreError::invalid("INTERNAL", "/path", e.to_string()))?;
    write_new(path, private.as_bytes(), 0o600)?;
    let signer = CheckpointSigner::from_key(key);
    write_new(&public, signer.public_key().to_pem().as_bytes(), 0o644)?;
    Ok(signer.key_id)
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let io = |e| CoreError::io(path.display(), e);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)
}
