use std::sync::Arc;

use cj_spec::{Placement, TaskSpec};
use tokio::sync::watch;

/// Where an image may be needed: by a task pinned to a host, or by one placed among the hosts
/// its placement allows. A hundred thousand tasks come down to a handful of these, so each
/// agent's share is worked out from those, not from every task.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageDemand {
    pub image: String,
    pub run_on_host: Option<String>,
    pub placement: Placement,
}

impl ImageDemand {
    pub fn of(task: &TaskSpec) -> Option<ImageDemand> {
        Some(ImageDemand {
            image: task.image.clone()?,
            run_on_host: task.run_on_host.clone(),
            placement: task.placement.clone(),
        })
    }
}

/// Every image some host may need: those of each desired task at the version(s) it runs and
/// of each task of every service's latest version. One copy for all agents' sessions, so a
/// change is worked out once, not once per connected host. `None` until first worked out.
pub struct Catalog {
    pub(crate) tasks: watch::Sender<Option<Arc<Vec<ImageDemand>>>>,
}

impl Default for Catalog {
    fn default() -> Self {
        Catalog {
            tasks: watch::channel(None).0,
        }
    }
}
