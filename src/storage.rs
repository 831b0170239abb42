//! Files the service keeps (clinic logos) behind a small trait, so a deployment with
//! several replicas can put them on shared storage; the default is a local folder.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;

pub type FileFuture<'a, T> = Pin<Box<dyn Future<Output = io::Result<T>> + Send + 'a>>;

/// A flat key → bytes store. Keys are `[a-z0-9-]` segments joined by `/`, with one
/// extension, e.g. `logos/0192…-0193….png`.
pub trait FileStore: Send + Sync {
    fn put<'a>(&'a self, key: &'a str, bytes: &'a [u8]) -> FileFuture<'a, ()>;
    fn get<'a>(&'a self, key: &'a str) -> FileFuture<'a, Option<Vec<u8>>>;
    fn delete<'a>(&'a self, key: &'a str) -> FileFuture<'a, ()>;
}

/// Files under one folder on the local disk.
pub struct LocalFiles {
    root: PathBuf,
}

impl LocalFiles {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The path of a key, refusing anything that could leave the folder.
    fn path(&self, key: &str) -> io::Result<PathBuf> {
        let ok = !key.is_empty()
            && key.split('/').all(|segment| {
                !segment.is_empty()
                    && !segment.starts_with('.')
                    && segment.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.'
                    })
            });
        if ok {
            Ok(self.root.join(key))
        } else {
            Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad file key {key:?}"),
            ))
        }
    }
}

impl FileStore for LocalFiles {
    fn put<'a>(&'a self, key: &'a str, bytes: &'a [u8]) -> FileFuture<'a, ()> {
        Box::pin(async move {
            let path = self.path(key)?;
            if let Some(dir) = path.parent() {
                tokio::fs::create_dir_all(dir).await?;
            }
            // Written beside, then renamed: a reader never sees half a file.
            let partial = path.with_extension("partial");
            tokio::fs::write(&partial, bytes).await?;
            tokio::fs::rename(&partial, &path).await
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> FileFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            match tokio::fs::read(self.path(key)?).await {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> FileFuture<'a, ()> {
        Box::pin(async move {
            match tokio::fs::remove_file(self.path(key)?).await {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_cannot_leave_the_folder_and_files_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let files = LocalFiles::new(dir.path());
        for bad in [
            "../x.png",
            "logos/../../x",
            "/etc/passwd",
            "a//b",
            ".hidden",
            "A.png",
            "",
        ] {
            assert!(files.put(bad, b"x").await.is_err(), "{bad}");
        }
        files.put("logos/a-1.png", b"png").await.unwrap();
        assert_eq!(
            files.get("logos/a-1.png").await.unwrap().as_deref(),
            Some(&b"png"[..])
        );
        files.delete("logos/a-1.png").await.unwrap();
        assert_eq!(files.get("logos/a-1.png").await.unwrap(), None);
        files.delete("logos/a-1.png").await.unwrap();
    }
}
