use std::sync::Arc;

use cj_spec::TaskSpec;
use tokio::sync::watch;

/// Every task some host may need the image of: each desired task at the version(s) it runs and
/// each task of every service's latest version. One copy for all agents' sessions, so a change
/// reads the store once, not once per connected host. `None` until first worked out.
pub struct Catalog {
    pub(crate) tasks: watch::Sender<Option<Arc<Vec<TaskSpec>>>>,
}

impl Default for Catalog {
    fn default() -> Self {
        Catalog {
            tasks: watch::channel(None).0,
        }
    }
}
