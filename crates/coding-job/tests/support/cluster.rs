//! Several real hosts for a test: a `coding-job server` on the test bed's bridge and one
//! `coding-job agent` in each host's network namespace, driving that host's own Docker engine.
//! [`Cluster::start_tls`] is the same with a server serving HTTPS, which agents and the CLI
//! trust through `--ca-cert`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::testbed::Testbed;
use super::{Server, Tls, wait_for};

/// A server, a test bed and an agent per host; agents are killed first when it is dropped,
/// then the server, then the bed (which removes every container of its engines).
pub struct Cluster {
    pub agents: HashMap<String, Child>,
    pub server: Server,
    pub bed: Testbed,
    pub agent_token_file: PathBuf,
    /// The CA the agents are given with `--ca-cert` (and the CLI trusts), when the server
    /// serves HTTPS.
    pub ca_cert: Option<PathBuf>,
    /// Holds the certificates and the server's key for as long as the server runs.
    _tls_files: Option<tempfile::TempDir>,
}

impl Cluster {
    pub fn start(hosts: usize) -> Cluster {
        Cluster::start_with(hosts, false, &[])
    }

    /// As [`Cluster::start`], with more arguments for `coding-job server`.
    pub fn start_with_server_args(hosts: usize, server_args: &[&str]) -> Cluster {
        Cluster::start_with(hosts, false, server_args)
    }

    /// As [`Cluster::start`], with the server serving HTTPS under a certificate for the bed's
    /// gateway signed by a CA of the test's own, which every agent and the CLI trust.
    pub fn start_tls(hosts: usize) -> Cluster {
        Cluster::start_with(hosts, true, &[])
    }

    fn start_with(hosts: usize, tls: bool, server_args: &[&str]) -> Cluster {
        let bed = Testbed::start(hosts);
        let tls_files = tls.then(|| tempfile::tempdir().unwrap());
        let certificates = tls_files
            .as_ref()
            .map(|dir| certificates(dir.path(), bed.gateway()));
        let server_tls = certificates.as_ref().map(|(tls, _)| tls);
        let mut server = Server::start_on_with(bed.gateway(), server_tls, server_args);
        let ca_cert = certificates.map(|(_, ca_cert)| ca_cert);
        server.ca_cert = ca_cert.clone();
        server.token = Some(server.admin_token());
        let created = server.json(&["token", "create", "agents", "--role", "agent", "--json"]);
        let agent_token_file = server.data_dir.path().join("agent.token");
        std::fs::write(&agent_token_file, created["secret"].as_str().unwrap()).unwrap();
        let mut cluster = Cluster {
            agents: HashMap::new(),
            server,
            bed,
            agent_token_file,
            ca_cert,
            _tls_files: tls_files,
        };
        let names: Vec<String> = cluster.bed.hosts.iter().map(|h| h.name.clone()).collect();
        for name in &names {
            cluster.start_agent(name);
        }
        cluster.wait_for_hosts(&names, "ready");
        cluster
    }

    pub fn start_agent(&mut self, name: &str) {
        let command = self.agent_command(name, name, self.ca_cert.as_deref());
        self.spawn_agent(name, command);
    }

    /// The command of an agent called `name` in host `host`'s namespace and engine, given
    /// `ca_cert` if any; a test may change it (its stderr, say) before [`Cluster::spawn_agent`].
    pub fn agent_command(&self, host: &str, name: &str, ca_cert: Option<&Path>) -> Command {
        let host = self.bed.host(host);
        let mut command = host.command_in_netns(env!("CARGO_BIN_EXE_coding-job"));
        command
            .args(["agent", "--server", &self.server.url, "--name", name])
            .arg("--token-file")
            .arg(&self.agent_token_file)
            .args(["--docker-host", &host.docker_host])
            .args(["--label", &format!("slot={name}")])
            // Each host its own artifact cache, as separate machines have: the hosts of a bed
            // share this machine's file system.
            .arg("--artifact-cache")
            .arg(
                self.server
                    .data_dir
                    .path()
                    .join(format!("artifacts-{name}")),
            )
            .env("RUST_LOG", "warn")
            .env_remove("CODING_JOB_CA_CERT")
            .stdout(Stdio::null());
        if let Some(ca_cert) = ca_cert {
            command.arg("--ca-cert").arg(ca_cert);
        }
        command
    }

    /// Starts `command` as the agent `name`; it is killed when the cluster is dropped.
    pub fn spawn_agent(&mut self, name: &str, mut command: Command) {
        let child = command.spawn().expect("failed to start an agent");
        self.agents.insert(name.to_owned(), child);
    }

    pub fn kill_agent(&mut self, name: &str) {
        let mut child = self.agents.remove(name).expect("no such agent");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    pub fn hosts(&self) -> Vec<cj_api::HostInfo> {
        serde_json::from_value(self.server.json(&["hosts", "--json"])).unwrap()
    }

    pub fn wait_for_hosts(&self, names: &[String], state: &str) {
        wait_for(
            &format!("hosts {names:?} to be {state}"),
            Duration::from_secs(40),
            || {
                let hosts = self.hosts();
                names
                    .iter()
                    .all(|name| hosts.iter().any(|h| &h.name == name && h.state == state))
                    .then_some(())
            },
        );
    }

    /// The containers of a job in one host's engine: (id, running, started at).
    pub fn containers(&self, host: &str, job: &str) -> Vec<(String, bool, String)> {
        let host = self.bed.host(host);
        // The agent may remove a container between the listing and the inspect: list again.
        for _ in 0..20 {
            let listed = host.docker(&[
                "ps",
                "-aq",
                "--no-trunc",
                "--filter",
                &format!("label=coding-job.job={job}"),
            ]);
            let ids: Vec<&str> = listed.lines().filter(|id| !id.is_empty()).collect();
            if ids.is_empty() {
                return Vec::new();
            }
            let output = std::process::Command::new("docker")
                .arg("-H")
                .arg(&host.docker_host)
                .args([
                    "inspect",
                    "-f",
                    "{{.Id}} {{.State.Running}} {{.State.StartedAt}}",
                ])
                .args(&ids)
                .output()
                .expect("failed to run docker");
            if !output.status.success() {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            return String::from_utf8_lossy(&output.stdout)
                .lines()
                .filter_map(|line| {
                    let mut fields = line.split(' ');
                    let id = fields.next()?.to_owned();
                    let running = fields.next()? == "true";
                    Some((id, running, fields.next()?.to_owned()))
                })
                .collect();
        }
        panic!("the containers of {job} kept changing while being listed");
    }

    /// A standalone `coding-job router` in the root namespace (where it reaches every host's
    /// address) for `domain`, following this cluster's server with the admin token.
    pub fn start_router(&self, domain: &str) -> RouterProcess {
        let address = format!("127.0.0.1:{}", super::free_port());
        let child = Command::new(env!("CARGO_BIN_EXE_coding-job"))
            .args(["router", "--server", &self.server.url, "--listen", &address])
            .args(["--domain", domain, "--token-file"])
            .arg(self.server.admin_token_file())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("failed to start the router");
        RouterProcess { child, address }
    }

    pub fn wait_running(&self, service: &str, jobs: &[&str]) {
        wait_for(
            "every task running and reported",
            Duration::from_secs(40),
            || {
                let rows = self.server.status(service);
                jobs.iter()
                    .all(|job| rows.iter().any(|r| r.job == *job && r.state == "running"))
                    .then_some(())
            },
        );
    }
}

/// A CA and a server certificate it signed for `ip`, written to `dir`: the server's files, and
/// the CA file to trust. The CA file also holds an unrelated certificate first, as a bundle of
/// several would.
fn certificates(dir: &Path, ip: &str) -> (Tls, PathBuf) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "coding-job test CA");
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server_cert = rcgen::CertificateParams::new(vec![ip.to_owned()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    let unrelated = rcgen::generate_simple_self_signed(vec!["unrelated.example".to_owned()])
        .unwrap()
        .cert;
    let tls = Tls {
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    };
    let ca_cert = dir.join("ca.pem");
    std::fs::write(&tls.cert, server_cert.pem()).unwrap();
    std::fs::write(&tls.key, server_key.serialize_pem()).unwrap();
    std::fs::write(&ca_cert, format!("{}{}", unrelated.pem(), ca.pem())).unwrap();
    (tls, ca_cert)
}

/// A `coding-job router` process, killed when dropped.
pub struct RouterProcess {
    child: Child,
    pub address: String,
}

impl Drop for RouterProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, mut child) in self.agents.drain() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
