//! The routers' table as last built, and what makes a container one the routers may send
//! requests to.

use std::sync::Arc;

use cj_api::agent::{ContainerState, Health};
use cj_api::routes::RouteTable;
use tokio::sync::watch;

/// The current table; routers' streams and `dev`'s own router watch it.
pub struct RouteTableWatch {
    table: watch::Sender<Arc<RouteTable>>,
}

impl Default for RouteTableWatch {
    fn default() -> Self {
        RouteTableWatch {
            table: watch::channel(Arc::new(RouteTable::default())).0,
        }
    }
}

impl RouteTableWatch {
    pub fn current(&self) -> Arc<RouteTable> {
        self.table.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<RouteTable>> {
        self.table.subscribe()
    }

    /// Replaces the table if its routes changed (followers wake only on a real change).
    pub(crate) fn offer(&self, mut table: RouteTable) {
        self.table.send_if_modified(|current| {
            if current.routes == table.routes {
                return false;
            }
            table.generation = current.generation + 1;
            *current = Arc::new(table);
            true
        });
    }
}

/// Whether a container may take requests: running, not leaving, and healthy or without a check.
pub(crate) fn serves(container: &cj_api::agent::ObservedContainer) -> bool {
    container.state == ContainerState::Running
        && !container.leaving
        && matches!(container.health, None | Some(Health::Healthy))
}
