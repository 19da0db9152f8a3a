//! The test bed of several hosts on this machine (`scripts/testbed.sh`, `support::testbed`):
//! each host has its own engine and address and reaches the others and the root namespace, a cut
//! host is unreachable until healed, and nothing is left behind when the bed is dropped or when
//! the process that made it died.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command};
use std::time::Duration;

use support::testbed::{TestHost, Testbed, leftovers, script};
use support::{IMAGE, describe, wait_for};

/// Every host has its own network, so all can use the same port.
const PORT: u16 = 8080;

/// Runs busybox httpd in `host`'s engine, on the host's network, serving the image's /srv/www
/// (whose index.html says "ok"). Returns the container id.
fn serve_http(host: &TestHost) -> String {
    let port = PORT.to_string();
    let id = host.docker(&[
        "run",
        "-d",
        "--network",
        "host",
        IMAGE,
        "httpd",
        "-f",
        "-p",
        &port,
        "-h",
        "/srv/www",
    ]);
    id.trim().to_owned()
}

/// GET / at `address` from the root namespace (this process); `None` if it does not answer
/// within about 3 s.
fn get_from_root(address: &str) -> Option<String> {
    let socket: SocketAddr = format!("{address}:{PORT}").parse().unwrap();
    let mut stream = TcpStream::connect_timeout(&socket, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET / HTTP/1.0\r\nHost: {address}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.contains(" 200 ").then(|| body.to_owned())
}

/// GET `url` from inside `from`'s namespace, with the machine's busybox wget; `None` if it
/// fails or takes over 2 s. (`timeout` bounds it: busybox-static's own `wget -T` crashes.)
fn get_from_host(from: &TestHost, url: &str) -> Option<String> {
    let output = from
        .command_in_netns("timeout")
        .args(["2", "busybox", "wget", "-q", "-O-", url])
        .output()
        .unwrap();
    output
        .status
        .success()
        .then(|| String::from_utf8(output.stdout).unwrap())
}

fn url(host: &TestHost) -> String {
    format!("http://{}:{PORT}/", host.address)
}

#[test]
fn hosts_have_their_own_engines_and_reach_each_other_and_the_gateway() {
    let bed = Testbed::start(2);
    let (one, two) = (bed.host("host-1"), bed.host("host-2"));
    assert_ne!(one.address, two.address);

    let id = serve_http(one);
    let body = wait_for(
        "httpd on host-1, from the root namespace",
        Duration::from_secs(10),
        || get_from_root(&one.address),
    );
    assert_eq!(body, "ok\n");
    assert_eq!(get_from_host(two, &url(one)).as_deref(), Some("ok\n"));

    // The container is host-1's alone: neither the main engine nor host-2's lists it.
    assert!(one.docker(&["ps", "-q", "--no-trunc"]).contains(&id));
    assert!(!two.docker(&["ps", "-aq", "--no-trunc"]).contains(&id));
    assert!(!support::docker(&["ps", "-aq", "--no-trunc"]).contains(&id));

    // A server listening on the gateway, in the root namespace, is reachable from the hosts.
    let listener = TcpListener::bind((bed.gateway(), 0)).unwrap();
    let gateway_url = format!("http://{}/", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = [0u8; 1024];
        let _ = stream.read(&mut request).unwrap();
        stream
            .write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nroot\n")
            .unwrap();
    });
    assert_eq!(get_from_host(two, &gateway_url).as_deref(), Some("root\n"));
    server.join().unwrap();
}

#[test]
fn a_cut_host_is_unreachable_until_healed() {
    let bed = Testbed::start(2);
    let (one, two) = (bed.host("host-1"), bed.host("host-2"));
    serve_http(one);
    wait_for(
        "httpd on host-1, from host-2",
        Duration::from_secs(10),
        || get_from_host(two, &url(one)),
    );

    one.cut();
    assert_eq!(get_from_host(two, &url(one)), None, "host-2 reached host-1");
    assert_eq!(get_from_root(&one.address), None, "the root reached host-1");
    // A partition, not a crash: the host's engine and its container still run.
    assert!(one.docker(&["ps", "-q"]).lines().count() == 1);

    one.heal();
    let body = wait_for("host-1 reachable again", Duration::from_secs(10), || {
        get_from_host(two, &url(one))
    });
    assert_eq!(body, "ok\n");
}

/// Kills the child when dropped, so a failed test leaves no process.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn dropping_the_testbed_leaves_nothing_behind() {
    let bed = Testbed::start(2);
    // A container (mounted layers, a shim) and a process of the test's own in a namespace, as
    // an agent would be.
    serve_http(bed.host("host-1"));
    let mut agent = KillOnDrop(
        bed.host("host-2")
            .command_in_netns("sleep")
            .arg("600")
            .spawn()
            .unwrap(),
    );
    let (name, bridge) = (bed.name.clone(), bed.bridge.clone());
    let before = leftovers(&name, &bridge);
    for kind in [
        "namespace",
        "link",
        "iptables rule",
        "mount",
        "process",
        "directory",
    ] {
        assert!(
            before.iter().any(|thing| thing.starts_with(kind)),
            "the check would not see a {kind}: {before:#?}"
        );
    }

    drop(bed);
    let left = leftovers(&name, &bridge);
    assert!(left.is_empty(), "left behind: {left:#?}");
    wait_for(
        "the process in host-2's namespace to be killed",
        Duration::from_secs(5),
        || agent.0.try_wait().unwrap(),
    );
}

/// Makes a bed of one host owned by a process of its own (as if it were a test process);
/// returns the owner, the bed's name and its bridge.
fn bed_with_owner(suffix: &str) -> (KillOnDrop, String, String) {
    let owner = KillOnDrop(Command::new("sleep").arg("600").spawn().unwrap());
    let name = format!("t{}-{suffix}", std::process::id());
    let owner_pid = owner.0.id().to_string();
    let output = script(&["up", "--name", &name, "--hosts", "1", "--owner", &owner_pid]);
    assert!(output.status.success(), "up failed: {}", describe(&output));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let bridge = stdout
        .lines()
        .find_map(|line| line.strip_prefix("gateway "))
        .and_then(|fields| fields.split(' ').nth(2))
        .expect("a gateway line")
        .to_owned();
    let listed = String::from_utf8(script(&["list"]).stdout).unwrap();
    let line = listed
        .lines()
        .find(|line| line.starts_with(&format!("{name} ")));
    assert!(
        line.is_some_and(|line| line.ends_with(" alive")),
        "list: {listed}"
    );
    (owner, name, bridge)
}

#[test]
fn a_bed_is_removed_soon_after_its_owner_died() {
    let (owner, name, bridge) = bed_with_owner("watched");
    drop(owner);
    wait_for(
        "the watcher to remove the bed",
        Duration::from_secs(30),
        || leftovers(&name, &bridge).is_empty().then_some(()),
    );
}

#[test]
fn sweep_removes_a_bed_whose_owner_and_watcher_died() {
    let (owner, name, bridge) = bed_with_owner("swept");
    // As when the whole run was killed: the watcher goes too.
    let watcher = format!("testbed.sh watch --name {name}$");
    let output = Command::new("pgrep")
        .args(["-f", &watcher])
        .output()
        .unwrap();
    assert!(output.status.success(), "no watcher: {}", describe(&output));
    for pid in String::from_utf8(output.stdout).unwrap().split_whitespace() {
        Command::new("kill").args(["-KILL", pid]).status().unwrap();
    }
    drop(owner);
    assert!(!leftovers(&name, &bridge).is_empty());

    let output = script(&["sweep"]);
    assert!(
        output.status.success(),
        "sweep failed: {}",
        describe(&output)
    );
    let left = leftovers(&name, &bridge);
    assert!(left.is_empty(), "left behind: {left:#?}");
}
