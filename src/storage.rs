//! Files the service keeps (clinic logos, clinical attachments) behind a small trait, so a
//! deployment with several replicas can put them on shared storage: a local folder by
//! default, or S3-compatible object storage (`FILE_STORE=s3://bucket/prefix`, through the
//! `object_store` crate).

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use object_store::ObjectStore;

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

/// Files in an S3-compatible bucket, under a prefix.
pub struct ObjectFiles {
    store: Arc<dyn ObjectStore>,
    prefix: String,
}

impl ObjectFiles {
    pub fn s3(settings: &crate::config::S3Config) -> io::Result<Self> {
        use secrecy::ExposeSecret;
        let rest = settings.url.strip_prefix("s3://").ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "FILE_STORE must start with s3://",
            )
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let mut builder = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region(&settings.region)
            .with_allow_http(settings.allow_http);
        if let Some(endpoint) = &settings.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(key) = &settings.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &settings.secret_access_key {
            builder = builder.with_secret_access_key(secret.expose_secret());
        }
        let store = builder
            .build()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        Ok(Self {
            store: Arc::new(store),
            prefix: prefix.trim_matches('/').to_owned(),
        })
    }

    fn path(&self, key: &str) -> io::Result<object_store::path::Path> {
        // The same keys as on disk: nothing that could name another object.
        LocalFiles::new("/").path(key)?;
        let full = if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.prefix)
        };
        object_store::path::Path::parse(full)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))
    }
}

fn io_error(e: object_store::Error) -> io::Error {
    io::Error::other(e.to_string())
}

impl FileStore for ObjectFiles {
    fn put<'a>(&'a self, key: &'a str, bytes: &'a [u8]) -> FileFuture<'a, ()> {
        Box::pin(async move {
            let path = self.path(key)?;
            self.store
                .put(&path, bytes.to_vec().into())
                .await
                .map(|_| ())
                .map_err(io_error)
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> FileFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            let path = self.path(key)?;
            match self.store.get(&path).await {
                Ok(found) => Ok(Some(found.bytes().await.map_err(io_error)?.to_vec())),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(io_error(e)),
            }
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> FileFuture<'a, ()> {
        Box::pin(async move {
            let path = self.path(key)?;
            match self.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(io_error(e)),
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
