//! Envelope encryption of secrets at rest (platform tokens): each value gets a fresh 256-bit
//! data key, is sealed with AES-256-GCM under it, and is stored beside the data key wrapped by
//! a master key — a KMS key on AWS ([`MasterKey`] in goviral-aws), a key file on the embedded
//! default ([`LocalMasterKey`]). The caller's context is authenticated data on both layers, so
//! a sealed value opens only where it was sealed.
//!
//! Layout: `0x01 | u16 BE wrapped-key length | wrapped key | 12-byte nonce | ciphertext+tag`.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use domain::accounts::TokenCipher;
use domain::{Error, Result};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use sha2::{Digest, Sha256};

const VERSION: u8 = 1;
const KEY_LEN: usize = 32;
/// The largest value sealed (tokens are a few KiB at most).
const PLAINTEXT_MAX: usize = 64 * 1024;

/// A data key in the clear, and as the master key wrapped it.
pub struct DataKey {
    pub plaintext: [u8; KEY_LEN],
    pub wrapped: Vec<u8>,
}

/// What wraps data keys.
#[async_trait]
pub trait MasterKey: Send + Sync {
    async fn data_key(&self, context: &str) -> Result<DataKey>;
    async fn unwrap(&self, wrapped: &[u8], context: &str) -> Result<[u8; KEY_LEN]>;
}

pub struct Envelope {
    master: Arc<dyn MasterKey>,
}

impl Envelope {
    pub fn new(master: Arc<dyn MasterKey>) -> Envelope {
        Envelope { master }
    }
}

fn aead_key(key: &[u8; KEY_LEN]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("a 32-byte key"))
}

fn nonce() -> [u8; NONCE_LEN] {
    domain::auth::random_bytes::<NONCE_LEN>()
}

fn aad(layer: &str, context: &str) -> Vec<u8> {
    format!("goviral/{layer}/v1\0{context}").into_bytes()
}

fn corrupt(why: &str) -> Error {
    Error::Internal(format!("a sealed value could not be opened: {why}"))
}

/// `nonce | AES-256-GCM(key, plaintext)`.
fn seal_with(key: &[u8; KEY_LEN], plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    let n = nonce();
    let mut body = plaintext.to_vec();
    aead_key(key).seal_in_place_append_tag(Nonce::assume_unique_for_key(n), Aad::from(aad), &mut body).expect("sealing cannot fail");
    let mut out = n.to_vec();
    out.extend(body);
    out
}

fn open_with(key: &[u8; KEY_LEN], sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
    if sealed.len() < NONCE_LEN + AES_256_GCM.tag_len() {
        return Err(corrupt("too short"));
    }
    let (n, body) = sealed.split_at(NONCE_LEN);
    let mut body = body.to_vec();
    let nonce = Nonce::try_assume_unique_for_key(n).map_err(|_| corrupt("bad nonce"))?;
    let plain = aead_key(key).open_in_place(nonce, Aad::from(aad), &mut body).map_err(|_| corrupt("it was sealed elsewhere or altered"))?;
    Ok(plain.to_vec())
}

#[async_trait]
impl TokenCipher for Envelope {
    async fn seal(&self, plaintext: &[u8], context: &str) -> Result<Vec<u8>> {
        if plaintext.len() > PLAINTEXT_MAX {
            return Err(Error::Internal(format!("refusing to seal {} bytes (at most {PLAINTEXT_MAX})", plaintext.len())));
        }
        let key = self.master.data_key(context).await?;
        let wrapped_len = u16::try_from(key.wrapped.len()).map_err(|_| Error::Internal("a wrapped data key over 64 KiB".into()))?;
        let mut out = vec![VERSION];
        out.extend(wrapped_len.to_be_bytes());
        out.extend(&key.wrapped);
        out.extend(seal_with(&key.plaintext, plaintext, &aad("value", context)));
        Ok(out)
    }

    async fn open(&self, sealed: &[u8], context: &str) -> Result<Vec<u8>> {
        let (&version, rest) = sealed.split_first().ok_or_else(|| corrupt("empty"))?;
        if version != VERSION || rest.len() < 2 {
            return Err(corrupt("unknown layout"));
        }
        let wrapped_len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        let rest = &rest[2..];
        if rest.len() < wrapped_len {
            return Err(corrupt("cut short"));
        }
        let (wrapped, body) = rest.split_at(wrapped_len);
        let key = self.master.unwrap(wrapped, context).await?;
        open_with(&key, body, &aad("value", context))
    }
}

/// A master key kept in a file (the embedded default): 32 random bytes, created with mode
/// 0600 on first use. Whoever holds the database but not this file reads no token.
pub struct LocalMasterKey {
    key: [u8; KEY_LEN],
    /// Names the key in each wrapped data key, so a value sealed under another key says so.
    id: [u8; 8],
}

impl LocalMasterKey {
    pub fn new(key: [u8; KEY_LEN]) -> LocalMasterKey {
        let digest = Sha256::digest(key);
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        LocalMasterKey { key, id }
    }

    /// Reads the key file, creating it (and its directory) when missing.
    pub fn open_or_create(path: &Path) -> std::io::Result<LocalMasterKey> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let key: [u8; KEY_LEN] = bytes.try_into().map_err(|b: Vec<u8>| {
                    std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {} bytes, want {KEY_LEN}", path.display(), b.len()))
                })?;
                Ok(LocalMasterKey::new(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let key = domain::auth::random_bytes::<KEY_LEN>();
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                match options.open(path) {
                    Ok(mut file) => {
                        file.write_all(&key)?;
                        file.sync_all()?;
                        Ok(LocalMasterKey::new(key))
                    }
                    // Another process made it first: use theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => LocalMasterKey::open_or_create(path),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl MasterKey for LocalMasterKey {
    async fn data_key(&self, context: &str) -> Result<DataKey> {
        let plaintext = domain::auth::random_bytes::<KEY_LEN>();
        let mut wrapped = self.id.to_vec();
        wrapped.extend(seal_with(&self.key, &plaintext, &aad("key", context)));
        Ok(DataKey { plaintext, wrapped })
    }

    async fn unwrap(&self, wrapped: &[u8], context: &str) -> Result<[u8; KEY_LEN]> {
        let (id, sealed) = wrapped.split_at(wrapped.len().min(8));
        if id != self.id {
            return Err(corrupt("it was sealed under another master key"));
        }
        open_with(&self.key, sealed, &aad("key", context))?.try_into().map_err(|_| corrupt("a data key of the wrong size"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope() -> Envelope {
        Envelope::new(Arc::new(LocalMasterKey::new([7; KEY_LEN])))
    }

    #[tokio::test]
    async fn values_open_only_in_their_context_and_under_their_key() {
        let e = envelope();
        let sealed = e.seal(b"ya29.token", "account:1:access").await.unwrap();
        assert!(!sealed.windows(10).any(|w| w == b"ya29.token"), "the value is not in the clear");
        assert_eq!(e.open(&sealed, "account:1:access").await.unwrap(), b"ya29.token");
        assert!(e.open(&sealed, "account:2:access").await.is_err(), "moved to another row");
        assert!(e.open(&sealed, "account:1:refresh").await.is_err(), "used for another purpose");
        let other = Envelope::new(Arc::new(LocalMasterKey::new([8; KEY_LEN])));
        let err = other.open(&sealed, "account:1:access").await.unwrap_err().to_string();
        assert!(err.contains("another master key"), "{err}");
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert!(e.open(&altered, "account:1:access").await.is_err(), "altered");
        assert!(e.open(&sealed[..20], "account:1:access").await.is_err(), "cut short");
        assert_ne!(e.seal(b"ya29.token", "c").await.unwrap(), e.seal(b"ya29.token", "c").await.unwrap(), "fresh key and nonce each time");
    }

    #[test]
    fn the_key_file_is_made_once_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/token-master.key");
        let a = LocalMasterKey::open_or_create(&path).unwrap();
        let b = LocalMasterKey::open_or_create(&path).unwrap();
        assert_eq!(a.id, b.id);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        std::fs::write(&path, b"short").unwrap();
        assert!(LocalMasterKey::open_or_create(&path).is_err(), "a damaged key file stops start-up");
    }
}
