//! The conformance suite (`coding_job_store::conformance`) against a real etcd: each test
//! starts an etcd of its own (etcd's revision and compaction are global, and the suite checks
//! revisions relative to a store nobody else writes to), killed when the test ends. Needs the
//! `etcd` binary (Debian `etcd-server`); without it every test fails, saying so.

#[path = "support/etcd.rs"]
mod etcd_server;

use coding_job_store::{EtcdOptions, EtcdStore};
use etcd_server::EtcdServer;

/// Connects to the same new etcd on every call; etcd goes when the closure does.
fn fresh_etcd_store() -> impl Fn() -> EtcdStore {
    let etcd = EtcdServer::start();
    move || {
        EtcdStore::connect(&etcd.endpoints(), None, EtcdOptions::default())
            .expect("the store connects to etcd")
    }
}

coding_job_store::conformance_tests!(fresh_etcd_store());
