//! The configuration of coding-job: the YAML a user writes, parsed, checked and resolved into
//! plain types the rest of the system works with.
//!
//! This crate does no IO and needs no async runtime, so everything about a config can be tested
//! in memory. A file is turned into a [`ServiceSpec`] by [`parse_service`]; every rejected file
//! yields [`SpecErrors`], each naming the file, line, column and field path. Every accepted
//! spec stays within the bounds of [`limits`]; image references follow [`reference`].
//! Values may be templates, checked against an environment by [`check_templates`] and rendered
//! for a task by [`render_task`].

mod analysis;
mod artifact;
mod dependencies;
mod diff;
mod docker_fields;
mod error;
mod host_map;
pub mod limits;
mod locate;
mod model;
mod names;
mod order;
mod parse;
mod placement;
mod probes;
mod raw;
pub mod reference;
mod rewrite;
mod routes;
mod settings;
mod target;
mod template;
mod template_sites;
mod template_syntax;
mod units;
mod volumes;
mod yaml;

pub use analysis::percent_text;
pub use diff::{ChangeKind, TaskChange, differences, task_change};
pub use error::{SpecError, SpecErrors, capped, shown};
pub use limits::MAX_SOURCE_BYTES;
pub use model::{
    ArtifactSpec, CanaryAnalysis, CheckSpec, DEFAULT_DRAIN_TIMEOUT_MS, JobSpec, LogErrorLimit,
    OnFailure, OnHostLost, Placement, Probe, Resources, RouteOptions, ServiceSpec, TaskSpec,
    Threshold, UpdatePolicy, VolumeSpec,
};
pub use names::{LABEL_RULE, NAME_RULE, is_valid_name, label_problem};
pub use order::{DependencyCycle, dependency_waves};
pub use parse::parse_service;
pub use reference::{ImageRef, ReferenceError, is_valid_tag};
pub use rewrite::set_job_image;
/// What the config counts a task's settings by, and which names and values it takes: for
/// tools that write service files (`import`) and must stay within the same bounds.
pub use settings::{command_bytes, env_bytes, is_valid_env_name, json_bytes};
pub use target::{Target, TargetError};
pub use template::{RenderContext, TemplateScope, check_templates, render_task};
pub use template_syntax::is_template;
pub use units::{format_bytes, parse_duration_ms, parse_memory};
pub use yaml::yaml_message_text;
