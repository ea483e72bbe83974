//! Blobs as files under the data dir (S3 on AWS).

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use domain::ports::{BlobDigest, BlobStore, check_length};
use domain::{Error, Result};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CHUNK: usize = 64 * 1024;

pub struct FileBlobStore {
    root: PathBuf,
}

impl FileBlobStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FileBlobStore { root: root.into() }
    }

    /// Keys are relative paths of plain segments: nothing may escape the root.
    fn path(&self, key: &str) -> Result<PathBuf> {
        let ok = !key.is_empty()
            && key.len() <= 512
            && key.split('/').all(|seg| {
                !seg.is_empty() && seg != "." && seg != ".." && seg.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            });
        if ok { Ok(self.root.join(Path::new(key))) } else { Err(Error::validation("key", format!("not a valid blob key: {key:?}"))) }
    }

    /// A fresh file beside `path`, to be renamed over it once complete: a reader never sees
    /// half a blob, and a failed write leaves nothing behind.
    async fn staging(path: &Path) -> Result<PathBuf> {
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(io)?;
        }
        Ok(path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple())))
    }

    async fn commit(tmp: &Path, path: &Path) -> Result<()> {
        tokio::fs::rename(tmp, path).await.map_err(io)
    }
}

fn io(e: std::io::Error) -> Error {
    Error::Unavailable(format!("blob store: {e}"))
}

/// Removes a staging file when a write does not get as far as its rename.
struct Staged(Option<PathBuf>);

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[async_trait]
impl BlobStore for FileBlobStore {
    async fn put(&self, key: &str, bytes: Vec<u8>, _content_type: &str) -> Result<()> {
        let path = self.path(key)?;
        let tmp = Self::staging(&path).await?;
        let mut staged = Staged(Some(tmp.clone()));
        tokio::fs::write(&tmp, bytes).await.map_err(io)?;
        Self::commit(&tmp, &path).await?;
        staged.0 = None;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match tokio::fs::read(self.path(key)?).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(e)),
        }
    }

    async fn delete(&self, key: &str) -> Result<()> {
        match tokio::fs::remove_file(self.path(key)?).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(e)),
        }
    }

    async fn copy(&self, from: &str, to: &str) -> Result<bool> {
        let (from, to) = (self.path(from)?, self.path(to)?);
        let tmp = Self::staging(&to).await?;
        let mut staged = Staged(Some(tmp.clone()));
        match tokio::fs::copy(&from, &tmp).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io(e)),
        }
        Self::commit(&tmp, &to).await?;
        staged.0 = None;
        Ok(true)
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        match tokio::fs::metadata(self.path(key)?).await {
            Ok(m) => Ok(m.is_file()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io(e)),
        }
    }

    async fn digest(&self, key: &str) -> Result<Option<BlobDigest>> {
        let mut file = match tokio::fs::File::open(self.path(key)?).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        let (mut hasher, mut bytes, mut buf) = (Sha256::new(), 0u64, vec![0u8; CHUNK]);
        loop {
            let n = file.read(&mut buf).await.map_err(io)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            bytes += n as u64;
        }
        Ok(Some(BlobDigest { bytes, sha256: hex::encode(hasher.finalize()) }))
    }

    async fn put_file(&self, key: &str, file: &Path, _content_type: &str) -> Result<()> {
        let path = self.path(key)?;
        let tmp = Self::staging(&path).await?;
        let mut staged = Staged(Some(tmp.clone()));
        tokio::fs::copy(file, &tmp).await.map_err(io)?;
        Self::commit(&tmp, &path).await?;
        staged.0 = None;
        Ok(())
    }

    async fn fetch_to(&self, key: &str, dest: &std::path::Path) -> Result<bool> {
        match tokio::fs::copy(self.path(key)?, dest).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io(e)),
        }
    }

    /// Streams to a staging file, hashing as it goes; at most one chunk is in memory.
    async fn put_stream(
        &self,
        key: &str,
        body: &mut (dyn tokio::io::AsyncRead + Send + Unpin),
        bytes: u64,
        _content_type: &str,
    ) -> Result<BlobDigest> {
        let path = self.path(key)?;
        let tmp = Self::staging(&path).await?;
        let mut staged = Staged(Some(tmp.clone()));
        let mut file = tokio::fs::File::create(&tmp).await.map_err(io)?;
        let (mut hasher, mut written, mut buf) = (Sha256::new(), 0u64, vec![0u8; CHUNK]);
        loop {
            let n = body.read(&mut buf).await.map_err(|e| Error::validation("body", format!("the body could not be read: {e}")))?;
            if n == 0 {
                break;
            }
            written += n as u64;
            if written > bytes {
                check_length(written, bytes)?; // too long: refused before it is stored
            }
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n]).await.map_err(io)?;
        }
        check_length(written, bytes)?;
        // On disk before anyone is told it is there.
        file.sync_all().await.map_err(io)?;
        drop(file);
        Self::commit(&tmp, &path).await?;
        staged.0 = None;
        Ok(BlobDigest { bytes: written, sha256: hex::encode(hasher.finalize()) })
    }
}
