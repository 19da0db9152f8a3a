//! The container runtime: the only code that talks to Docker.
//!
//! [`ContainerRuntime`] is what the agent needs from an engine (list by label, create, start,
//! stop, remove, inspect, events, logs, exec for checks and attached exec for users, named
//! volumes and unpacking an archive into a container); [`DockerRuntime`] implements it with
//! `bollard` against a real Docker engine, and [`SimRuntime`] in memory, scripted, for tests on
//! a paused clock and for simulated hosts. [`labels`] names the labels every managed container
//! and volume carries, so an agent restarted from nothing can tell what it owns.

mod create;
mod docker;
pub mod labels;
mod sim;
mod types;

/// The trait's `logs` takes the agent protocol's options as they are.
pub use cj_api::agent::link::LogsOptions;
pub use create::CreateRequest;
pub use docker::DockerRuntime;
pub use sim::{SimCall, SimContainer, SimMatch, SimOp, SimRuntime, SimUpload};
pub use types::{
    ArchiveStream, AttachedExec, Container, ContainerState, ContainerStatus, ContainerUsage,
    ExecOptions, LogChunk, RuntimeError, RuntimeEvent, Volume, VolumeMount,
};

use std::collections::BTreeMap;
use std::future::Future;

use futures_util::stream::BoxStream;

/// What an agent needs from a container engine.
pub trait ContainerRuntime: Send + Sync + 'static {
    /// Containers (running or not) carrying every `label=value` in `labels`.
    fn list(
        &self,
        labels: &[(&str, &str)],
    ) -> impl Future<Output = Result<Vec<Container>, RuntimeError>> + Send;

    fn image_present(&self, image: &str)
    -> impl Future<Output = Result<bool, RuntimeError>> + Send;

    /// Pulls `image`, reporting progress lines as they come.
    fn pull(
        &self,
        image: &str,
        progress: impl FnMut(&str) + Send,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// Creates a container and returns its id.
    fn create(
        &self,
        request: &CreateRequest,
    ) -> impl Future<Output = Result<String, RuntimeError>> + Send;

    fn start(&self, id: &str) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// Stops with SIGTERM, then SIGKILL after `grace_seconds`. Stopping a stopped container is fine.
    fn stop(
        &self,
        id: &str,
        grace_seconds: u32,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// Removes the container (forcefully if it still runs). Removing a missing one is fine.
    fn remove(&self, id: &str) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// Our summary of the container's state plus the engine's own inspect document.
    fn inspect(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<(ContainerStatus, serde_json::Value), RuntimeError>> + Send;

    /// Runs `command` in the running container and returns its exit code once it ends (checks).
    fn exec(
        &self,
        id: &str,
        command: &[String],
    ) -> impl Future<Output = Result<i64, RuntimeError>> + Send;

    /// Starts a command in the running container with its output (and, if asked, its stdin and
    /// a pseudo-terminal) attached. A container that is not running is
    /// [`RuntimeError::NotRunning`].
    fn exec_attached(
        &self,
        id: &str,
        options: &ExecOptions,
    ) -> impl Future<Output = Result<AttachedExec, RuntimeError>> + Send;

    /// Resizes the pseudo-terminal of an attached exec (by [`AttachedExec::id`]).
    fn resize_exec(
        &self,
        exec_id: &str,
        rows: u16,
        cols: u16,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// The exit code of an exec, `None` while it still runs.
    fn exec_exit_code(
        &self,
        exec_id: &str,
    ) -> impl Future<Output = Result<Option<i64>, RuntimeError>> + Send;

    /// Container lifecycle events for containers carrying every `label=value` in `labels`.
    fn events(
        &self,
        labels: &[(&str, &str)],
    ) -> BoxStream<'static, Result<RuntimeEvent, RuntimeError>>;

    /// The container's output: the last `tail` lines (all if `None`) written since `since`,
    /// each prefixed with its time if `timestamps`, then new output if `follow`.
    fn logs(
        &self,
        id: &str,
        options: LogsOptions,
    ) -> BoxStream<'static, Result<LogChunk, RuntimeError>>;

    /// What a running container uses now (counters: CPU use is the change between two reads).
    fn usage(&self, id: &str) -> impl Future<Output = Result<ContainerUsage, RuntimeError>> + Send;

    /// Creates the named volume with `labels` unless it exists. `true` when this call created
    /// it (so it is empty and may be seeded), `false` when it was already there (its labels are
    /// left as they are).
    fn create_volume(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<bool, RuntimeError>> + Send;

    /// Volumes carrying every `label=value` in `labels`.
    fn list_volumes(
        &self,
        labels: &[(&str, &str)],
    ) -> impl Future<Output = Result<Vec<Volume>, RuntimeError>> + Send;

    /// Removes the volume and its data. Removing a missing one is fine; one that a container
    /// (running or not) still mounts is an error.
    fn remove_volume(&self, name: &str) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// Unpacks `archive` into the container's filesystem under the directory `path`, as it is
    /// read. The container may be created and not yet started; its volumes are written too.
    fn upload_archive(
        &self,
        id: &str,
        path: &str,
        archive: ArchiveStream,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// The directory `path` of the container as a plain tar, read as the engine sends it, its
    /// entries relative to `path` (`./...`), so it unpacks as a volume seed does. The
    /// container may be created, running, paused or stopped; its volumes are read too.
    fn download_archive(&self, id: &str, path: &str) -> ArchiveStream;

    /// Freezes every process of the running container (`docker pause`), so what it has on
    /// disk stays still while it is copied.
    fn pause(&self, id: &str) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// Lets a paused container run again.
    fn unpause(&self, id: &str) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// The engine's version, e.g. `28.2.2`.
    fn engine_version(&self) -> impl Future<Output = Result<String, RuntimeError>> + Send;
}
