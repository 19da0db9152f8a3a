use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::evict::evict_least_recently_used;
use super::{ArtifactCache, ArtifactCacheConfig};

fn sha256(content: &[u8]) -> String {
    hex::encode(Sha256::digest(content))
}

fn cache_in(dir: &Path, max_bytes: u64) -> ArtifactCache {
    ArtifactCache::new(ArtifactCacheConfig {
        dir: dir.join("cache"),
        max_bytes,
    })
}

/// Names of the files in `dir`, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Writes an artifact of `size` bytes of `fill` at `dir/SHA256`, last used `age` ago.
fn cached(dir: &Path, fill: u8, size: usize, age: Duration) -> String {
    let content = vec![fill; size];
    let name = sha256(&content);
    let path = dir.join(&name);
    std::fs::write(&path, &content).unwrap();
    let file = std::fs::File::options().write(true).open(&path).unwrap();
    file.set_modified(SystemTime::now() - age).unwrap();
    name
}

#[tokio::test]
async fn a_file_is_fetched_once_and_then_taken_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("api-1.tar.gz");
    std::fs::write(&source, b"the code").unwrap();
    let cache = cache_in(dir.path(), 1 << 20);
    let checksum = sha256(b"the code");

    let first = cache
        .get(source.to_str().unwrap(), &checksum)
        .await
        .unwrap();
    assert_eq!(first.bytes, 8);
    assert!(
        first.note().starts_with("artifact fetched: 0.0 MB in "),
        "{}",
        first.note()
    );
    assert_eq!(
        files(&dir.path().join("cache")),
        std::slice::from_ref(&checksum)
    );

    std::fs::remove_file(&source).unwrap();
    let second = cache
        .get(source.to_str().unwrap(), &checksum)
        .await
        .unwrap();
    assert_eq!(second.note(), "artifact from the host's cache");
    let mut content = String::new();
    std::io::Read::read_to_string(&mut &second.file, &mut content).unwrap();
    assert_eq!(content, "the code");
}

#[tokio::test]
async fn a_mismatch_names_both_checksums_and_keeps_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("api-2.tar");
    std::fs::write(&source, b"other code").unwrap();
    let cache = cache_in(dir.path(), 1 << 20);
    let expected = sha256(b"the code");
    let error = cache
        .get(source.to_str().unwrap(), &expected)
        .await
        .unwrap_err();
    assert_eq!(
        error,
        format!(
            "sha256 mismatch: expected {expected}, got {}",
            sha256(b"other code")
        )
    );
    assert!(files(&dir.path().join("cache")).is_empty());
}

#[test]
fn eviction_removes_the_least_recently_used_until_under_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let oldest = cached(dir.path(), b'a', 100, Duration::from_secs(300));
    let older = cached(dir.path(), b'b', 100, Duration::from_secs(200));
    let newer = cached(dir.path(), b'c', 100, Duration::from_secs(100));
    let added = cached(dir.path(), b'd', 100, Duration::ZERO);
    std::fs::write(dir.path().join("notes.txt"), vec![0u8; 1000]).unwrap();

    let removed = evict_least_recently_used(dir.path(), 250, &added).unwrap();
    assert_eq!(removed, [oldest, older]);
    let mut left = vec![newer.clone(), added.clone(), "notes.txt".to_owned()];
    left.sort();
    assert_eq!(
        files(dir.path()),
        left,
        "other files are not the cache's to remove"
    );

    // Under the bound: nothing goes.
    assert!(
        evict_least_recently_used(dir.path(), 250, &added)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn the_file_just_added_stays_even_alone_over_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let older = cached(dir.path(), b'a', 100, Duration::from_secs(100));
    // The newest is the one kept: the order of use does not protect it, the name does.
    let added = cached(dir.path(), b'b', 500, Duration::from_secs(200));
    let removed = evict_least_recently_used(dir.path(), 250, &added).unwrap();
    assert_eq!(removed, [older]);
    assert_eq!(files(dir.path()), [added]);
}

#[tokio::test]
async fn a_use_counts_as_recent_so_the_unused_one_goes() {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("cache");
    std::fs::create_dir(&cache_dir).unwrap();
    let used = cached(&cache_dir, b'a', 100, Duration::from_secs(300));
    let unused = cached(&cache_dir, b'b', 100, Duration::from_secs(200));
    let cache = cache_in(dir.path(), 250);
    // A hit touches the file: it is now the most recently used.
    let hit = cache.get("/nonexistent.tar", &used).await.unwrap();
    assert!(hit.fetched_in.is_none());

    let source = dir.path().join("new.tar");
    std::fs::write(&source, vec![b'c'; 100]).unwrap();
    let added = sha256(&[b'c'; 100]);
    cache.get(source.to_str().unwrap(), &added).await.unwrap();
    let mut left = vec![used, added];
    left.sort();
    assert_eq!(
        files(&cache_dir),
        left,
        "{unused} was the least recently used"
    );
}

/// An HTTP server that answers every GET with `body` after `delay`, counting the requests.
async fn serve(body: Vec<u8>, status: &'static str, delay: Duration) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/1.tar.gz", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            counted.fetch_add(1, Ordering::SeqCst);
            let body = body.clone();
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                tokio::time::sleep(delay).await;
                let head = format!(
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(&body).await;
            });
        }
    });
    (url, requests)
}

#[tokio::test]
async fn tasks_needing_one_artifact_at_once_fetch_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let body = vec![7u8; 300_000];
    let checksum = sha256(&body);
    let (url, requests) = serve(body, "200 OK", Duration::from_millis(200)).await;
    let cache = Arc::new(cache_in(dir.path(), 1 << 30));
    let gets = (0..5).map(|_| {
        let (cache, url, checksum) = (cache.clone(), url.clone(), checksum.clone());
        tokio::spawn(async move { cache.get(&url, &checksum).await })
    });
    let results = futures_util::future::join_all(gets).await;
    let fetched = results
        .into_iter()
        .map(|result| result.unwrap().unwrap())
        .filter(|artifact| artifact.fetched_in.is_some())
        .count();
    assert_eq!(fetched, 1);
    assert_eq!(requests.load(Ordering::SeqCst), 1);
    assert!(
        cache.fetching.lock().unwrap().is_empty(),
        "locks are dropped"
    );
}

#[tokio::test]
async fn http_failures_say_what_happened_in_words() {
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_in(dir.path(), 1 << 20);
    let checksum = "a".repeat(64);
    let (url, _) = serve(Vec::new(), "404 Not Found", Duration::ZERO).await;
    assert_eq!(
        cache.get(&url, &checksum).await.unwrap_err(),
        "HTTP 404 Not Found"
    );
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    assert_eq!(
        cache
            .get(&format!("http://{closed}/api.tar.gz"), &checksum)
            .await
            .unwrap_err(),
        "connection refused"
    );
    assert_eq!(
        cache
            .get("/nonexistent/api.tar", &checksum)
            .await
            .unwrap_err(),
        "No such file or directory"
    );
}
