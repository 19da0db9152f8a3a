//! Writing what agents report about containers into the jobs' history, in batches.
//!
//! Every container event (created, started, died, ...) and every health verdict becomes an
//! event in its job's history, and the container's record (when it started, how it ended, its
//! restarts) is updated. Written one by one, each is a commit of its own: a hundred thousand
//! tasks starting make four hundred thousand commits, minutes of fsyncs (or of etcd's
//! consensus rounds). Here one thread takes whatever has queued, up to a transaction's worth,
//! and writes it as one: a container's record once however many of its events came. Taking a
//! report in never waits for the disk; it reaches the store within a commit or two.

use std::collections::HashMap;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};

use cj_api::agent::{ContainerEvent, ContainerEventKind, Health, TaskKey};
use cj_api::{ContainerRecord, HistoryEvent};
use cj_store::{MAX_TXN_OPS, Op, Store, StoreError, StoreJson};

use crate::base::lock;
use crate::keys;

/// Told of every restart a batch finds (a container started a second time): for the restart
/// counter and the crash-loop alert.
pub type OnRestart = Box<dyn Fn(&TaskKey) + Send>;

/// What is written: a container's event, or a health verdict on it; or a request to be told
/// once everything queued before it is in the store.
pub enum Entry {
    Container(ContainerEvent),
    Flushed(std::sync::mpsc::Sender<()>),
    Health {
        host: String,
        key: TaskKey,
        container_id: String,
        health: Health,
    },
}

/// The queue to the writing thread. The thread ends once the queue is dropped (with the server
/// state that holds it).
pub struct HistoryWriter {
    queue: Mutex<Sender<Entry>>,
}

/// The longest a reader waits for the queue to be written before reading anyway.
const FLUSH_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Entries per transaction: each is a history event and at most one record.
const ENTRIES_PER_BATCH: usize = MAX_TXN_OPS / 2;

impl HistoryWriter {
    pub fn start(store: Arc<dyn Store>, on_restart: OnRestart) -> HistoryWriter {
        let (queue, entries) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("history-writer".into())
            .spawn(move || write_until_closed(&*store, &on_restart, entries));
        if let Err(error) = spawned {
            // Without the thread, entries queue up unwritten: say so loudly once.
            tracing::error!(%error, "cannot start the history writer; container history is not kept");
        }
        HistoryWriter {
            queue: Mutex::new(queue),
        }
    }

    pub fn write(&self, entry: Entry) {
        let _ = lock(&self.queue).send(entry);
    }

    /// Waits (at most [`FLUSH_WAIT`]) until every event queued so far is in the store, so a
    /// reader of the history sees what the agents reported before it asked.
    pub fn flush(&self) {
        let (done, flushed) = std::sync::mpsc::channel();
        self.write(Entry::Flushed(done));
        let _ = flushed.recv_timeout(FLUSH_WAIT);
    }
}

fn write_until_closed(store: &dyn Store, on_restart: &OnRestart, entries: Receiver<Entry>) {
    while let Ok(first) = entries.recv() {
        let mut batch = vec![first];
        while batch.len() < ENTRIES_PER_BATCH {
            match entries.try_recv() {
                Ok(entry) => batch.push(entry),
                Err(_) => break,
            }
        }
        if let Err(error) = write_batch(store, on_restart, batch) {
            tracing::error!(%error, "cannot record container events in the history");
        }
    }
}

/// The batch's events in order, then each container's record as the events left it.
fn write_batch(
    store: &dyn Store,
    on_restart: &OnRestart,
    batch: Vec<Entry>,
) -> Result<(), StoreError> {
    let mut records: HashMap<String, Option<ContainerRecord>> = HashMap::new();
    let mut ops = Vec::with_capacity(batch.len() * 2);
    let mut waiting = Vec::new();
    for entry in batch {
        match entry {
            Entry::Flushed(done) => waiting.push(done),
            Entry::Container(event) => {
                let key = &event.key;
                let record_key =
                    keys::container(&key.env, &key.service, &key.job, &event.container_id);
                let record = match records.get_mut(&record_key) {
                    Some(record) => record,
                    None => {
                        let stored = store.get_json::<ContainerRecord>(&record_key)?;
                        records.entry(record_key).or_insert(stored)
                    }
                };
                let record = record.get_or_insert_with(|| new_record(&event));
                apply(on_restart, record, &event);
                ops.push(Op::put(keys::new_event(key), json(&history_event(&event))?));
            }
            Entry::Health {
                host,
                key,
                container_id,
                health,
            } => {
                let kind = match health {
                    Health::Healthy => "healthy",
                    Health::Unhealthy => "unhealthy",
                    Health::Starting => continue,
                };
                let record_key = keys::container(&key.env, &key.service, &key.job, &container_id);
                let version = match records.get(&record_key) {
                    Some(record) => record.as_ref().map(|r| r.version),
                    None => store
                        .get_json::<ContainerRecord>(&record_key)?
                        .map(|r| r.version),
                };
                let event = HistoryEvent {
                    at: crate::base::now_rfc3339(),
                    kind: kind.into(),
                    task: key.task.clone(),
                    container_id,
                    version: version.unwrap_or(0),
                    host,
                    exit_code: None,
                    detail: None,
                };
                ops.push(Op::put(keys::new_event(&key), json(&event)?));
            }
        }
    }
    for (record_key, record) in records {
        if let Some(record) = record {
            ops.push(Op::put(record_key, json(&record)?));
        }
    }
    let written = store.write_batched(&ops);
    // Told even when the write failed: the reader reads what there is.
    for done in waiting {
        let _ = done.send(());
    }
    written?;
    Ok(())
}

fn new_record(event: &ContainerEvent) -> ContainerRecord {
    ContainerRecord {
        id: event.container_id.clone(),
        name: event.container_name.clone(),
        task: event.key.task.clone(),
        image: event.image.clone(),
        version: event.version,
        host: event.host.clone(),
        created: event.at.clone(),
        started: None,
        finished: None,
        exit_code: None,
        restarts: 0,
        removed: None,
    }
}

/// What the event changes in the container's record; a second start is a restart.
fn apply(on_restart: &OnRestart, record: &mut ContainerRecord, event: &ContainerEvent) {
    match event.kind {
        ContainerEventKind::Created => {}
        ContainerEventKind::Started => {
            if record.started.is_some() {
                record.restarts += 1;
                on_restart(&event.key);
            }
            record.started = Some(event.at.clone());
            record.finished = None;
            record.exit_code = None;
        }
        ContainerEventKind::Died | ContainerEventKind::Stopped => {
            record.finished = Some(event.at.clone());
            record.exit_code = event.exit_code;
        }
        ContainerEventKind::Removed => record.removed = Some(event.at.clone()),
    }
}

fn history_event(event: &ContainerEvent) -> HistoryEvent {
    let kind = serde_json::to_value(event.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    HistoryEvent {
        at: event.at.clone(),
        kind,
        task: event.key.task.clone(),
        container_id: event.container_id.clone(),
        version: event.version,
        host: event.host.clone(),
        exit_code: event.exit_code,
        // What the agent adds, such as where a created container's artifact came from.
        detail: event.detail.clone(),
    }
}

fn json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(StoreError::encode)
}
