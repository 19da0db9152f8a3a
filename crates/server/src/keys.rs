//! The store's key layout, in one place. Every key starts with what it is about, so a prefix
//! read gets one environment, service or job.
//!
//! ```text
//! cluster/id                                  this installation's id (labels its containers)
//! cluster/version-infos-written               every version has its summary
//! services/ENV/SERVICE/latest                 the newest version number
//! services/ENV/SERVICE/versions/VVVVVVVVVV    one pushed version (file as written, parsed form)
//! services/ENV/SERVICE/infos/VVVVVVVVVV       its summary (who, when, file name), for listings
//! desired/ENV/SERVICE/JOB                     the job should run, at this version
//! containers/ENV/SERVICE/JOB/CONTAINER_ID     every container the job ever ran
//! events/ENV/SERVICE/JOB/NANOS                each change in those containers' lives
//! deployments/ENV/SERVICE/NNNNNN              a rollout, rollback, reload or update, step by step
//! counters/deployments/ENV/SERVICE            the last deployment number given out
//! tokens/NAME                                 an API token: name, role, sha256 of its secret
//! placements/ENV/SERVICE/JOB/TASK             the host the server put an unpinned task on
//! hosts/NAME                                  a host that has joined: address, labels
//! drains/NAME                                 the host is draining: who, since when
//! envs/NAME                                   an environment: origin, variables, host map, TTL
//! ports/PPPPP                                 an allocated `port: auto` port and its task
//! task-ports/ENV/SERVICE/JOB/TASK             the port allocated to that task
//! canary-phases/ENV/SERVICE/JOB               the job's weighted canary phase in progress
//! certificates/NAME                           a router's certificate for a host name, with its key
//! certificate-leases/NAME                     which router orders NAME's certificate, until when
//! acme-challenges/TOKEN                       an HTTP-01 challenge's answer (under a store lease)
//! volume-snapshots/ID                         a volume snapshot: task, volume, size, checksum
//! ```
//!
//! The audit log has its own store (`audit.redb`, see `audit`), with one prefix:
//!
//! ```text
//! audit/NANOS                                 one write request: who, what, status
//! ```

pub const CLUSTER_ID: &str = "cluster/id";

/// Set once every version has its summary under `infos/` (older stores are given them at start).
pub const VERSION_INFOS_WRITTEN: &str = "cluster/version-infos-written";

pub const SERVICES_ALL: &str = "services/";

/// Every volume snapshot's record (`volume-snapshots/ID`).
pub const VOLUME_SNAPSHOTS: &str = "volume-snapshots/";

pub fn services(env: &str) -> String {
    format!("services/{env}/")
}

pub fn latest(env: &str, service: &str) -> String {
    format!("services/{env}/{service}/latest")
}

/// Zero-padded so key order is version order.
pub fn version(env: &str, service: &str, version: u64) -> String {
    format!("services/{env}/{service}/versions/{version:010}")
}

pub fn version_infos(env: &str, service: &str) -> String {
    format!("services/{env}/{service}/infos/")
}

pub fn version_info(env: &str, service: &str, version: u64) -> String {
    format!("services/{env}/{service}/infos/{version:010}")
}

pub const DESIRED_ALL: &str = "desired/";

pub fn desired(env: &str, service: &str, job: &str) -> String {
    format!("desired/{env}/{service}/{job}")
}

pub fn desired_of_service(env: &str, service: &str) -> String {
    format!("desired/{env}/{service}/")
}

pub fn deployments(env: &str, service: &str) -> String {
    format!("deployments/{env}/{service}/")
}

pub const DEPLOYMENTS_ALL: &str = "deployments/";

pub fn deployments_of_env(env: &str) -> String {
    format!("deployments/{env}/")
}

/// Zero-padded so key order is creation order.
pub fn deployment(env: &str, service: &str, sequence: u64) -> String {
    format!("deployments/{env}/{service}/{sequence:06}")
}

/// Kept outside `deployments/` so a prefix read of deployments holds only deployments.
pub fn deployment_counter(env: &str, service: &str) -> String {
    format!("counters/deployments/{env}/{service}")
}

pub fn containers(env: &str, service: &str, job: &str) -> String {
    format!("containers/{env}/{service}/{job}/")
}

pub fn container(env: &str, service: &str, job: &str, id: &str) -> String {
    format!("containers/{env}/{service}/{job}/{id}")
}

pub fn events(env: &str, service: &str, job: &str) -> String {
    format!("events/{env}/{service}/{job}/")
}

pub fn event(env: &str, service: &str, job: &str, nanos: i128) -> String {
    format!("events/{env}/{service}/{job}/{nanos:020}")
}

/// The key of a new event in a job's history: the time in nanoseconds, which orders them, made
/// strictly increasing in this process, so that two events written in the same nanosecond (in
/// one batch) do not overwrite each other.
pub fn new_event(key: &cj_api::agent::TaskKey) -> String {
    static LAST: std::sync::Mutex<i128> = std::sync::Mutex::new(0);
    let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    let mut last = LAST.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    *last = now.max(*last + 1);
    event(&key.env, &key.service, &key.job, *last)
}

pub const PLACEMENTS: &str = "placements/";

pub fn placements_of_service(env: &str, service: &str) -> String {
    format!("placements/{env}/{service}/")
}

pub fn placement(key: &cj_api::agent::TaskKey) -> String {
    format!(
        "placements/{}/{}/{}/{}",
        key.env, key.service, key.job, key.task
    )
}

pub const HOSTS: &str = "hosts/";

pub fn host(name: &str) -> String {
    format!("hosts/{name}")
}

pub const DRAINS: &str = "drains/";

pub fn drain(name: &str) -> String {
    format!("drains/{name}")
}

/// `debts/HOST/ENV`: what a host that was down owes when its agent is back (the rest of a
/// destroyed environment to remove).
pub const DEBTS: &str = "debts/";

pub fn debts_of(host: &str) -> String {
    format!("{DEBTS}{host}/")
}

pub fn debt(host: &str, env: &str) -> String {
    format!("{DEBTS}{host}/{env}")
}

pub const TOKENS: &str = "tokens/";

pub fn token(name: &str) -> String {
    format!("tokens/{name}")
}

pub const AUDIT: &str = "audit/";

/// Zero-padded so key order is time order.
pub fn audit(nanos: i128) -> String {
    format!("audit/{nanos:020}")
}

pub const ENVS: &str = "envs/";

pub fn env(name: &str) -> String {
    format!("envs/{name}")
}

pub const PORTS: &str = "ports/";

/// Zero-padded so key order is port order.
pub fn port(port: u16) -> String {
    format!("ports/{port:05}")
}

pub fn task_ports_of_env(env: &str) -> String {
    format!("task-ports/{env}/")
}

pub fn task_port(key: &cj_api::agent::TaskKey) -> String {
    format!(
        "task-ports/{}/{}/{}/{}",
        key.env, key.service, key.job, key.task
    )
}

pub const CANARY_PHASES: &str = "canary-phases/";

pub fn canary_phase(env: &str, service: &str, job: &str) -> String {
    format!("canary-phases/{env}/{service}/{job}")
}

pub const CERTIFICATES: &str = "certificates/";

pub fn certificate(name: &str) -> String {
    format!("certificates/{name}")
}

/// Kept outside `certificates/` so a prefix read of certificates holds only certificates.
pub fn certificate_lease(name: &str) -> String {
    format!("certificate-leases/{name}")
}

pub fn challenge(token: &str) -> String {
    format!("acme-challenges/{token}")
}
