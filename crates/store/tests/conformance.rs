//! The conformance suite (`coding_job_store::conformance`) against the embedded backend: each
//! test opens a store file of its own, in a directory removed when the test ends.

use coding_job_store::EmbeddedStore;

/// Opens the same new store file on every call; the directory goes when the closure does.
fn fresh_embedded_store() -> impl Fn() -> EmbeddedStore {
    let dir = tempfile::tempdir().expect("a temporary directory");
    move || EmbeddedStore::open(&dir.path().join("store.redb")).expect("the store opens")
}

coding_job_store::conformance_tests!(fresh_embedded_store());

/// The same suite through [`coding_job_store::OffWorker`], the wrapper the server uses.
mod off_worker {
    use coding_job_store::{EmbeddedStore, OffWorker};

    fn fresh_wrapped_store() -> impl Fn() -> OffWorker<EmbeddedStore> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        move || {
            OffWorker::new(
                EmbeddedStore::open(&dir.path().join("store.redb")).expect("the store opens"),
            )
        }
    }

    coding_job_store::conformance_tests!(fresh_wrapped_store());
}
