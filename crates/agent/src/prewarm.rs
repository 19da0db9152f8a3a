//! Pre-warm: images pulled before a task needs them, so that starting a task on this host (an
//! `up`, a rollout's batch, a task moved here from a lost host) waits for no registry.
//!
//! The server sends the set of images this host runs or may run
//! ([`cj_api::agent::link::ServerMessage::Prewarm`]) when the agent connects and whenever it
//! changes; [`keep_warm`] pulls the missing ones in a task of its own, one at a time, so neither the
//! reconcile loop nor the link ever waits for a pull. A newer set replaces what is left of the
//! older one (the pull under way finishes first). `hosts prewarm` asks for the same pulls and
//! waits for their outcome ([`pull_all`]).
//!
//! Pulls are made exactly as the reconcile loop's (no registry credentials are sent), so an
//! error message holds nothing secret.

use std::future::Future;
use std::sync::Arc;

use cj_api::{ImagePull, PullOutcome};
use cj_runtime::{ContainerRuntime, RuntimeError};
use tokio::sync::watch;
use tokio::time::Instant;

/// What pre-warming needs of an engine (a trait of its own so the rules are tested without one).
pub(crate) trait Images: Send + Sync + 'static {
    fn present(&self, image: &str) -> impl Future<Output = Result<bool, RuntimeError>> + Send;
    fn pull(&self, image: &str) -> impl Future<Output = Result<(), RuntimeError>> + Send;
}

impl<R: ContainerRuntime> Images for R {
    fn present(&self, image: &str) -> impl Future<Output = Result<bool, RuntimeError>> + Send {
        self.image_present(image)
    }

    fn pull(&self, image: &str) -> impl Future<Output = Result<(), RuntimeError>> + Send {
        ContainerRuntime::pull(self, image, move |line| {
            tracing::debug!(image, line, "pull")
        })
    }
}

/// Pulls the images of each set `wanted` holds that the engine lacks, until the sender goes.
pub(crate) async fn keep_warm(engine: Arc<impl Images>, mut wanted: watch::Receiver<Vec<String>>) {
    while wanted.changed().await.is_ok() {
        let images = wanted.borrow_and_update().clone();
        for image in &images {
            // A newer set replaces what is left of this one.
            if wanted.has_changed().unwrap_or(true) {
                break;
            }
            pull_one(&*engine, image).await;
        }
    }
}

/// Each image's outcome, pulled one after the other (`hosts prewarm`).
pub(crate) async fn pull_all(engine: &impl Images, images: &[String]) -> Vec<ImagePull> {
    let mut pulls = Vec::with_capacity(images.len());
    for image in images {
        pulls.push(ImagePull {
            image: image.clone(),
            outcome: pull_one(engine, image).await,
        });
    }
    pulls
}

/// Pulls `image` unless the engine has it.
async fn pull_one(engine: &impl Images, image: &str) -> PullOutcome {
    match engine.present(image).await {
        Ok(true) => return PullOutcome::Present,
        Ok(false) => {}
        Err(error) => return failed(image, error),
    }
    tracing::info!(image, "pre-warm: pulling");
    let started = Instant::now();
    match engine.pull(image).await {
        Ok(()) => {
            let seconds = started.elapsed().as_secs_f64();
            tracing::info!(image, seconds, "pre-warm: pulled");
            PullOutcome::Pulled { seconds }
        }
        Err(error) => failed(image, error),
    }
}

fn failed(image: &str, error: RuntimeError) -> PullOutcome {
    let error = match error {
        // The runtime calls every failed pull "not found"; the engine's reason says more.
        RuntimeError::ImageNotFound { reason, .. } => reason,
        other => other.to_string(),
    };
    tracing::warn!(image, error, "pre-warm: pull failed");
    PullOutcome::Failed { error }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;

    /// An engine whose pulls take `pull_time` and fail for images named `broken...`.
    struct FakeEngine {
        present: Mutex<BTreeSet<String>>,
        pulled: Mutex<Vec<String>>,
        pull_time: Duration,
    }

    impl FakeEngine {
        fn with(present: &[&str]) -> FakeEngine {
            FakeEngine {
                present: Mutex::new(present.iter().map(|image| image.to_string()).collect()),
                pulled: Mutex::default(),
                pull_time: Duration::from_secs(10),
            }
        }

        fn pulled(&self) -> Vec<String> {
            self.pulled.lock().unwrap().clone()
        }
    }

    impl Images for FakeEngine {
        async fn present(&self, image: &str) -> Result<bool, RuntimeError> {
            Ok(self.present.lock().unwrap().contains(image))
        }

        async fn pull(&self, image: &str) -> Result<(), RuntimeError> {
            self.pulled.lock().unwrap().push(image.to_owned());
            tokio::time::sleep(self.pull_time).await;
            if image.starts_with("broken") {
                return Err(RuntimeError::ImageNotFound {
                    image: image.to_owned(),
                    reason: "connection refused".into(),
                });
            }
            self.present.lock().unwrap().insert(image.to_owned());
            Ok(())
        }
    }

    fn images(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn present_images_are_not_pulled_and_failures_say_why() {
        let engine = FakeEngine::with(&["a:1"]);
        let pulls = pull_all(&engine, &images(&["a:1", "b:1", "broken:1"])).await;
        let outcomes: Vec<(&str, &PullOutcome)> = pulls
            .iter()
            .map(|pull| (pull.image.as_str(), &pull.outcome))
            .collect();
        assert_eq!(
            outcomes,
            [
                ("a:1", &PullOutcome::Present),
                ("b:1", &PullOutcome::Pulled { seconds: 10.0 }),
                (
                    "broken:1",
                    &PullOutcome::Failed {
                        error: "connection refused".into()
                    }
                ),
            ]
        );
        assert_eq!(engine.pulled(), ["b:1", "broken:1"]);
        // Pulled once is present from then on.
        let again = pull_all(&engine, &images(&["b:1"])).await;
        assert_eq!(again[0].outcome, PullOutcome::Present);
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_set_replaces_what_is_left_of_the_pending_one() {
        let engine = Arc::new(FakeEngine::with(&["present:1"]));
        let (wanted, receiver) = watch::channel(Vec::new());
        let warming = tokio::spawn(keep_warm(engine.clone(), receiver));
        wanted.send_replace(images(&["present:1", "a:1", "b:1", "c:1"]));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(engine.pulled(), ["a:1"], "one pull at a time");
        // While a:1 is pulled, a new set comes: b:1 and c:1 are no longer wanted.
        wanted.send_replace(images(&["a:1", "d:1"]));
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(engine.pulled(), ["a:1", "d:1"]);
        // The same set again (a reconnected link) pulls nothing that is there.
        wanted.send_replace(images(&["a:1", "d:1"]));
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(engine.pulled(), ["a:1", "d:1"]);
        drop(wanted);
        tokio::time::timeout(Duration::from_secs(1), warming)
            .await
            .expect("keep_warm ends with its sender")
            .unwrap();
    }
}
