//! Imports of the files users already have: a Compose file, a Marathon app or group, a Kamal
//! `deploy.yml`, or the seed's protobuf-text job list, turned into coding-job service files.
//!
//! Like `spec`, this crate does no IO: it is given the text of a file (and, for Kamal, of its
//! destination file) and returns the service files to write and a [`Report`] of what was carried,
//! what was changed on the way (an address rewritten, a port clash to expect) and every construct
//! that was left out, each with its path in the source and the reason. Input that cannot be read
//! at all is an [`ImportError`] located at its line and column.
//!
//! Every importer walks the source's tree and takes the keys it understands ([`fields::Fields`]);
//! whatever it did not take is reported, so nothing is dropped silently.

mod compose;
mod fields;
mod jobs;
mod kamal;
mod marathon;
mod report;
mod sanitize;
mod service_file;
mod source;
mod text;

pub use report::{NotCarried, Note, Report, Variable};
pub use service_file::{
    Check, DockerConfig, Job, Resources, ServiceFile, Update, Volume, render_service,
};

use serde::Serialize;

/// The kinds of file `coding-job import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Compose,
    Marathon,
    Kamal,
    Jobs,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Compose => "compose",
            Format::Marathon => "marathon",
            Format::Kamal => "kamal",
            Format::Jobs => "jobs",
        }
    }
}

/// One file to import, as read by the caller.
pub struct Source<'a> {
    /// The name it is reported under (`docker-compose.yml`).
    pub file: &'a str,
    pub text: &'a str,
}

/// Reads a file named as the source names it, relative to the source; `None` when it cannot.
pub type ReadBeside<'a> = &'a dyn Fn(&str) -> Option<String>;

/// What the caller knows beyond the file itself.
#[derive(Default)]
pub struct Options<'a> {
    /// The service name (Compose: the project; default: the file's directory or stem).
    pub project: Option<&'a str>,
    /// Kamal: the destination file (`deploy.DEST.yml`), merged over the base as Kamal does.
    pub destination: Option<Source<'a>>,
    /// Reads a file named as the source names it, relative to the source (Compose's
    /// `env_file:` and `.env`); `None` when it cannot be read. Without it, none is read.
    pub read_beside: Option<ReadBeside<'a>>,
    /// Compose: the directory relative bind mounts (`./data:/data`) are relative to.
    pub base_dir: Option<&'a str>,
}

/// The outcome of an import: the service files and the report.
#[derive(Debug, Serialize)]
pub struct Import {
    pub files: Vec<ImportedFile>,
    pub variables: Vec<Variable>,
    pub notes: Vec<Note>,
    pub not_carried: Vec<NotCarried>,
}

/// One service file the import wrote.
#[derive(Debug, Serialize)]
pub struct ImportedFile {
    /// The file name to write it under (`shop.yaml`).
    pub path: String,
    pub service: String,
    /// Its jobs, in the order written.
    pub jobs: Vec<String>,
    /// The file's text.
    pub text: String,
}

/// A file that cannot be imported: not readable as its format at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError {
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.column) {
            (Some(line), Some(column)) => {
                write!(f, "{}:{line}:{column}: {}", self.file, self.message)
            }
            (Some(line), None) => write!(f, "{}:{line}: {}", self.file, self.message),
            _ => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for ImportError {}

impl ImportError {
    pub(crate) fn whole(file: &str, message: impl Into<String>) -> Self {
        ImportError {
            file: file.to_string(),
            line: None,
            column: None,
            message: message.into(),
        }
    }
}

/// Imports one file of the given format.
pub fn import(format: Format, source: &Source, options: &Options) -> Result<Import, ImportError> {
    let mut report = Report::default();
    let mut services = match format {
        Format::Compose => compose::import(source, options, &mut report)?,
        Format::Marathon => marathon::import(source, options, &mut report)?,
        Format::Kamal => kamal::import(source, options, &mut report)?,
        Format::Jobs => jobs::import(source, options, &mut report)?,
    };
    sanitize::sanitize(&mut services, &mut report);
    if services.is_empty() || services.iter().all(|service| service.jobs.is_empty()) {
        return Err(ImportError::whole(
            source.file,
            format!("nothing to import: no {} service found", format.name()),
        ));
    }
    let header = format!(
        "Imported from {} by `coding-job import {}`.",
        source.file,
        format.name()
    );
    let files = services
        .iter()
        .map(|service| ImportedFile {
            path: format!("{}.yaml", service.service),
            service: service.service.clone(),
            jobs: service.jobs.iter().map(|job| job.name.clone()).collect(),
            text: render_service(service, &header),
        })
        .collect();
    Ok(report.finish(files))
}
