//! What the simulated engine holds: its containers, images, volumes and execs, the script it
//! follows, the log of calls made to it, and its event subscribers. Everything here is plain
//! data behind one mutex; nothing in it awaits, so the lock is never held across a wait.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::types::{ContainerState, ContainerUsage, LogChunk, RuntimeError, RuntimeEvent};
use crate::types::{Volume, VolumeMount};

/// Calls kept in the log, the oldest dropped first: an agent run with `--simulate` for days
/// must not grow without end.
const CALLS_KEPT: usize = 10_000;
/// Output lines kept per container, as json-file rotation keeps a bounded tail.
const LOG_LINES_KEPT: usize = 10_000;

/// Which containers a line of the script applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimMatch {
    Any,
    /// Containers created from this image (as the create request names it).
    Image(String),
    /// Containers whose `coding-job.task` label is this task's name.
    Task(String),
    /// Containers carrying this label with this value.
    Label(String, String),
}

impl SimMatch {
    pub(super) fn matches(&self, image: &str, labels: &BTreeMap<String, String>) -> bool {
        match self {
            SimMatch::Any => true,
            SimMatch::Image(wanted) => wanted == image,
            SimMatch::Task(task) => labels.get(crate::labels::TASK) == Some(task),
            SimMatch::Label(name, value) => labels.get(name) == Some(value),
        }
    }
}

/// The engine's operations, as the call log names them (one per method of the trait).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SimOp {
    List,
    ImagePresent,
    Pull,
    Create,
    Start,
    Stop,
    Remove,
    Inspect,
    Exec,
    ExecAttached,
    ResizeExec,
    ExecExitCode,
    Events,
    Logs,
    Usage,
    CreateVolume,
    ListVolumes,
    RemoveVolume,
    UploadArchive,
    Pause,
    Unpause,
    EngineVersion,
}

/// One call made to the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimCall {
    pub op: SimOp,
    /// What it was about: a container id, an image, a volume or exec id, a container's name
    /// for `create`; empty for listings.
    pub target: String,
    /// When it was made, on tokio's clock (paused in tests).
    pub at: Instant,
}

/// A container as a test reads it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimContainer {
    pub id: String,
    pub name: String,
    pub image: String,
    pub labels: BTreeMap<String, String>,
    pub state: ContainerState,
    /// How its last run ended; `None` before one has.
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    /// How many times it was started.
    pub starts: u32,
    pub mounts: Vec<VolumeMount>,
}

/// An archive unpacked into a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimUpload {
    pub container_id: String,
    pub path: String,
    pub bytes: u64,
}

/// One container of the engine.
pub(super) struct Entry {
    pub id: String,
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub labels: BTreeMap<String, String>,
    /// Docker's create body, for the inspect document.
    pub body: serde_json::Value,
    pub mounts: Vec<VolumeMount>,
    pub state: ContainerState,
    pub created: SystemTime,
    pub started_at: Option<SystemTime>,
    pub finished_at: Option<SystemTime>,
    /// Docker's `ExitCode`: 0 until a run ends.
    pub exit_code: i64,
    pub ended: bool,
    pub oom_killed: bool,
    /// Counts the runs: a scripted death belongs to the run it was scheduled for, so one
    /// that comes after a stop and a new start does not end the new run.
    pub run: u64,
    pub starts: u32,
    pub log: VecDeque<LogChunk>,
    /// Followers of the output: dropped when a run ends, which ends their streams.
    pub followers: Vec<mpsc::UnboundedSender<LogChunk>>,
}

impl Entry {
    pub fn is_running(&self) -> bool {
        self.state == ContainerState::Running
    }

    pub fn write(&mut self, chunk: LogChunk) {
        self.followers
            .retain(|follower| follower.send(chunk.clone()).is_ok());
        self.log.push_back(chunk);
        if self.log.len() > LOG_LINES_KEPT {
            self.log.pop_front();
        }
    }

    pub fn snapshot(&self) -> SimContainer {
        SimContainer {
            id: self.id.clone(),
            name: self.name.clone(),
            image: self.image.clone(),
            labels: self.labels.clone(),
            state: self.state,
            exit_code: self.ended.then_some(self.exit_code),
            oom_killed: self.oom_killed,
            starts: self.starts,
            mounts: self.mounts.clone(),
        }
    }
}

/// An attached exec: its output is scripted, and it has ended once that was read.
pub(super) struct ExecRun {
    pub container_id: String,
    pub exit_code: i64,
    pub ended: bool,
    pub size: Option<(u16, u16)>,
}

/// A scripted death: every run of a matching container ends with `exit_code` after `after`.
pub(super) struct Death {
    pub which: SimMatch,
    pub exit_code: i64,
    pub after: Duration,
}

struct Subscriber {
    labels: Vec<(String, String)>,
    sender: mpsc::UnboundedSender<Result<RuntimeEvent, RuntimeError>>,
}

/// Wall-clock times (labels, inspect) that follow tokio's clock from the moment the engine was
/// made, so under a paused clock they move only when it does.
struct Clock {
    wall: SystemTime,
    at: Instant,
}

pub(super) struct SimState {
    /// This engine's ids are a random prefix (4 hex digits), a serial (8) and a random suffix
    /// (52): they sort in creation order (which breaks Docker's ties of equal creation seconds
    /// the same way every run), the short ids (12 digits) of two simulated hosts seldom look
    /// alike, and their whole ids never do.
    id_prefix: String,
    id_suffix: String,
    serial: u32,
    clock: Clock,
    pub containers: BTreeMap<String, Entry>,
    pub images: BTreeSet<String>,
    pub all_images_present: bool,
    pub pull_failures: HashMap<String, String>,
    pub deaths: Vec<Death>,
    pub outputs: Vec<(SimMatch, String)>,
    pub usages: Vec<(SimMatch, ContainerUsage)>,
    pub exec_scripts: HashMap<Vec<String>, (i64, String)>,
    pub execs: HashMap<String, ExecRun>,
    pub latency: Duration,
    pub latency_of: HashMap<SimOp, Duration>,
    pub failures: HashMap<SimOp, VecDeque<RuntimeError>>,
    /// How long a container takes to exit after SIGTERM.
    pub stop_time: Duration,
    pub volumes: BTreeMap<String, BTreeMap<String, String>>,
    pub uploads: Vec<SimUpload>,
    pub calls: VecDeque<SimCall>,
    /// How many of the latest calls `calls` keeps.
    pub calls_kept: usize,
    subscribers: Vec<Subscriber>,
}

impl SimState {
    pub fn new() -> Self {
        let random = || {
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
        };
        let id_suffix = format!(
            "{:016x}{:016x}{:016x}{:04x}",
            random(),
            random(),
            random(),
            random() & 0xffff
        );
        SimState {
            id_prefix: format!("{:04x}", random() & 0xffff),
            id_suffix,
            serial: 0,
            clock: Clock {
                wall: SystemTime::now(),
                at: Instant::now(),
            },
            containers: BTreeMap::new(),
            images: BTreeSet::new(),
            all_images_present: false,
            pull_failures: HashMap::new(),
            deaths: Vec::new(),
            outputs: Vec::new(),
            usages: Vec::new(),
            exec_scripts: HashMap::new(),
            execs: HashMap::new(),
            latency: Duration::ZERO,
            latency_of: HashMap::new(),
            failures: HashMap::new(),
            stop_time: Duration::ZERO,
            volumes: BTreeMap::new(),
            uploads: Vec::new(),
            calls: VecDeque::new(),
            calls_kept: CALLS_KEPT,
            subscribers: Vec::new(),
        }
    }

    pub fn now(&self) -> SystemTime {
        self.clock.wall + Instant::now().saturating_duration_since(self.clock.at)
    }

    /// A new container or exec id: 64 hex digits, as Docker's.
    pub fn new_id(&mut self) -> String {
        // Four billion ids per engine: far more than any test or simulated host makes.
        self.serial = self.serial.wrapping_add(1);
        format!("{}{:08x}{}", self.id_prefix, self.serial, self.id_suffix)
    }

    /// Logs a call; returns how long it takes.
    pub fn record(&mut self, op: SimOp, target: &str) -> Duration {
        if self.calls_kept > 0 {
            self.calls.push_back(SimCall {
                op,
                target: target.to_owned(),
                at: Instant::now(),
            });
        }
        while self.calls.len() > self.calls_kept {
            self.calls.pop_front();
        }
        self.latency_of.get(&op).copied().unwrap_or(self.latency)
    }

    pub fn take_failure(&mut self, op: SimOp) -> Option<RuntimeError> {
        self.failures.get_mut(&op)?.pop_front()
    }

    pub fn subscribe(
        &mut self,
        labels: &[(&str, &str)],
    ) -> mpsc::UnboundedReceiver<Result<RuntimeEvent, RuntimeError>> {
        let (sender, receiver) = mpsc::unbounded_channel();
        self.subscribers.push(Subscriber {
            labels: labels
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
            sender,
        });
        receiver
    }

    /// Ends every event stream with an error, as a broken connection to Docker does.
    pub fn break_events(&mut self) {
        for subscriber in self.subscribers.drain(..) {
            let error = RuntimeError::Docker("the simulated event stream broke".into());
            let _ = subscriber.sender.send(Err(error));
        }
    }

    /// Sends the event `action` about container `id` to every subscriber whose labels it
    /// carries. Its attributes are the container's labels plus `name` and `image` and the
    /// `extra` ones (`exitCode` on `die`, `signal` on `kill`), as Docker's are.
    pub fn emit(&mut self, id: &str, action: &str, extra: &[(&str, String)]) {
        let Some(entry) = self.containers.get(id) else {
            return;
        };
        let nanos = self
            .now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let mut attributes = entry.labels.clone();
        attributes.insert("name".into(), entry.name.clone());
        attributes.insert("image".into(), entry.image.clone());
        for (name, value) in extra {
            attributes.insert((*name).to_owned(), value.clone());
        }
        let event = RuntimeEvent {
            action: action.to_owned(),
            container_id: id.to_owned(),
            exit_code: attributes
                .get("exitCode")
                .and_then(|code| code.parse().ok()),
            labels: attributes,
            time_nanos: i64::try_from(nanos).unwrap_or(i64::MAX),
        };
        let labels = &entry.labels;
        self.subscribers.retain(|subscriber| {
            let wanted = subscriber
                .labels
                .iter()
                .all(|(name, value)| labels.get(name) == Some(value));
            !wanted || subscriber.sender.send(Ok(event.clone())).is_ok()
        });
    }

    /// Ends the running container's run (if it is still `run`, when given): `oom` then `die`.
    /// Returns whether it was running.
    pub fn end_run(&mut self, id: &str, run: Option<u64>, exit_code: i64, oom: bool) -> bool {
        let now = self.now();
        let Some(entry) = self.containers.get_mut(id) else {
            return false;
        };
        if !entry.is_running() || run.is_some_and(|run| run != entry.run) {
            return false;
        }
        entry.state = ContainerState::Exited;
        entry.exit_code = exit_code;
        entry.ended = true;
        entry.oom_killed = oom;
        entry.finished_at = Some(now);
        entry.followers.clear();
        if oom {
            self.emit(id, "oom", &[]);
        }
        self.emit(id, "die", &[("exitCode", exit_code.to_string())]);
        true
    }

    /// The scripted death of a run of this container, if any: the latest matching line wins.
    pub fn death_of(&self, entry: &Entry) -> Option<(i64, Duration)> {
        self.deaths
            .iter()
            .rev()
            .find(|death| death.which.matches(&entry.image, &entry.labels))
            .map(|death| (death.exit_code, death.after))
    }

    pub fn usage_of(&self, entry: &Entry) -> ContainerUsage {
        let scripted = self
            .usages
            .iter()
            .rev()
            .find(|(which, _)| which.matches(&entry.image, &entry.labels));
        match scripted {
            Some((_, usage)) => *usage,
            None => ContainerUsage {
                cpu_nanos: 0,
                system_cpu_nanos: 0,
                online_cpus: 1,
                memory_bytes: 32 << 20,
                // The container's limit, or a host of 8 GiB.
                memory_limit_bytes: entry.body["HostConfig"]["Memory"]
                    .as_u64()
                    .unwrap_or(8 << 30),
            },
        }
    }

    pub fn volumes_matching(&self, labels: &[(&str, &str)]) -> Vec<Volume> {
        self.volumes
            .iter()
            .filter(|(_, volume_labels)| carries(volume_labels, labels))
            .map(|(name, labels)| Volume {
                name: name.clone(),
                labels: labels.clone(),
            })
            .collect()
    }
}

/// Whether `labels` has every `name=value` of `wanted`, as Docker's label filter.
pub(super) fn carries(labels: &BTreeMap<String, String>, wanted: &[(&str, &str)]) -> bool {
    wanted
        .iter()
        .all(|(name, value)| labels.get(*name).map(String::as_str) == Some(*value))
}

pub(super) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
