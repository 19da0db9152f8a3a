//! A real ACME server for a test: Debian's `pebble` (Let's Encrypt's test CA) with
//! `pebble-challtestsrv` as its DNS, both on loopback with free ports, killed when dropped
//! (even when the test fails). Every name resolves to 127.0.0.1 unless a test maps it
//! elsewhere ([`Pebble::map_name`]); pebble validates HTTP-01 challenges on `http_port`, where
//! the router under test listens. Pebble serves its API with a certificate made here
//! ([`Pebble::ca_cert`], for `--acme-ca-cert`) and issues from a root of its own
//! ([`Pebble::issuing_root`]).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

pub struct Pebble {
    pebble: Child,
    challtestsrv: Child,
    dir: tempfile::TempDir,
    directory_port: u16,
    management_port: u16,
    dns_management_port: u16,
}

impl Pebble {
    /// Starts both and waits (up to 20 s) until the directory answers.
    pub fn start(http_port: u16) -> Pebble {
        assert!(
            which("pebble") && which("pebble-challtestsrv"),
            "pebble is not installed: scripts/test.sh installs Debian's pebble"
        );
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .unwrap();
        let certificate = params.self_signed(&key).unwrap();
        std::fs::write(dir.path().join("cert.pem"), certificate.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
        let (directory_port, management_port) = (free_port(), free_port());
        let (dns_port, dns_management_port) = (free_port(), free_port());
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{directory_port}"),
            "managementListenAddress": format!("127.0.0.1:{management_port}"),
            "certificate": dir.path().join("cert.pem"),
            "privateKey": dir.path().join("key.pem"),
            "httpPort": http_port,
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        std::fs::write(dir.path().join("pebble.json"), config.to_string()).unwrap();
        let log = |name: &str| Stdio::from(std::fs::File::create(dir.path().join(name)).unwrap());
        let challtestsrv = Command::new("pebble-challtestsrv")
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-dns01", &format!("127.0.0.1:{dns_port}")])
            .args(["-management", &format!("127.0.0.1:{dns_management_port}")])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdout(log("challtestsrv.log"))
            .stderr(Stdio::null())
            .spawn()
            .expect("failed to start pebble-challtestsrv");
        let pebble = Command::new("pebble")
            .arg("-config")
            .arg(dir.path().join("pebble.json"))
            .args(["-dnsserver", &format!("127.0.0.1:{dns_port}")])
            // No random waits before validating, and no nonces refused on purpose.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(log("pebble.log"))
            .stderr(Stdio::null())
            .spawn()
            .expect("failed to start pebble");
        let pebble = Pebble {
            pebble,
            challtestsrv,
            dir,
            directory_port,
            management_port,
            dns_management_port,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while pebble.get(&pebble.directory_url()).is_err()
            || pebble
                .dns_management("set-default-ipv4", "127.0.0.1")
                .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "pebble did not answer within 20 s: {}",
                pebble.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        pebble
    }

    pub fn directory_url(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.directory_port)
    }

    /// The certificate pebble's API is served with.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// The root pebble issues certificates from (PEM), from its management API.
    pub fn issuing_root(&self) -> String {
        self.get(&format!(
            "https://127.0.0.1:{}/roots/0",
            self.management_port
        ))
        .expect("pebble's management API did not answer")
    }

    /// How many orders pebble was sent so far.
    pub fn orders(&self) -> usize {
        self.log().matches("POST /order-plz").count()
    }

    /// What pebble logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pebble.log")).unwrap_or_default()
    }

    /// Makes `name` resolve to `address` (IPv4) for pebble's validation.
    pub fn map_name(&self, name: &str, address: &str) {
        let body = serde_json::json!({"host": name, "addresses": [address]});
        self.dns_management_raw("add-a", &body.to_string())
            .expect("pebble-challtestsrv did not take the A record");
    }

    fn dns_management(&self, path: &str, ip: &str) -> Result<String, String> {
        self.dns_management_raw(path, &serde_json::json!({ "ip": ip }).to_string())
    }

    fn dns_management_raw(&self, path: &str, body: &str) -> Result<String, String> {
        let url = format!("http://127.0.0.1:{}/{path}", self.dns_management_port);
        let body = body.to_owned();
        runtime().block_on(async move {
            let answer = reqwest::Client::new()
                .post(url)
                .body(body)
                .send()
                .await
                .map_err(|error| error.to_string())?;
            if !answer.status().is_success() {
                return Err(format!("{}", answer.status()));
            }
            answer.text().await.map_err(|error| error.to_string())
        })
    }

    /// GET over HTTPS, trusting pebble's API certificate.
    fn get(&self, url: &str) -> Result<String, String> {
        let ca = std::fs::read(self.ca_cert()).unwrap();
        let url = url.to_owned();
        runtime().block_on(async move {
            let client = reqwest::Client::builder()
                .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap();
            let answer = client
                .get(url)
                .send()
                .await
                .map_err(|error| error.to_string())?;
            answer.text().await.map_err(|error| error.to_string())
        })
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in [&mut self.pebble, &mut self.challtestsrv] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn which(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}
