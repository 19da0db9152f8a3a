//! Where snapshots' data is kept: a directory on the server, or an S3-compatible bucket, behind
//! one interface (`object_store`). Each snapshot is one object, `PREFIX/ID.tar.zst`, written as
//! a multipart upload: it exists only once complete, so an interrupted snapshot leaves nothing a
//! reader could take for whole.
//!
//! ```yaml
//! snapshots:
//!   dir: /var/lib/coding-job/snapshots      # the default: DATA_DIR/snapshots
//! # or
//! snapshots:
//!   s3:
//!     bucket: cj-snapshots
//!     endpoint: http://127.0.0.1:9000       # an S3-compatible server; omit for AWS
//!     region: us-east-1
//!     prefix: production/                   # optional
//!     access_key_id: AKIA...
//!     secret_access_key_env: S3_SECRET      # or secret_access_key_file: PATH
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, WriteMultipart};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// `snapshots:` in the server's config.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum TargetConfig {
    /// A directory on the server (created if missing).
    Dir(PathBuf),
    S3(S3Config),
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    pub bucket: String,
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default = "default_region")]
    pub region: String,
    #[serde(default)]
    pub prefix: String,
    pub access_key_id: String,
    #[serde(default)]
    pub secret_access_key: Option<String>,
    #[serde(default)]
    pub secret_access_key_env: Option<String>,
    #[serde(default)]
    pub secret_access_key_file: Option<PathBuf>,
}

fn default_region() -> String {
    "us-east-1".into()
}

// Never print the secret.
impl std::fmt::Debug for TargetConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TargetConfig::Dir(dir) => write!(f, "dir {}", dir.display()),
            TargetConfig::S3(s3) => write!(
                f,
                "s3 bucket {} at {}",
                s3.bucket,
                s3.endpoint.as_deref().unwrap_or("AWS")
            ),
        }
    }
}

impl S3Config {
    fn secret(&self) -> anyhow::Result<String> {
        match (
            &self.secret_access_key,
            &self.secret_access_key_env,
            &self.secret_access_key_file,
        ) {
            (Some(secret), None, None) => Ok(secret.clone()),
            (None, Some(var), None) => std::env::var(var).map_err(|_| {
                anyhow::anyhow!("snapshots.s3.secret_access_key_env: {var} is not set")
            }),
            (None, None, Some(path)) => Ok(std::fs::read_to_string(path)
                .map_err(|error| {
                    anyhow::anyhow!(
                        "snapshots.s3.secret_access_key_file: cannot read {}: {error}",
                        path.display()
                    )
                })?
                .trim()
                .to_owned()),
            _ => anyhow::bail!(
                "snapshots.s3: expected exactly one of secret_access_key, secret_access_key_env, secret_access_key_file"
            ),
        }
    }
}

/// The place snapshots are kept.
#[derive(Clone)]
pub struct SnapshotTarget {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    /// How it is shown: `dir /var/lib/...` or `s3 bucket B at URL`.
    pub shown: String,
}

/// What writing a snapshot's data found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub size_bytes: u64,
    pub sha256: String,
}

impl SnapshotTarget {
    pub fn open(config: &TargetConfig) -> anyhow::Result<SnapshotTarget> {
        let shown = format!("{config:?}");
        let (store, prefix): (Arc<dyn ObjectStore>, String) = match config {
            TargetConfig::Dir(dir) => {
                std::fs::create_dir_all(dir).map_err(|error| {
                    anyhow::anyhow!("snapshots.dir: cannot create {}: {error}", dir.display())
                })?;
                let store = object_store::local::LocalFileSystem::new_with_prefix(dir)?;
                (Arc::new(store), String::new())
            }
            TargetConfig::S3(s3) => {
                let mut builder = object_store::aws::AmazonS3Builder::new()
                    .with_bucket_name(&s3.bucket)
                    .with_region(&s3.region)
                    .with_access_key_id(&s3.access_key_id)
                    .with_secret_access_key(s3.secret()?);
                if let Some(endpoint) = &s3.endpoint {
                    builder = builder
                        .with_endpoint(endpoint)
                        .with_allow_http(endpoint.starts_with("http://"))
                        // S3-compatible servers answer on the endpoint's own path.
                        .with_virtual_hosted_style_request(false);
                }
                (Arc::new(builder.build()?), s3.prefix.clone())
            }
        };
        Ok(SnapshotTarget {
            store,
            prefix,
            shown,
        })
    }

    fn path(&self, id: &str) -> ObjectPath {
        ObjectPath::from(format!("{}{id}.tar.zst", self.prefix))
    }

    /// Writes `data` as snapshot `id`, computing its size and checksum as it goes. On any
    /// error (the stream's or the target's) the upload is aborted and nothing stays.
    pub async fn write<E: std::fmt::Display>(
        &self,
        id: &str,
        data: impl Stream<Item = Result<Bytes, E>> + Send,
    ) -> Result<Written, String> {
        let upload = self
            .store
            .put_multipart(&self.path(id))
            .await
            .map_err(|error| format!("the snapshot target ({}): {error}", self.shown))?;
        let mut writer = WriteMultipart::new(upload);
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut data = std::pin::pin!(data);
        while let Some(chunk) = data.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(error) => {
                    let _ = writer.abort().await;
                    return Err(format!("the data stopped: {error}"));
                }
            };
            // Waits while too many parts are in flight, so a fast sender cannot fill memory.
            if let Err(error) = writer.wait_for_capacity(4).await {
                let _ = writer.abort().await;
                return Err(format!("the snapshot target ({}): {error}", self.shown));
            }
            hasher.update(&chunk);
            size += chunk.len() as u64;
            writer.put(chunk);
        }
        writer
            .finish()
            .await
            .map_err(|error| format!("the snapshot target ({}): {error}", self.shown))?;
        Ok(Written {
            size_bytes: size,
            sha256: hex::encode(hasher.finalize()),
        })
    }

    /// Snapshot `id`'s data as a stream.
    pub async fn read(
        &self,
        id: &str,
    ) -> Result<impl Stream<Item = Result<Bytes, String>> + Send + 'static, String> {
        let found = self
            .store
            .get(&self.path(id))
            .await
            .map_err(|error| format!("the snapshot target ({}): {error}", self.shown))?;
        Ok(found.into_stream().map_err(|error| error.to_string()))
    }

    /// Reads snapshot `id` whole and checks it against `sha256`.
    pub async fn verify(&self, id: &str, sha256: &str) -> Result<(), String> {
        let mut data = std::pin::pin!(self.read(id).await?);
        let mut hasher = Sha256::new();
        while let Some(chunk) = data.next().await {
            hasher.update(&chunk?);
        }
        let found = hex::encode(hasher.finalize());
        if found != sha256 {
            return Err(format!(
                "its data does not match its checksum (recorded {sha256}, found {found})"
            ));
        }
        Ok(())
    }

    pub async fn delete(&self, id: &str) -> Result<(), String> {
        match self.store.delete(&self.path(id)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(format!("the snapshot target ({}): {error}", self.shown)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, String>> + Send {
        futures_util::stream::iter(
            parts
                .iter()
                .map(|part| Ok(Bytes::from_static(part)))
                .collect::<Vec<_>>(),
        )
    }

    #[tokio::test]
    async fn a_directory_keeps_what_was_written_and_checks_it() {
        let dir = tempfile::tempdir().unwrap();
        let target = SnapshotTarget::open(&TargetConfig::Dir(dir.path().join("s"))).unwrap();
        let written = target
            .write("snap-1", chunks(&[b"hello ", b"world"]))
            .await
            .unwrap();
        assert_eq!(written.size_bytes, 11);
        assert_eq!(written.sha256, hex::encode(Sha256::digest(b"hello world")));
        target.verify("snap-1", &written.sha256).await.unwrap();
        let wrong = target.verify("snap-1", &"0".repeat(64)).await.unwrap_err();
        assert!(wrong.contains("does not match its checksum"), "{wrong}");
        target.delete("snap-1").await.unwrap();
        target.delete("snap-1").await.unwrap();
        assert!(target.read("snap-1").await.is_err());
    }

    /// `moto_server` (PyPI's `moto[server]`, an S3-compatible server) on a free loopback
    /// port, killed when dropped.
    struct Moto {
        child: std::process::Child,
        url: String,
    }

    impl Drop for Moto {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    async fn moto() -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("moto_server is installed (scripts/test.sh: pip install \"moto[server]\")");
        let moto = Moto {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        // The bucket, made as any S3 client would (moto takes any credentials).
        loop {
            let made = client.put(format!("{}/snapshots", moto.url)).send().await;
            if made.is_ok_and(|answer| answer.status().is_success()) {
                return moto;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "moto_server did not start within 30 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    #[tokio::test]
    async fn an_s3_bucket_keeps_what_was_written_and_a_broken_upload_leaves_nothing() {
        let moto = moto().await;
        let config = TargetConfig::S3(S3Config {
            bucket: "snapshots".into(),
            endpoint: Some(moto.url.clone()),
            region: "us-east-1".into(),
            prefix: "production/".into(),
            access_key_id: "test".into(),
            secret_access_key: Some("test-secret".into()),
            secret_access_key_env: None,
            secret_access_key_file: None,
        });
        let target = SnapshotTarget::open(&config).unwrap();
        assert!(!format!("{config:?}").contains("test-secret"));
        // Larger than one multipart part (5 MiB), so the upload has several.
        let big: Vec<u8> = (0..12 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        let parts: Vec<Result<Bytes, String>> = big
            .chunks(64 * 1024)
            .map(|chunk| Ok(Bytes::copy_from_slice(chunk)))
            .collect();
        let written = target
            .write("snap-s3", futures_util::stream::iter(parts))
            .await
            .unwrap();
        assert_eq!(written.size_bytes, big.len() as u64);
        assert_eq!(written.sha256, hex::encode(Sha256::digest(&big)));
        target.verify("snap-s3", &written.sha256).await.unwrap();

        let broken = futures_util::stream::iter(vec![
            Ok(Bytes::from(vec![7u8; 6 * 1024 * 1024])),
            Err("the agent went away".to_owned()),
        ]);
        let error = target.write("snap-cut", broken).await.unwrap_err();
        assert!(error.contains("the agent went away"), "{error}");
        assert!(
            target.read("snap-cut").await.is_err(),
            "a cut upload left an object"
        );

        target.delete("snap-s3").await.unwrap();
        assert!(target.read("snap-s3").await.is_err());
    }

    #[tokio::test]
    async fn a_broken_stream_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = SnapshotTarget::open(&TargetConfig::Dir(dir.path().to_owned())).unwrap();
        let data = futures_util::stream::iter(vec![
            Ok(Bytes::from_static(b"part")),
            Err("the agent went away".to_owned()),
        ]);
        let error = target.write("snap-2", data).await.unwrap_err();
        assert!(error.contains("the agent went away"), "{error}");
        assert!(target.read("snap-2").await.is_err());
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
