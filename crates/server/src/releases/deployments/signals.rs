use cj_api::OperationEvent;

use tokio::sync::{broadcast, mpsc};

/// Running deployments' progress for the clients following them, in memory only (the records
/// in the store are what counts; a promote or abort reaches the runner through them).
pub struct DeploymentSignals {
    /// Every deployment's progress, with its id, for clients following one.
    pub(crate) events: broadcast::Sender<(String, OperationEvent)>,
}

impl Default for DeploymentSignals {
    fn default() -> Self {
        let (events, _) = broadcast::channel(4096);
        DeploymentSignals { events }
    }
}

impl DeploymentSignals {
    /// Every deployment's progress from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<(String, OperationEvent)> {
        self.events.subscribe()
    }

    pub fn publish(&self, id: &str, event: OperationEvent) {
        let _ = self.events.send((id.to_owned(), event));
    }

    /// Publishes everything `progress` carries as deployment `id`'s, until it closes.
    pub fn forward(
        &self,
        id: String,
        mut progress: mpsc::Receiver<OperationEvent>,
    ) -> tokio::task::JoinHandle<()> {
        let sender = self.events.clone();
        tokio::spawn(async move {
            while let Some(event) = progress.recv().await {
                let _ = sender.send((id.clone(), event));
            }
        })
    }
}
