//! [`ContainerRuntime`] on the simulated engine: each call is logged, takes its scripted
//! latency, may fail as scripted, then acts on the state as Docker would, with Docker's errors
//! and events.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bollard::models::{ContainerCreateBody, ContainerInspectResponse};
use futures_util::stream::{self, BoxStream, StreamExt};
use serde_json::Value;

use super::SimRuntime;
use super::document::{image_id, inspect_document, unix_seconds, volume_mounts};
use super::state::{Entry, ExecRun, SimOp, SimState, SimUpload, carries, lock};
use crate::types::{
    ArchiveStream, AttachedExec, Container, ContainerState, ContainerStatus, ContainerUsage,
    ExecOptions, LogChunk, RuntimeError, RuntimeEvent, Volume,
};
use crate::{ContainerRuntime, CreateRequest, LogsOptions};

/// SIGTERM's exit code (128 + 15) and SIGKILL's (128 + 9), as Docker's init reports them.
const EXIT_ON_TERM: i64 = 143;
const EXIT_ON_KILL: i64 = 137;

fn no_such_container(id: &str) -> RuntimeError {
    RuntimeError::NoSuchContainer(format!("No such container: {id}"))
}

/// The chunks of `receiver` as a stream, until its sender is dropped.
fn receive<T: Send + 'static>(
    receiver: tokio::sync::mpsc::UnboundedReceiver<T>,
) -> BoxStream<'static, T> {
    stream::unfold(receiver, |mut receiver| async move {
        let item = receiver.recv().await?;
        Some((item, receiver))
    })
    .boxed()
}

impl SimRuntime {
    /// What every call does first: logs it, takes its latency, then fails if scripted to.
    /// `NoSuchContainer` unless the engine holds `id`.
    fn known(&self, id: &str) -> Result<(), RuntimeError> {
        if lock(&self.state).containers.contains_key(id) {
            Ok(())
        } else {
            Err(RuntimeError::NoSuchContainer(format!(
                "No such container: {id}"
            )))
        }
    }

    async fn enter(&self, op: SimOp, target: &str) -> Result<(), RuntimeError> {
        let latency = lock(&self.state).record(op, target);
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        match lock(&self.state).take_failure(op) {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Ends the run `run` of container `id` with `exit_code` after `after`, unless it ended
    /// before. The task holds the engine weakly: a dropped engine schedules nothing.
    fn schedule_death(&self, id: String, run: u64, exit_code: i64, after: Duration) {
        let state: Weak<_> = Arc::downgrade(&self.state);
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            if let Some(state) = state.upgrade() {
                lock(&state).end_run(&id, Some(run), exit_code, false);
            }
        });
    }
}

impl ContainerRuntime for SimRuntime {
    async fn list(&self, labels: &[(&str, &str)]) -> Result<Vec<Container>, RuntimeError> {
        self.enter(SimOp::List, "").await?;
        let state = lock(&self.state);
        // Newest first, as Docker lists them.
        Ok(state
            .containers
            .values()
            .rev()
            .filter(|entry| carries(&entry.labels, labels))
            .map(|entry| Container {
                id: entry.id.clone(),
                name: entry.name.clone(),
                image: entry.image.clone(),
                labels: entry.labels.clone(),
                state: entry.state,
                created: unix_seconds(entry.created),
            })
            .collect())
    }

    async fn image_present(&self, image: &str) -> Result<bool, RuntimeError> {
        self.enter(SimOp::ImagePresent, image).await?;
        let state = lock(&self.state);
        Ok(state.all_images_present || state.images.contains(image))
    }

    async fn pull(
        &self,
        image: &str,
        mut progress: impl FnMut(&str) + Send,
    ) -> Result<(), RuntimeError> {
        self.enter(SimOp::Pull, image).await?;
        if let Some(reason) = lock(&self.state).pull_failures.get(image).cloned() {
            return Err(RuntimeError::ImageNotFound {
                image: image.to_owned(),
                reason,
            });
        }
        progress(&format!("Pulling from {image}"));
        progress(&format!("Digest: {}", image_id(image)));
        progress(&format!("Status: Downloaded newer image for {image}"));
        lock(&self.state).images.insert(image.to_owned());
        Ok(())
    }

    async fn create(&self, request: &CreateRequest) -> Result<String, RuntimeError> {
        self.enter(SimOp::Create, &request.name).await?;
        let body = request.docker_body();
        // Refused as Docker refuses it: a body that is not Docker's create body.
        serde_json::from_value::<ContainerCreateBody>(body.clone())
            .map_err(|error| RuntimeError::InvalidConfig(error.to_string()))?;
        let mut state = lock(&self.state);
        if !state.all_images_present && !state.images.contains(&request.image) {
            return Err(RuntimeError::ImageNotFound {
                image: request.image.clone(),
                reason: format!("No such image: {}", request.image),
            });
        }
        if state.containers.values().any(|c| c.name == request.name) {
            return Err(RuntimeError::NameConflict(request.name.clone()));
        }
        let mounts = volume_mounts(&body);
        // Docker creates a named volume a container mounts if it is missing.
        for mount in &mounts {
            state.volumes.entry(mount.volume.clone()).or_default();
        }
        let labels: BTreeMap<String, String> = body["Labels"]
            .as_object()
            .map(|labels| {
                labels
                    .iter()
                    .map(|(name, value)| (name.clone(), value.as_str().unwrap_or("").to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let id = state.new_id();
        let entry = Entry {
            id: id.clone(),
            name: request.name.clone(),
            image: request.image.clone(),
            image_id: image_id(&request.image),
            labels,
            body,
            mounts,
            state: ContainerState::Created,
            created: state.now(),
            started_at: None,
            finished_at: None,
            exit_code: 0,
            ended: false,
            oom_killed: false,
            run: 0,
            starts: 0,
            log: Default::default(),
            followers: Vec::new(),
        };
        state.containers.insert(id.clone(), entry);
        state.emit(&id, "create", &[]);
        Ok(id)
    }

    async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        self.enter(SimOp::Start, id).await?;
        let mut state = lock(&self.state);
        let now = state.now();
        let Some(entry) = state.containers.get_mut(id) else {
            return Err(no_such_container(id));
        };
        if entry.is_running() {
            return Ok(());
        }
        entry.state = ContainerState::Running;
        entry.run += 1;
        entry.starts += 1;
        entry.started_at = Some(now);
        entry.exit_code = 0;
        entry.oom_killed = false;
        let run = entry.run;
        state.emit(id, "start", &[]);
        let entry = &state.containers[id];
        let output: Vec<String> = state
            .outputs
            .iter()
            .filter(|(which, _)| which.matches(&entry.image, &entry.labels))
            .flat_map(|(_, text)| text.lines().map(|line| format!("{line}\n")))
            .collect();
        let death = state.death_of(entry);
        let entry = state.containers.get_mut(id).expect("looked up above");
        for line in output {
            entry.write(LogChunk::Stdout(line.into()));
        }
        drop(state);
        if let Some((exit_code, after)) = death {
            self.schedule_death(id.to_owned(), run, exit_code, after);
        }
        Ok(())
    }

    async fn stop(&self, id: &str, grace_seconds: u32) -> Result<(), RuntimeError> {
        self.enter(SimOp::Stop, id).await?;
        let (run, stop_time) = {
            let mut state = lock(&self.state);
            let Some(entry) = state.containers.get(id).filter(|e| e.is_running()) else {
                // Stopping a stopped or missing container is fine, as with Docker.
                return Ok(());
            };
            let run = entry.run;
            state.emit(id, "kill", &[("signal", "15".to_owned())]);
            (run, state.stop_time)
        };
        let grace = Duration::from_secs(u64::from(grace_seconds));
        tokio::time::sleep(stop_time.min(grace)).await;
        let mut state = lock(&self.state);
        let exit_code = if stop_time > grace {
            if state
                .containers
                .get(id)
                .is_some_and(|e| e.run == run && e.is_running())
            {
                state.emit(id, "kill", &[("signal", "9".to_owned())]);
            }
            EXIT_ON_KILL
        } else {
            EXIT_ON_TERM
        };
        if state.end_run(id, Some(run), exit_code, false) {
            state.emit(id, "stop", &[]);
        }
        Ok(())
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        self.enter(SimOp::Remove, id).await?;
        let mut state = lock(&self.state);
        if !state.containers.contains_key(id) {
            return Ok(());
        }
        // Forced: a running container is killed first.
        if state.containers[id].is_running() {
            state.emit(id, "kill", &[("signal", "9".to_owned())]);
            state.end_run(id, None, EXIT_ON_KILL, false);
        }
        state.emit(id, "destroy", &[]);
        state.containers.remove(id);
        state.execs.retain(|_, exec| exec.container_id != id);
        Ok(())
    }

    async fn inspect(&self, id: &str) -> Result<(ContainerStatus, Value), RuntimeError> {
        self.enter(SimOp::Inspect, id).await?;
        let document = {
            let state = lock(&self.state);
            let entry = state
                .containers
                .get(id)
                .ok_or_else(|| no_such_container(id))?;
            inspect_document(entry)
        };
        let inspect: ContainerInspectResponse = serde_json::from_value(document)
            .map_err(|error| RuntimeError::Docker(format!("simulated inspect: {error}")))?;
        crate::docker::inspected(inspect)
    }

    async fn exec(&self, id: &str, command: &[String]) -> Result<i64, RuntimeError> {
        self.enter(SimOp::Exec, id).await?;
        let state = lock(&self.state);
        running(&state, id)?;
        Ok(state.exec_scripts.get(command).map_or(0, |(code, _)| *code))
    }

    async fn exec_attached(
        &self,
        id: &str,
        options: &ExecOptions,
    ) -> Result<AttachedExec, RuntimeError> {
        self.enter(SimOp::ExecAttached, id).await?;
        let mut state = lock(&self.state);
        running(&state, id)?;
        let (exit_code, output) = state
            .exec_scripts
            .get(&options.command)
            .cloned()
            .unwrap_or_default();
        let exec_id = state.new_id();
        state.execs.insert(
            exec_id.clone(),
            ExecRun {
                container_id: id.to_owned(),
                exit_code,
                ended: false,
                size: options.size.filter(|_| options.tty),
            },
        );
        // The command has ended once its output was read to the end, as with Docker.
        let engine = Arc::downgrade(&self.state);
        let ended_id = exec_id.clone();
        let end = stream::once(async move {
            if let Some(state) = engine.upgrade()
                && let Some(exec) = lock(&state).execs.get_mut(&ended_id)
            {
                exec.ended = true;
            }
        })
        .filter_map(|()| async { None });
        let chunks: Vec<Result<LogChunk, RuntimeError>> = (!output.is_empty())
            .then(|| Ok(LogChunk::Stdout(output.into())))
            .into_iter()
            .collect();
        Ok(AttachedExec {
            id: exec_id,
            output: stream::iter(chunks).chain(end).boxed(),
            input: Box::pin(tokio::io::sink()),
        })
    }

    async fn resize_exec(&self, exec_id: &str, rows: u16, cols: u16) -> Result<(), RuntimeError> {
        self.enter(SimOp::ResizeExec, exec_id).await?;
        let mut state = lock(&self.state);
        let exec = state
            .execs
            .get_mut(exec_id)
            .ok_or_else(|| no_such_exec(exec_id))?;
        exec.size = Some((rows, cols));
        Ok(())
    }

    async fn exec_exit_code(&self, exec_id: &str) -> Result<Option<i64>, RuntimeError> {
        self.enter(SimOp::ExecExitCode, exec_id).await?;
        let state = lock(&self.state);
        let exec = state
            .execs
            .get(exec_id)
            .ok_or_else(|| no_such_exec(exec_id))?;
        Ok(exec.ended.then_some(exec.exit_code))
    }

    fn events(
        &self,
        labels: &[(&str, &str)],
    ) -> BoxStream<'static, Result<RuntimeEvent, RuntimeError>> {
        // A stream is opened at once: no latency, so no event between the call and the
        // subscription is missed.
        let mut state = lock(&self.state);
        state.record(SimOp::Events, "");
        if let Some(error) = state.take_failure(SimOp::Events) {
            return stream::iter([Err(error)]).boxed();
        }
        receive(state.subscribe(labels))
    }

    /// The simulator keeps no times with its output: `since` and `timestamps` are not applied
    /// (it shows nothing about Docker's logs beyond tail and follow).
    fn logs(
        &self,
        id: &str,
        options: LogsOptions,
    ) -> BoxStream<'static, Result<LogChunk, RuntimeError>> {
        let LogsOptions { tail, follow, .. } = options;
        let mut state = lock(&self.state);
        state.record(SimOp::Logs, id);
        if let Some(error) = state.take_failure(SimOp::Logs) {
            return stream::iter([Err(error)]).boxed();
        }
        let Some(entry) = state.containers.get_mut(id) else {
            return stream::iter([Err(no_such_container(id))]).boxed();
        };
        let skip = tail.map_or(0, |tail| entry.log.len().saturating_sub(tail as usize));
        let written: Vec<Result<LogChunk, RuntimeError>> =
            entry.log.iter().skip(skip).cloned().map(Ok).collect();
        // Followed until the run ends, as Docker's follow ends when the container stops.
        if follow && entry.is_running() {
            let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
            entry.followers.push(sender);
            return stream::iter(written)
                .chain(receive(receiver).map(Ok))
                .boxed();
        }
        stream::iter(written).boxed()
    }

    async fn usage(&self, id: &str) -> Result<ContainerUsage, RuntimeError> {
        self.enter(SimOp::Usage, id).await?;
        let state = lock(&self.state);
        let entry = state
            .containers
            .get(id)
            .ok_or_else(|| no_such_container(id))?;
        Ok(state.usage_of(entry))
    }

    async fn create_volume(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<bool, RuntimeError> {
        self.enter(SimOp::CreateVolume, name).await?;
        let mut state = lock(&self.state);
        if state.volumes.contains_key(name) {
            return Ok(false);
        }
        state.volumes.insert(name.to_owned(), labels.clone());
        Ok(true)
    }

    async fn list_volumes(&self, labels: &[(&str, &str)]) -> Result<Vec<Volume>, RuntimeError> {
        self.enter(SimOp::ListVolumes, "").await?;
        Ok(lock(&self.state).volumes_matching(labels))
    }

    async fn remove_volume(&self, name: &str) -> Result<(), RuntimeError> {
        self.enter(SimOp::RemoveVolume, name).await?;
        let mut state = lock(&self.state);
        let users: Vec<&str> = state
            .containers
            .values()
            .filter(|entry| entry.mounts.iter().any(|mount| mount.volume == name))
            .map(|entry| entry.id.as_str())
            .collect();
        if !users.is_empty() {
            // Docker's own words.
            return Err(RuntimeError::Docker(format!(
                "remove {name}: volume is in use - [{}]",
                users.join(", ")
            )));
        }
        state.volumes.remove(name);
        Ok(())
    }

    async fn upload_archive(
        &self,
        id: &str,
        path: &str,
        mut archive: ArchiveStream,
    ) -> Result<(), RuntimeError> {
        self.enter(SimOp::UploadArchive, id).await?;
        if !lock(&self.state).containers.contains_key(id) {
            // Docker answers 404, which `DockerRuntime` passes on in Docker's words.
            return Err(RuntimeError::Docker(format!("No such container: {id}")));
        }
        let mut bytes = 0_u64;
        while let Some(chunk) = archive.next().await {
            let chunk = chunk.map_err(|error| RuntimeError::Docker(error.to_string()))?;
            bytes += chunk.len() as u64;
        }
        lock(&self.state).uploads.push(SimUpload {
            container_id: id.to_owned(),
            path: path.to_owned(),
            bytes,
        });
        Ok(())
    }

    fn download_archive(&self, id: &str, _path: &str) -> ArchiveStream {
        let known = lock(&self.state).containers.contains_key(id);
        let id = id.to_owned();
        // A simulated volume holds nothing: an empty tar (its two zero blocks).
        futures_util::stream::once(async move {
            if known {
                Ok(bytes::Bytes::from(vec![0u8; 1024]))
            } else {
                Err(std::io::Error::other(format!("No such container: {id}")))
            }
        })
        .boxed()
    }

    async fn pause(&self, id: &str) -> Result<(), RuntimeError> {
        self.enter(SimOp::Pause, id).await?;
        self.known(id)
    }

    async fn unpause(&self, id: &str) -> Result<(), RuntimeError> {
        self.enter(SimOp::Unpause, id).await?;
        self.known(id)
    }

    async fn engine_version(&self) -> Result<String, RuntimeError> {
        self.enter(SimOp::EngineVersion, "").await?;
        Ok(format!("sim-{}", env!("CARGO_PKG_VERSION")))
    }
}

fn no_such_exec(exec_id: &str) -> RuntimeError {
    RuntimeError::NoSuchContainer(format!("No such exec instance: {exec_id}"))
}

/// An exec needs a running container, as Docker's 409 says.
fn running(state: &SimState, id: &str) -> Result<(), RuntimeError> {
    let entry = state
        .containers
        .get(id)
        .ok_or_else(|| no_such_container(id))?;
    if !entry.is_running() {
        return Err(RuntimeError::NotRunning(format!(
            "Container {id} is not running"
        )));
    }
    Ok(())
}
