//! Test support: a real Docker registry (Debian's `docker-registry`) as a plain process on a free
//! loopback port, with its own config and storage in a temp dir, optionally behind htpasswd
//! auth; and small distinct images built from the busybox test image and pushed to it with the
//! Docker CLI. Dropping a [`TestRegistry`] stops the process, removes its dir and removes every
//! image tag it pushed, even if the test failed.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub const BASE_IMAGE: &str = "cj-example/busybox:1";

pub struct TestRegistry {
    dir: TempDir,
    port: u16,
    process: Child,
    /// `Some((user, password))` when the registry checks htpasswd.
    credentials: Option<(String, String)>,
    /// Every `HOST/repo:tag` built, so Drop can remove them from the local Docker.
    pushed: Mutex<Vec<String>>,
    /// Whether `docker login` succeeded, so Drop logs out.
    logged_in: Mutex<bool>,
}

impl TestRegistry {
    /// A registry without authentication.
    pub fn start() -> TestRegistry {
        TestRegistry::start_inner(None)
    }

    /// A registry that accepts only `user`/`password` (htpasswd, bcrypt).
    pub fn start_with_auth(user: &str, password: &str) -> TestRegistry {
        TestRegistry::start_inner(Some((user.to_string(), password.to_string())))
    }

    /// "127.0.0.1:PORT"
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Builds a distinct small image (the base image plus a file naming `tag`), tags it
    /// HOST/repository:tag, pushes it and returns the local image id ("sha256:...").
    pub fn push_image(&self, repository: &str, tag: &str) -> String {
        ensure_base_image();
        let reference = format!("{}/{repository}:{tag}", self.host());
        let context = tempfile::tempdir().unwrap();
        // The nanosecond timestamp keeps the content, and so the image, distinct even where
        // another test pushes the same repository and tag.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        std::fs::write(
            context.path().join("tag.txt"),
            format!("{reference} {nanos}\n"),
        )
        .unwrap();
        std::fs::write(
            context.path().join("Dockerfile"),
            format!("FROM {BASE_IMAGE}\nCOPY tag.txt /tag.txt\n"),
        )
        .unwrap();
        // Remembered before building, so Drop removes it whatever fails after this point.
        self.pushed.lock().unwrap().push(reference.clone());
        // --no-cache: a cached build would reuse an older image with an older `created`.
        let built = docker(
            &["build", "-q", "--no-cache", "-t", &reference],
            Some(context.path()),
            None,
        );
        let image_id = String::from_utf8(built.stdout).unwrap().trim().to_string();
        assert!(
            image_id.starts_with("sha256:"),
            "unexpected build output {image_id:?}"
        );
        self.login();
        docker(
            &["push", "-q", &reference],
            None,
            self.docker_config().as_deref(),
        );
        image_id
    }

    /// Pushes a manifest list `HOST/repository:tag` of already pushed tags, each entry marked
    /// linux with the given architecture, and returns the list's digest.
    pub fn push_manifest_list(
        &self,
        repository: &str,
        tag: &str,
        entries: &[(&str, &str)],
    ) -> String {
        let list = format!("{}/{repository}:{tag}", self.host());
        let images: Vec<String> = entries
            .iter()
            .map(|(entry_tag, _)| format!("{}/{repository}:{entry_tag}", self.host()))
            .collect();
        // The CLI keeps lists being made under DOCKER_CONFIG; ours goes away with the temp dir.
        let config = self.dir.path().join("docker-config");
        let mut create = vec!["manifest", "create", "--insecure", &list];
        create.extend(images.iter().map(String::as_str));
        docker(&create, None, Some(&config));
        for (image, (_, architecture)) in images.iter().zip(entries) {
            let annotate = [
                "manifest",
                "annotate",
                "--os",
                "linux",
                "--arch",
                architecture,
                &list,
                image,
            ];
            docker(&annotate, None, Some(&config));
        }
        let pushed = docker(
            &["manifest", "push", "--insecure", "--purge", &list],
            None,
            Some(&config),
        );
        String::from_utf8(pushed.stdout).unwrap().trim().to_string()
    }

    /// The `HOST/repository@sha256:...` Docker recorded for a pushed image.
    pub fn repo_digest(&self, repository: &str, tag: &str) -> String {
        let reference = format!("{}/{repository}:{tag}", self.host());
        let output = docker(
            &[
                "image",
                "inspect",
                "-f",
                "{{index .RepoDigests 0}}",
                &reference,
            ],
            None,
            None,
        );
        String::from_utf8(output.stdout).unwrap().trim().to_string()
    }

    /// A Docker CLI config dir of this registry's own for `docker login`, so concurrent tests
    /// never rewrite the user's `~/.docker/config.json` at the same time.
    pub fn docker_config(&self) -> Option<PathBuf> {
        self.credentials
            .as_ref()
            .map(|_| self.dir.path().join("docker-config"))
    }

    fn login(&self) {
        let Some((user, password)) = &self.credentials else {
            return;
        };
        let mut logged_in = self.logged_in.lock().unwrap();
        if *logged_in {
            return;
        }
        let mut child = Command::new("docker")
            .args([
                "login",
                "--username",
                user,
                "--password-stdin",
                &self.host(),
            ])
            .env("DOCKER_CONFIG", self.docker_config().unwrap())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("failed to run docker login");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(password.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "docker login failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        *logged_in = true;
    }

    fn start_inner(credentials: Option<(String, String)>) -> TestRegistry {
        let dir = tempfile::Builder::new()
            .prefix("cj-registry-test-")
            .tempdir()
            .unwrap();
        if let Some((user, password)) = &credentials {
            let output = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .expect("failed to run htpasswd (apt-get install apache2-utils)");
            assert!(output.status.success(), "htpasswd failed");
            std::fs::write(dir.path().join("htpasswd"), output.stdout).unwrap();
        }
        // Another process may take the free port before the registry binds it: then try again.
        for _ in 0..5 {
            let port = free_port();
            let config = registry_config(dir.path(), port, credentials.is_some());
            std::fs::write(dir.path().join("config.yml"), config).unwrap();
            let log_path = dir.path().join("registry.log");
            let log = std::fs::File::create(&log_path).unwrap();
            let mut process = Command::new("docker-registry")
                .arg("serve")
                .arg(dir.path().join("config.yml"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("failed to start docker-registry (apt-get install docker-registry)");
            if wait_until_ready(&mut process, port) {
                return TestRegistry {
                    dir,
                    port,
                    process,
                    credentials,
                    pushed: Mutex::default(),
                    logged_in: Mutex::new(false),
                };
            }
            let _ = process.kill();
            let _ = process.wait();
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            eprintln!("docker-registry on port {port} did not start:\n{log}");
        }
        panic!("docker-registry did not start");
    }
}

/// True once `GET /v2/` answers (200, or 401 with auth); false if the process exited or ten
/// seconds passed.
fn wait_until_ready(process: &mut Child, port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if process.try_wait().unwrap().is_some() {
            return false;
        }
        if let Some(status) = http_status(port, "/v2/") {
            return status == 200 || status == 401;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        let pushed = std::mem::take(&mut *self.pushed.lock().unwrap());
        if !pushed.is_empty() {
            let mut args = vec!["rmi".to_string()];
            args.extend(pushed);
            match Command::new("docker").args(&args).output() {
                Ok(output) if output.status.success() => {}
                Ok(output) => eprintln!(
                    "docker rmi failed: {}",
                    String::from_utf8_lossy(&output.stderr)
                ),
                Err(error) => eprintln!("docker rmi failed: {error}"),
            }
        }
        if *self.logged_in.lock().unwrap() {
            let _ = Command::new("docker")
                .args(["logout", &self.host()])
                .env("DOCKER_CONFIG", self.docker_config().unwrap())
                .output();
        }
    }
}

/// The registry's own config: loopback only, storage in `dir`, htpasswd auth if asked. Access
/// logs are off so a failing test's output shows what matters.
fn registry_config(dir: &Path, port: u16, with_auth: bool) -> String {
    let mut config = format!(
        "version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
  secret: cj-registry-test
",
        storage = dir.join("storage").display()
    );
    if with_auth {
        config.push_str(&format!(
            "auth:
  htpasswd:
    realm: cj-registry-test
    path: {}
",
            dir.join("htpasswd").display()
        ));
    }
    config
}

/// The status code of a plain `GET path` on 127.0.0.1:port; `None` if nothing answers yet.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    // "HTTP/1.1 200 OK"
    answer.split_whitespace().nth(1)?.parse().ok()
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Builds the busybox base image once per test process, if it is missing.
fn ensure_base_image() {
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/build-example-image.sh");
        let status = Command::new("bash")
            .arg(script)
            .arg(BASE_IMAGE)
            .status()
            .expect("failed to run build-example-image.sh");
        assert!(status.success(), "building {BASE_IMAGE} failed");
    });
}

/// Runs the Docker CLI (legacy builder, as the project's scripts do), with a build context as the
/// last argument if given, and panics with its output if it fails.
fn docker(args: &[&str], context: Option<&Path>, docker_config: Option<&Path>) -> Output {
    let mut command = Command::new("docker");
    command.args(args).env("DOCKER_BUILDKIT", "0");
    if let Some(context) = context {
        command.arg(context);
    }
    if let Some(docker_config) = docker_config {
        command.env("DOCKER_CONFIG", docker_config);
    }
    let output = command.output().expect("failed to run docker");
    assert!(
        output.status.success(),
        "docker {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}
