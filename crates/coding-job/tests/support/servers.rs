//! Several `coding-job server`s sharing a real etcd cluster, with an agent per host of a test
//! bed, each agent given every server's URL. Each server reaches etcd through proxies of its
//! own ([`Cuttable`]), so a test can cut one server off etcd alone. Dropped in order: agents,
//! servers, proxies, etcd, then the bed (which removes every container of its engines).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use cj_api::servers::ClusterMember;

use super::etcd::{Cuttable, Etcd};
use super::testbed::Testbed;
use super::{Server, wait_for};

pub struct Servers {
    pub agents: HashMap<String, Child>,
    /// `None` once a test killed it for good.
    pub servers: Vec<Option<Server>>,
    /// Per server, one proxy per etcd member.
    pub proxies: Vec<Vec<Cuttable>>,
    pub etcd: Etcd,
    pub bed: Testbed,
    pub agent_token_file: PathBuf,
    pub token: String,
    _files: tempfile::TempDir,
}

impl Servers {
    /// An etcd of three members, `servers` servers (`s0` first, so it writes the admin token),
    /// and an agent on each of `hosts` hosts linked to every server (`--server s0,s1,...`).
    pub fn start(servers: usize, hosts: usize, server_args: &[&str]) -> Servers {
        let bed = Testbed::start(hosts);
        let etcd = Etcd::start(3);
        let files = tempfile::tempdir().unwrap();
        let mut started: Vec<Option<Server>> = Vec::new();
        let mut proxies = Vec::new();
        let mut token = String::new();
        for n in 0..servers {
            let own: Vec<Cuttable> = etcd
                .endpoints()
                .iter()
                .map(|e| Cuttable::start(e))
                .collect();
            let store = format!(
                "etcd://{}",
                own.iter()
                    .map(|p| p.address.clone())
                    .collect::<Vec<_>>()
                    .join(",")
            );
            let name = format!("s{n}");
            let mut args = vec!["--store", &store, "--name", &name];
            args.extend_from_slice(server_args);
            let mut server = Server::start_on_with(bed.gateway(), None, &args);
            if n == 0 {
                token = server.admin_token();
            }
            server.token = Some(token.clone());
            started.push(Some(server));
            proxies.push(own);
        }
        let first = started[0].as_ref().unwrap();
        let created = first.json(&["token", "create", "agents", "--role", "agent", "--json"]);
        let agent_token_file = files.path().join("agent.token");
        std::fs::write(&agent_token_file, created["secret"].as_str().unwrap()).unwrap();
        let mut cluster = Servers {
            agents: HashMap::new(),
            servers: started,
            proxies,
            etcd,
            bed,
            agent_token_file,
            token,
            _files: files,
        };
        let names: Vec<String> = cluster.bed.hosts.iter().map(|h| h.name.clone()).collect();
        for name in &names {
            cluster.start_agent(name);
        }
        cluster.wait_for_hosts(&names, "ready");
        cluster
    }

    /// Every server's URL, comma-separated, in order.
    pub fn urls(&self) -> String {
        self.servers
            .iter()
            .flatten()
            .map(|s| s.url.clone())
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn start_agent(&mut self, name: &str) {
        let host = self.bed.host(name);
        let child = host
            .command_in_netns(env!("CARGO_BIN_EXE_coding-job"))
            .args(["agent", "--server", &self.urls(), "--name", name])
            .arg("--token-file")
            .arg(&self.agent_token_file)
            .args(["--docker-host", &host.docker_host])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("failed to start an agent");
        self.agents.insert(name.to_owned(), child);
    }

    pub fn server(&self, n: usize) -> &Server {
        self.servers[n].as_ref().expect("that server was stopped")
    }

    pub fn server_mut(&mut self, n: usize) -> &mut Server {
        self.servers[n].as_mut().expect("that server was stopped")
    }

    /// The servers as `n` lists them, if it answers.
    pub fn listed_by(&self, n: usize) -> Option<Vec<ClusterMember>> {
        let output = self.server(n).cli(&["servers", "--json"]);
        if !output.status.success() {
            return None;
        }
        serde_json::from_slice(&output.stdout).ok()
    }

    /// Which server leads, as server `n` says (by index, from the name `sN`).
    pub fn leader_by(&self, n: usize) -> Option<usize> {
        self.listed_by(n)?
            .into_iter()
            .find(|s| s.leader)
            .and_then(|s| s.name.strip_prefix('s')?.parse().ok())
    }

    /// Waits until server `asked` says a server other than `not` leads; that server and when.
    pub fn wait_for_leader_other_than(
        &self,
        asked: usize,
        not: usize,
        within: Duration,
    ) -> (usize, Instant) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(leader) = self.leader_by(asked)
                && leader != not
            {
                return (leader, Instant::now());
            }
            assert!(
                Instant::now() < deadline,
                "no server but s{not} led within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn hosts(&self, via: usize) -> Vec<cj_api::HostInfo> {
        serde_json::from_value(self.server(via).json(&["hosts", "--json"])).unwrap()
    }

    pub fn wait_for_hosts(&self, names: &[String], state: &str) {
        wait_for(
            &format!("hosts {names:?} to be {state}"),
            Duration::from_secs(40),
            || {
                // Whichever server answers (a stopped one does not).
                let hosts: Vec<cj_api::HostInfo> = self.servers.iter().flatten().find_map(|s| {
                    let output = s.cli(&["hosts", "--json"]);
                    serde_json::from_slice(&output.stdout).ok()
                })?;
                names
                    .iter()
                    .all(|name| hosts.iter().any(|h| &h.name == name && h.state == state))
                    .then_some(())
            },
        );
    }

    /// Every container of this installation on every host's engine: (host, id, running,
    /// started at), sorted.
    pub fn all_containers(&self) -> Vec<(String, String, bool, String)> {
        let mut all = Vec::new();
        for host in &self.bed.hosts {
            let listed = host.docker(&[
                "ps",
                "-aq",
                "--no-trunc",
                "--filter",
                "label=coding-job.job",
            ]);
            let ids: Vec<&str> = listed.lines().filter(|id| !id.is_empty()).collect();
            if ids.is_empty() {
                continue;
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
            for line in String::from_utf8_lossy(&output.stdout).lines() {
                let fields: Vec<&str> = line.split(' ').collect();
                if let [id, running, started] = fields.as_slice() {
                    all.push((
                        host.name.clone(),
                        (*id).to_owned(),
                        *running == "true",
                        (*started).to_owned(),
                    ));
                }
            }
        }
        all.sort();
        all
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        for (_, mut child) in self.agents.drain() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for server in self.servers.iter_mut().flatten() {
            server.kill9();
        }
    }
}
