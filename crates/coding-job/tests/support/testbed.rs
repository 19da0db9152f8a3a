//! Several real hosts on this machine, for tests of many hosts: a thin wrapper around
//! `scripts/testbed.sh` (the one implementation, which humans and the demo use too). Each
//! [`TestHost`] is a network namespace with its own address on a private bridge and its own
//! dockerd; a test runs a `coding-job agent` inside it with [`TestHost::command_in_netns`], cuts
//! it off with [`TestHost::cut`], and reaches a server of its own, listening in the root
//! namespace, at [`Testbed::gateway`]. Dropping the [`Testbed`] removes everything, also when
//! the test panicked; a test process that died without dropping it leaves a bed that the next
//! `up` (of any test) sweeps, because the bed records this process as its owner.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{IMAGE, describe, ensure_image, repo_root};

/// How long one run of the script may take: `up` waits 30 s at most for the engines and `down`
/// 20 s for each to stop, so this is only reached when something hangs.
const SCRIPT_TIMEOUT_SECS: &str = "120";

pub struct Testbed {
    /// Unique on the machine: this process's id and a counter.
    pub name: String,
    /// The bed's own /24, e.g. `10.231.7.0/24`.
    pub subnet: String,
    /// The bridge in the root namespace that joins the hosts.
    pub bridge: String,
    pub hosts: Vec<TestHost>,
    gateway: String,
}

pub struct TestHost {
    /// `host-1`, `host-2`, ...
    pub name: String,
    /// The host's own address on the bridge.
    pub address: String,
    /// Its engine, as `DOCKER_HOST` takes it: `unix:///run/cj-testbed/BED/host-N/docker.sock`.
    pub docker_host: String,
    /// Its network namespace (`/run/netns/...`), for `nsenter --net`.
    pub netns: PathBuf,
    /// Its link in the root namespace; down is a partition.
    pub veth: String,
    bed: String,
}

impl Testbed {
    /// Creates a bed of `hosts` hosts, their engines up and the test image loaded in each.
    pub fn start(hosts: usize) -> Testbed {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        ensure_image();
        let name = format!(
            "t{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed) + 1
        );
        let output = script(&[
            "up",
            "--name",
            &name,
            "--hosts",
            &hosts.to_string(),
            "--image",
            IMAGE,
            "--owner",
            &std::process::id().to_string(),
        ]);
        assert!(
            output.status.success(),
            "testbed.sh up failed: {}",
            describe(&output)
        );
        let stdout = String::from_utf8(output.stdout).unwrap();
        let mut bed = Testbed {
            name: name.clone(),
            subnet: String::new(),
            bridge: String::new(),
            hosts: Vec::new(),
            gateway: String::new(),
        };
        for line in stdout.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            match fields.as_slice() {
                ["gateway", gateway, subnet, bridge] => {
                    bed.gateway = gateway.to_string();
                    bed.subnet = subnet.to_string();
                    bed.bridge = bridge.to_string();
                }
                ["host", host, address, docker_host, netns, veth] => bed.hosts.push(TestHost {
                    name: host.to_string(),
                    address: address.to_string(),
                    docker_host: docker_host.to_string(),
                    netns: PathBuf::from(netns),
                    veth: veth.to_string(),
                    bed: name.clone(),
                }),
                _ => panic!("testbed.sh up printed an unexpected line: {line:?}"),
            }
        }
        assert!(
            !bed.gateway.is_empty() && bed.hosts.len() == hosts,
            "testbed.sh up printed too little:\n{stdout}"
        );
        bed
    }

    /// The root namespace's address on the bridge: a server listening there (or on 0.0.0.0)
    /// in the root namespace is reachable from every host.
    pub fn gateway(&self) -> &str {
        &self.gateway
    }

    /// The host named `name` (`host-1`, ...).
    pub fn host(&self, name: &str) -> &TestHost {
        self.hosts
            .iter()
            .find(|host| host.name == name)
            .unwrap_or_else(|| panic!("test bed {} has no {name}", self.name))
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        let output = script(&["down", "--name", &self.name]);
        if !output.status.success() {
            let message = format!("testbed.sh down failed: {}", describe(&output));
            // A second panic while unwinding would abort and hide the first.
            if std::thread::panicking() {
                eprintln!("{message}");
            } else {
                panic!("{message}");
            }
        }
    }
}

impl TestHost {
    /// Runs `docker` against this host's engine and insists it succeeded; returns stdout.
    pub fn docker(&self, args: &[&str]) -> String {
        let output = Command::new("docker")
            .arg("-H")
            .arg(&self.docker_host)
            .args(args)
            .output()
            .expect("failed to run docker");
        assert!(
            output.status.success(),
            "docker -H {} {args:?} failed: {}",
            self.docker_host,
            describe(&output)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// A command that runs `program` inside this host's network namespace (the machine's file
    /// system, the host's network), with `DOCKER_HOST` set to the host's engine. nsenter
    /// replaces itself with `program`, so the child's pid is the program's. Whatever is still
    /// running in the namespace when the bed is dropped is killed.
    pub fn command_in_netns(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net={}", self.netns.display()))
            .arg("--")
            .arg(program)
            .env("DOCKER_HOST", &self.docker_host);
        command
    }

    /// Cuts the host off (its link down): nothing reaches it and it reaches nothing, until
    /// [`TestHost::heal`].
    pub fn cut(&self) {
        self.cut_or_heal("cut");
    }

    pub fn heal(&self) {
        self.cut_or_heal("heal");
    }

    fn cut_or_heal(&self, command: &str) {
        let output = script(&[command, "--name", &self.bed, "--host", &self.name]);
        assert!(
            output.status.success(),
            "testbed.sh {command} {} failed: {}",
            self.name,
            describe(&output)
        );
    }
}

/// Runs `scripts/testbed.sh` with a deadline (on which `up` removes what it was making).
pub fn script(args: &[&str]) -> Output {
    Command::new("timeout")
        .args(["--kill-after=60", SCRIPT_TIMEOUT_SECS, "bash"])
        .arg(repo_root().join("scripts/testbed.sh"))
        .args(args)
        .output()
        .expect("failed to run scripts/testbed.sh")
}

/// What is left on the machine of bed `name` with bridge `bridge`: its namespaces, links,
/// iptables rules, mounts, processes and directories, one description each. Empty once the bed
/// is gone.
pub fn leftovers(name: &str, bridge: &str) -> Vec<String> {
    let run = |program: &str, args: &[&str]| -> String {
        let output = Command::new(program).args(args).output().unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let mut left = Vec::new();
    let netns_prefix = format!("cjtb-{name}-");
    for line in run("ip", &["netns", "list"]).lines() {
        if line.starts_with(&netns_prefix) {
            left.push(format!("namespace {line}"));
        }
    }
    // `ip -o link` lines read "12: cjtb-7-h1@if11: <...".
    let link_prefix = format!("{bridge}-");
    for line in run("ip", &["-o", "link", "show"]).lines() {
        let link = line.split(": ").nth(1).unwrap_or("");
        let link = link.split('@').next().unwrap_or("");
        if link == bridge || link.starts_with(&link_prefix) {
            left.push(format!("link {link}"));
        }
    }
    // iptables quotes the comment: --comment "cj-testbed:NAME".
    let comment = format!("cj-testbed:{name} ");
    for line in run("iptables", &["-S", "FORWARD"]).lines() {
        if line.replace('"', "").contains(&comment) {
            left.push(format!("iptables rule {line}"));
        }
    }
    let path_part = format!("/cj-testbed/{name}/");
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    for line in mounts.lines() {
        if line.contains(&path_part) {
            left.push(format!("mount {line}"));
        }
    }
    for line in run("pgrep", &["-a", "-f", &path_part]).lines() {
        left.push(format!("process {line}"));
    }
    for dir in [
        format!("/run/cj-testbed/{name}"),
        format!("/var/lib/cj-testbed/{name}"),
    ] {
        if std::path::Path::new(&dir).exists() {
            left.push(format!("directory {dir}"));
        }
    }
    left
}
