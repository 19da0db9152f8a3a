//! Several real hosts for a test: a `coding-job server` on the test bed's bridge and one
//! `coding-job agent` in each host's network namespace, driving that host's own Docker engine.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use super::testbed::Testbed;
use super::{Server, wait_for};

/// A server, a test bed and an agent per host; agents are killed first when it is dropped,
/// then the server, then the bed (which removes every container of its engines).
pub struct Cluster {
    pub agents: HashMap<String, Child>,
    pub server: Server,
    pub bed: Testbed,
    pub agent_token_file: PathBuf,
}

impl Cluster {
    pub fn start(hosts: usize) -> Cluster {
        let bed = Testbed::start(hosts);
        let mut server = Server::start_on(bed.gateway(), None);
        server.token = Some(server.admin_token());
        let created = server.json(&["token", "create", "agents", "--role", "agent", "--json"]);
        let agent_token_file = server.data_dir.path().join("agent.token");
        std::fs::write(&agent_token_file, created["secret"].as_str().unwrap()).unwrap();
        let mut cluster = Cluster {
            agents: HashMap::new(),
            server,
            bed,
            agent_token_file,
        };
        let names: Vec<String> = cluster.bed.hosts.iter().map(|h| h.name.clone()).collect();
        for name in &names {
            cluster.start_agent(name);
        }
        cluster.wait_for_hosts(&names, "ready");
        cluster
    }

    pub fn start_agent(&mut self, name: &str) {
        let host = self.bed.host(name);
        let child = host
            .command_in_netns(env!("CARGO_BIN_EXE_coding-job"))
            .args(["agent", "--server", &self.server.url, "--name", name])
            .arg("--token-file")
            .arg(&self.agent_token_file)
            .args(["--docker-host", &host.docker_host])
            .args(["--label", &format!("slot={name}")])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("failed to start an agent");
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
        let ids = host.docker(&[
            "ps",
            "-aq",
            "--no-trunc",
            "--filter",
            &format!("label=coding-job.job={job}"),
        ]);
        ids.lines()
            .map(|id| {
                let state = host.docker(&[
                    "inspect",
                    "-f",
                    "{{.State.Running}} {{.State.StartedAt}}",
                    id,
                ]);
                let (running, started) = state.trim().split_once(' ').unwrap();
                (id.to_owned(), running == "true", started.to_owned())
            })
            .collect()
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

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, mut child) in self.agents.drain() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
