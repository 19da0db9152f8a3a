//! [`ContainerRuntime`] on a real Docker engine through `bollard`.

use std::collections::{BTreeMap, HashMap};

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::{ContainerCreateBody, ContainerInspectResponse};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, DownloadFromContainerOptionsBuilder,
    EventsOptionsBuilder, ListContainersOptionsBuilder, ListVolumesOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder,
    StatsOptionsBuilder, StopContainerOptionsBuilder, UploadToContainerOptionsBuilder,
};
use futures_util::stream::{BoxStream, StreamExt};

use crate::types::{
    ArchiveStream, AttachedExec, Container, ContainerState, ContainerStatus, ContainerUsage,
    ExecOptions, LogChunk, RuntimeError, RuntimeEvent, Volume,
};
use crate::{ContainerRuntime, CreateRequest, LogsOptions};

#[derive(Clone)]
pub struct DockerRuntime {
    docker: Docker,
}

impl DockerRuntime {
    /// Connects to the local engine (`DOCKER_HOST` or the default socket) and agrees on an API
    /// version both sides speak.
    pub async fn connect() -> Result<Self, RuntimeError> {
        Self::connect_to(None).await
    }

    /// Connects to the engine at `docker_host` (`unix:///path`, `tcp://host:port`, as Docker's
    /// own `-H`), or as [`DockerRuntime::connect`] does when it is `None`.
    pub async fn connect_to(docker_host: Option<&str>) -> Result<Self, RuntimeError> {
        let docker = match docker_host {
            Some(host) => Docker::connect_with_host(host),
            None => Docker::connect_with_local_defaults(),
        }
        .map_err(docker_error)?;
        let docker = docker.negotiate_version().await.map_err(docker_error)?;
        docker.ping().await.map_err(|error| {
            RuntimeError::Docker(format!("cannot reach the Docker engine: {error}"))
        })?;
        Ok(DockerRuntime { docker })
    }
}

/// An exec's error: 409 means the container is stopped, paused or restarting.
fn exec_error(error: BollardError) -> RuntimeError {
    match error {
        BollardError::DockerResponseServerError {
            status_code: 409,
            message,
        } => RuntimeError::NotRunning(message),
        other => docker_error(other),
    }
}

/// A piece of a container's (or an exec's) output, by the stream it came on.
fn log_chunk(
    item: Result<bollard::container::LogOutput, BollardError>,
) -> Result<LogChunk, RuntimeError> {
    use bollard::container::LogOutput;
    match item.map_err(docker_error)? {
        LogOutput::StdErr { message } => Ok(LogChunk::Stderr(message)),
        LogOutput::StdOut { message }
        | LogOutput::Console { message }
        | LogOutput::StdIn { message } => Ok(LogChunk::Stdout(message)),
    }
}

fn docker_error(error: BollardError) -> RuntimeError {
    match error {
        BollardError::DockerResponseServerError {
            status_code: 404,
            message,
        } => RuntimeError::NoSuchContainer(message),
        BollardError::DockerResponseServerError { message, .. } => RuntimeError::Docker(message),
        other => RuntimeError::Docker(other.to_string()),
    }
}

/// Our summary of an engine's inspect document, and the document as JSON. The simulator builds
/// the same document, so both engines are read by this one function.
pub(crate) fn inspected(
    inspect: ContainerInspectResponse,
) -> Result<(ContainerStatus, serde_json::Value), RuntimeError> {
    let raw =
        serde_json::to_value(&inspect).map_err(|error| RuntimeError::Docker(error.to_string()))?;
    let state = inspect.state.unwrap_or_default();
    // Docker writes the zero time, not nothing, for a start or finish that has not happened.
    let non_zero_time = |time: Option<String>| time.filter(|t| !t.starts_with("0001-"));
    let status = ContainerStatus {
        state: state
            .status
            .map(|status| state_from_docker(status.as_ref()))
            .unwrap_or(ContainerState::Unknown),
        started_at: non_zero_time(state.started_at),
        finished_at: non_zero_time(state.finished_at),
        exit_code: state.exit_code,
        oom_killed: state.oom_killed.unwrap_or(false),
        image_id: inspect.image.unwrap_or_default(),
        error: state.error.unwrap_or_default(),
    };
    Ok((status, raw))
}

/// The state a word of Docker's (`running`, `exited`, ...) names.
fn state_from_docker(state: &str) -> ContainerState {
    match state {
        "created" => ContainerState::Created,
        "running" => ContainerState::Running,
        "paused" => ContainerState::Paused,
        "restarting" => ContainerState::Restarting,
        "removing" => ContainerState::Removing,
        "exited" => ContainerState::Exited,
        "dead" => ContainerState::Dead,
        _ => ContainerState::Unknown,
    }
}

fn label_filters(labels: &[(&str, &str)]) -> HashMap<String, Vec<String>> {
    let values = labels
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    HashMap::from([("label".to_owned(), values)])
}

impl ContainerRuntime for DockerRuntime {
    async fn list(&self, labels: &[(&str, &str)]) -> Result<Vec<Container>, RuntimeError> {
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&label_filters(labels))
            .build();
        let summaries = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(docker_error)?;
        Ok(summaries
            .into_iter()
            .map(|summary| Container {
                id: summary.id.unwrap_or_default(),
                name: summary
                    .names
                    .and_then(|names| names.into_iter().next())
                    .map(|name| name.trim_start_matches('/').to_owned())
                    .unwrap_or_default(),
                image: summary.image.unwrap_or_default(),
                labels: summary.labels.unwrap_or_default().into_iter().collect(),
                state: summary
                    .state
                    .map(|state| state_from_docker(state.as_ref()))
                    .unwrap_or(ContainerState::Unknown),
                created: summary.created.unwrap_or_default(),
            })
            .collect())
    }

    async fn image_present(&self, image: &str) -> Result<bool, RuntimeError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(false),
            Err(error) => Err(docker_error(error)),
        }
    }

    async fn pull(
        &self,
        image: &str,
        mut progress: impl FnMut(&str) + Send,
    ) -> Result<(), RuntimeError> {
        let options = CreateImageOptionsBuilder::default()
            .from_image(image)
            .build();
        let mut stream = self.docker.create_image(Some(options), None, None);
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(status) = info.status {
                        progress(&status);
                    }
                }
                Err(error) => {
                    let reason = match error {
                        BollardError::DockerResponseServerError { message, .. } => message,
                        BollardError::DockerStreamError { error } => error,
                        other => other.to_string(),
                    };
                    return Err(RuntimeError::ImageNotFound {
                        image: image.to_owned(),
                        reason,
                    });
                }
            }
        }
        Ok(())
    }

    async fn create(&self, request: &CreateRequest) -> Result<String, RuntimeError> {
        let body: ContainerCreateBody = serde_json::from_value(request.docker_body())
            .map_err(|error| RuntimeError::InvalidConfig(error.to_string()))?;
        let options = CreateContainerOptionsBuilder::default()
            .name(&request.name)
            .build();
        match self.docker.create_container(Some(options), body).await {
            Ok(response) => Ok(response.id),
            Err(BollardError::DockerResponseServerError {
                status_code: 409, ..
            }) => Err(RuntimeError::NameConflict(request.name.clone())),
            Err(BollardError::DockerResponseServerError {
                status_code: 404,
                message,
            }) => Err(RuntimeError::ImageNotFound {
                image: request.image.clone(),
                reason: message,
            }),
            Err(BollardError::DockerResponseServerError {
                status_code: 400,
                message,
            }) => Err(RuntimeError::InvalidConfig(message)),
            Err(error) => Err(docker_error(error)),
        }
    }

    async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        match self.docker.start_container(id, None).await {
            Ok(()) => Ok(()),
            // 304: already started.
            Err(BollardError::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(error) => Err(docker_error(error)),
        }
    }

    async fn stop(&self, id: &str, grace_seconds: u32) -> Result<(), RuntimeError> {
        let options = StopContainerOptionsBuilder::default()
            .t(grace_seconds as i32)
            .build();
        match self.docker.stop_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(BollardError::DockerResponseServerError {
                status_code: 304 | 404,
                ..
            }) => Ok(()),
            Err(error) => Err(docker_error(error)),
        }
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            // 409: removal already in progress.
            Err(BollardError::DockerResponseServerError {
                status_code: 409, ..
            }) => Ok(()),
            Err(error) => Err(docker_error(error)),
        }
    }

    async fn inspect(
        &self,
        id: &str,
    ) -> Result<(ContainerStatus, serde_json::Value), RuntimeError> {
        let inspect = self
            .docker
            .inspect_container(id, None)
            .await
            .map_err(docker_error)?;
        inspected(inspect)
    }

    async fn usage(&self, id: &str) -> Result<ContainerUsage, RuntimeError> {
        let options = StatsOptionsBuilder::default()
            .stream(false)
            .one_shot(true)
            .build();
        let stats = self
            .docker
            .stats(id, Some(options))
            .next()
            .await
            .ok_or_else(|| RuntimeError::Docker(format!("no stats for container {id}")))?
            .map_err(docker_error)?;
        let cpu = stats.cpu_stats.unwrap_or_default();
        let memory = stats.memory_stats.unwrap_or_default();
        // The page cache the kernel can drop does not count (cgroup v2: inactive_file).
        let cache = memory
            .stats
            .as_ref()
            .and_then(|stats| {
                stats
                    .get("inactive_file")
                    .or_else(|| stats.get("total_inactive_file"))
            })
            .copied()
            .unwrap_or(0);
        Ok(ContainerUsage {
            cpu_nanos: cpu
                .cpu_usage
                .and_then(|usage| usage.total_usage)
                .unwrap_or(0),
            system_cpu_nanos: cpu.system_cpu_usage.unwrap_or(0),
            online_cpus: cpu.online_cpus.unwrap_or(1),
            memory_bytes: memory.usage.unwrap_or(0).saturating_sub(cache),
            memory_limit_bytes: memory.limit.unwrap_or(0),
        })
    }

    async fn create_volume(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<bool, RuntimeError> {
        // Docker's create answers the same for a new volume and an existing one: only asking
        // first tells them apart (one agent per engine creates a task's volumes, so nothing
        // comes in between).
        match self.docker.inspect_volume(name).await {
            Ok(_) => return Ok(false),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            Err(error) => return Err(docker_error(error)),
        }
        let request = bollard::models::VolumeCreateRequest {
            name: Some(name.to_owned()),
            labels: Some(labels.clone().into_iter().collect()),
            ..Default::default()
        };
        match self.docker.create_volume(request).await {
            Ok(_) => Ok(true),
            Err(BollardError::DockerResponseServerError {
                status_code: 400,
                message,
            }) => Err(RuntimeError::InvalidConfig(message)),
            Err(error) => Err(docker_error(error)),
        }
    }

    async fn list_volumes(&self, labels: &[(&str, &str)]) -> Result<Vec<Volume>, RuntimeError> {
        let options = ListVolumesOptionsBuilder::default()
            .filters(&label_filters(labels))
            .build();
        let listed = self
            .docker
            .list_volumes(Some(options))
            .await
            .map_err(docker_error)?;
        Ok(listed
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|volume| Volume {
                name: volume.name,
                labels: volume.labels.into_iter().collect(),
            })
            .collect())
    }

    async fn remove_volume(&self, name: &str) -> Result<(), RuntimeError> {
        // Not forced: a volume a container still mounts must stay (Docker says which one).
        let options = RemoveVolumeOptionsBuilder::default().force(false).build();
        match self.docker.remove_volume(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(BollardError::DockerResponseServerError { message, .. }) => {
                Err(RuntimeError::Docker(message))
            }
            Err(error) => Err(docker_error(error)),
        }
    }

    async fn upload_archive(
        &self,
        id: &str,
        path: &str,
        archive: ArchiveStream,
    ) -> Result<(), RuntimeError> {
        let options = UploadToContainerOptionsBuilder::default()
            .path(path)
            .build();
        // The engine unpacks gzip, bzip2 and xz itself, so the archive goes through as read.
        let body = bollard::body_try_stream(archive);
        match self
            .docker
            .upload_to_container(id, Some(options), body)
            .await
        {
            Ok(()) => Ok(()),
            // 404 is also a missing path: Docker's own words say which.
            Err(BollardError::DockerResponseServerError { message, .. }) => {
                Err(RuntimeError::Docker(message))
            }
            Err(error) => Err(docker_error(error)),
        }
    }

    fn download_archive(&self, id: &str, path: &str) -> ArchiveStream {
        // `DIR/.` makes the engine name the entries `./...` rather than `DIR/...`.
        let path = format!("{}/.", path.trim_end_matches('/'));
        let options = DownloadFromContainerOptionsBuilder::default()
            .path(&path)
            .build();
        self.docker
            .download_from_container(id, Some(options))
            .map(|chunk| {
                chunk.map_err(|error| match error {
                    BollardError::DockerResponseServerError { message, .. } => {
                        std::io::Error::other(message)
                    }
                    error => std::io::Error::other(docker_error(error).to_string()),
                })
            })
            .boxed()
    }

    async fn pause(&self, id: &str) -> Result<(), RuntimeError> {
        self.docker.pause_container(id).await.map_err(docker_error)
    }

    async fn unpause(&self, id: &str) -> Result<(), RuntimeError> {
        self.docker
            .unpause_container(id)
            .await
            .map_err(docker_error)
    }

    async fn engine_version(&self) -> Result<String, RuntimeError> {
        let version = self.docker.version().await.map_err(docker_error)?;
        Ok(version.version.unwrap_or_else(|| "unknown".into()))
    }

    async fn exec(&self, id: &str, command: &[String]) -> Result<i64, RuntimeError> {
        let options = ExecOptions {
            command: command.to_vec(),
            tty: false,
            stdin: false,
            size: None,
        };
        let mut attached = self.exec_attached(id, &options).await?;
        // Reading the output to its end is how we learn the command has finished.
        while attached.output.next().await.is_some() {}
        Ok(self.exec_exit_code(&attached.id).await?.unwrap_or(-1))
    }

    async fn exec_attached(
        &self,
        id: &str,
        options: &ExecOptions,
    ) -> Result<AttachedExec, RuntimeError> {
        use bollard::exec::{StartExecOptions, StartExecResults};
        let config = bollard::models::ExecConfig {
            cmd: Some(options.command.clone()),
            attach_stdin: Some(options.stdin),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(options.tty),
            // Engines before API 1.42 ignore it; the resize below covers them.
            console_size: options
                .size
                .filter(|_| options.tty)
                .map(|(rows, cols)| vec![usize::from(rows), usize::from(cols)]),
            ..Default::default()
        };
        let created = self
            .docker
            .create_exec(id, config)
            .await
            .map_err(exec_error)?;
        let start = StartExecOptions {
            detach: false,
            tty: options.tty,
            output_capacity: None,
        };
        let started = self
            .docker
            .start_exec(&created.id, Some(start))
            .await
            .map_err(exec_error)?;
        let StartExecResults::Attached { output, input } = started else {
            return Err(RuntimeError::Docker("the exec started detached".into()));
        };
        if let (true, Some((rows, cols))) = (options.tty, options.size) {
            // Best effort: the command runs whatever its terminal's size.
            if let Err(error) = self.resize_exec(&created.id, rows, cols).await {
                tracing::debug!(%error, "could not size an exec's terminal");
            }
        }
        let output = output.map(log_chunk).boxed();
        Ok(AttachedExec {
            id: created.id,
            output,
            input,
        })
    }

    async fn resize_exec(&self, exec_id: &str, rows: u16, cols: u16) -> Result<(), RuntimeError> {
        let options = bollard::exec::ResizeExecOptions {
            height: rows,
            width: cols,
        };
        self.docker
            .resize_exec(exec_id, options)
            .await
            .map_err(docker_error)
    }

    async fn exec_exit_code(&self, exec_id: &str) -> Result<Option<i64>, RuntimeError> {
        let inspect = self
            .docker
            .inspect_exec(exec_id)
            .await
            .map_err(docker_error)?;
        if inspect.running == Some(true) {
            return Ok(None);
        }
        Ok(inspect.exit_code)
    }

    fn events(
        &self,
        labels: &[(&str, &str)],
    ) -> BoxStream<'static, Result<RuntimeEvent, RuntimeError>> {
        let mut filters = label_filters(labels);
        filters.insert("type".into(), vec!["container".into()]);
        let options = EventsOptionsBuilder::default().filters(&filters).build();
        self.docker
            .events(Some(options))
            .map(|item| {
                let message = item.map_err(docker_error)?;
                let actor = message.actor.unwrap_or_default();
                let attributes = actor.attributes.unwrap_or_default();
                Ok(RuntimeEvent {
                    action: message.action.unwrap_or_default(),
                    container_id: actor.id.unwrap_or_default(),
                    exit_code: attributes
                        .get("exitCode")
                        .and_then(|code| code.parse().ok()),
                    labels: attributes.into_iter().collect::<BTreeMap<_, _>>(),
                    time_nanos: message.time_nano.unwrap_or_default(),
                })
            })
            .boxed()
    }

    fn logs(
        &self,
        id: &str,
        options: LogsOptions,
    ) -> BoxStream<'static, Result<LogChunk, RuntimeError>> {
        let tail = options
            .tail
            .map(|n| n.to_string())
            .unwrap_or_else(|| "all".into());
        // The engine takes whole seconds in 32 bits, 0 meaning "from the start": a time before
        // 1970 asks for everything, one past 2038 for nothing yet.
        let since = options
            .since_unix_seconds
            .map_or(0, |seconds| seconds.clamp(0, i64::from(i32::MAX)) as i32);
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .follow(options.follow)
            .tail(&tail)
            .since(since)
            .timestamps(options.timestamps)
            .build();
        self.docker.logs(id, Some(options)).map(log_chunk).boxed()
    }
}
