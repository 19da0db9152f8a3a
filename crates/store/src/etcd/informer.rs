//! The informer: keeps the mirror current with one etcd watch over the namespace, as a
//! Kubernetes informer does. It lists every key at one revision (a page at a time), then
//! watches from the next revision.
//!
//! etcd-client does not resume a broken watch (etcdv3/etcd-client#17), so this loop does: it
//! watches again from the mirror's revision, so nothing is missed or applied twice, and the
//! watches of this process carry on without a gap. Until the new watch has brought the mirror
//! up to what etcd holds (checked against a count read after it was created: see
//! [`Probe`]) the mirror stays down, and calls answer `Unavailable`. If etcd has compacted the
//! changes it would resume from, it lists everything again, and the watches of this process
//! are told they lost changes.
//!
//! A watch on a connection that died without a word (a cable pulled, a frozen etcd) would
//! simply go quiet, so the informer asks etcd for a progress answer after every second of
//! silence and gives the watch up after [`SILENCE_LIMIT`] without any answer.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use etcd_client::{
    GetOptions, SortOrder, SortTarget, WatchOptions, WatchRequestSender, WatchResponseStream,
};
use tokio::time::timeout;

use super::decode::{header_revision, observed, observed_put};
use super::mirror::{Observed, Probe};
use super::{REQUEST_DEADLINE, Shared, kv_client, watch_client};

/// How long the watch may be silent before the informer asks etcd for a progress answer.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// How long the watch may go without any answer (an event or a progress answer) before the
/// informer gives it up as broken.
const SILENCE_LIMIT: Duration = Duration::from_secs(3);
/// The first wait before watching again after a failure; doubled after each failure in a row.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);
/// Keys per page of a listing.
const LIST_PAGE: i64 = 1000;

/// An open etcd watch. The sender half is kept: dropping it would end the watch.
struct Watch {
    requests: WatchRequestSender,
    responses: WatchResponseStream,
}

/// How a watch ended without failing: etcd no longer has the changes it was to send.
struct Compacted(u64);

/// Runs until the store's runtime stops: watches, and watches again after every failure.
pub(super) async fn follow(shared: std::sync::Arc<Shared>) {
    let mut retry = RETRY_FIRST;
    loop {
        let mut was_up = false;
        let Err(reason) = watch_until_failure(&shared, &mut was_up).await;
        shared.mirror.set_down(&reason);
        tracing::warn!(%reason, "the store lost its etcd watch; watching again");
        if was_up {
            retry = RETRY_FIRST;
        }
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(RETRY_MAX);
    }
}

/// One connection's worth of watching: resumes (or lists), then follows until something fails.
async fn watch_until_failure(shared: &Shared, was_up: &mut bool) -> Result<Infallible, String> {
    let (mut watch, mut probe) = match shared.mirror.resume_point() {
        Some(revision) => match open_watch(shared, revision + 1).await? {
            Ok(watch) => {
                let probe = probe(shared).await?;
                (watch, Some(probe))
            }
            Err(Compacted(compacted)) => (list_again(shared, revision, compacted).await?, None),
        },
        None => (list_and_watch(shared, false).await?, None),
    };
    loop {
        let Compacted(compacted) = follow_watch(shared, &mut watch, &mut probe, was_up).await?;
        let revision = shared.mirror.resume_point().unwrap_or(0);
        watch = list_again(shared, revision, compacted).await?;
        probe = None;
    }
}

async fn list_again(shared: &Shared, revision: u64, compacted: u64) -> Result<Watch, String> {
    tracing::warn!(
        revision,
        compacted,
        "etcd compacted the changes after the store's revision; listing everything again"
    );
    shared
        .mirror
        .set_down("listing again: etcd compacted the changes not yet seen");
    list_and_watch(shared, true).await
}

/// Lists everything into the mirror, then watches from the next revision.
async fn list_and_watch(shared: &Shared, lost: bool) -> Result<Watch, String> {
    let (listing, revision) = list(shared).await?;
    shared.mirror.install(listing, revision, lost);
    match open_watch(shared, revision + 1).await? {
        Ok(watch) => Ok(watch),
        Err(Compacted(compacted)) => Err(format!(
            "etcd compacted revision {compacted} before the watch after the listing at {revision} began"
        )),
    }
}

/// Every key of the namespace at one revision (that of the first page).
async fn list(shared: &Shared) -> Result<(Vec<Observed>, u64), String> {
    let range = shared.namespace.range("");
    let mut kv = kv_client(&shared.client);
    let mut listing = Vec::new();
    let mut revision = 0;
    let mut start = range.start.clone();
    loop {
        let mut options = GetOptions::new()
            .with_range(range.end.clone())
            .with_limit(LIST_PAGE);
        if revision != 0 {
            options = options.with_revision(revision);
        }
        let page = timeout(REQUEST_DEADLINE, kv.get(start.clone(), Some(options)))
            .await
            .map_err(|_| format!("etcd did not answer a listing within {REQUEST_DEADLINE:?}"))?
            .map_err(|error| format!("cannot list the keys: {error}"))?;
        if revision == 0 {
            revision = i64::try_from(header_revision(page.header())).unwrap_or(i64::MAX);
        }
        listing.extend(
            page.kvs()
                .iter()
                .filter_map(|kv| observed_put(&shared.namespace, kv)),
        );
        match (page.more(), page.kvs().last()) {
            (true, Some(last)) => {
                start = last.key().to_vec();
                start.push(0);
            }
            _ => return Ok((listing, u64::try_from(revision).unwrap_or(0))),
        }
    }
}

/// Counts the keys of the namespace now, with the newest mod revision among them.
async fn probe(shared: &Shared) -> Result<Probe, String> {
    let range = shared.namespace.range("");
    let options = GetOptions::new()
        .with_range(range.end)
        .with_keys_only()
        .with_sort(SortTarget::Mod, SortOrder::Descend)
        .with_limit(1);
    let newest = timeout(
        REQUEST_DEADLINE,
        kv_client(&shared.client).get(range.start, Some(options)),
    )
    .await
    .map_err(|_| format!("etcd did not answer a count within {REQUEST_DEADLINE:?}"))?
    .map_err(|error| format!("cannot count the keys: {error}"))?;
    Ok(Probe {
        revision: header_revision(newest.header()),
        count: u64::try_from(newest.count()).unwrap_or(0),
        max_mod_revision: newest
            .kvs()
            .first()
            .map_or(0, |kv| u64::try_from(kv.mod_revision()).unwrap_or(0)),
    })
}

/// Opens a watch of the namespace from `start_revision`, once etcd says it was created.
async fn open_watch(
    shared: &Shared,
    start_revision: u64,
) -> Result<Result<Watch, Compacted>, String> {
    let range = shared.namespace.range("");
    let options = WatchOptions::new()
        .with_range(range.end)
        .with_start_revision(i64::try_from(start_revision).unwrap_or(i64::MAX));
    let mut watches = watch_client(&shared.client);
    let stream = timeout(REQUEST_DEADLINE, watches.watch(range.start, Some(options)))
        .await
        .map_err(|_| format!("etcd did not open a watch within {REQUEST_DEADLINE:?}"))?
        .map_err(|error| format!("cannot watch: {error}"))?;
    let (requests, mut responses) = stream.split();
    let created = timeout(REQUEST_DEADLINE, responses.message())
        .await
        .map_err(|_| format!("etcd did not create a watch within {REQUEST_DEADLINE:?}"))?
        .map_err(|error| format!("cannot watch: {error}"))?
        .ok_or("etcd closed the watch as it opened")?;
    if created.compact_revision() > 0 {
        return Ok(Err(Compacted(
            u64::try_from(created.compact_revision()).unwrap_or(0),
        )));
    }
    if created.canceled() || !created.created() {
        return Err(format!(
            "etcd refused the watch: {}",
            created.cancel_reason()
        ));
    }
    Ok(Ok(Watch {
        requests,
        responses,
    }))
}

/// Applies what the watch brings until it fails (`Err`) or etcd compacts past it. While
/// `probe` is set the mirror is catching up; once it has, the mirror goes up.
async fn follow_watch(
    shared: &Shared,
    watch: &mut Watch,
    probe: &mut Option<Probe>,
    was_up: &mut bool,
) -> Result<Compacted, String> {
    let mut heard = Instant::now();
    let mut heartbeat = tokio::time::interval(HEARTBEAT_EVERY);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut up = false;
    loop {
        if probe.is_some_and(|probe| shared.mirror.caught_up(&probe)) {
            *probe = None;
        }
        if probe.is_none() && !up {
            shared.mirror.set_up();
            up = true;
            *was_up = true;
        }
        tokio::select! {
            message = watch.responses.message() => {
                heard = Instant::now();
                let response = message
                    .map_err(|error| format!("the watch failed: {error}"))?
                    .ok_or("etcd closed the watch")?;
                if response.compact_revision() > 0 {
                    return Ok(Compacted(u64::try_from(response.compact_revision()).unwrap_or(0)));
                }
                if response.canceled() {
                    return Err(format!("etcd cancelled the watch: {}", response.cancel_reason()));
                }
                let changes: Vec<Observed> = response
                    .events()
                    .iter()
                    .filter_map(|event| observed(&shared.namespace, event))
                    .collect();
                if !changes.is_empty() {
                    shared.mirror.apply(changes);
                }
            }
            _ = heartbeat.tick() => {
                let silent = heard.elapsed();
                if silent >= SILENCE_LIMIT {
                    return Err(format!("etcd has not answered on the watch for {silent:?}"));
                }
                if silent >= HEARTBEAT_EVERY {
                    timeout(REQUEST_DEADLINE, watch.requests.request_progress())
                        .await
                        .map_err(|_| "cannot ask etcd for the watch's progress".to_owned())?
                        .map_err(|error| format!("cannot ask etcd for the watch's progress: {error}"))?;
                }
            }
            _ = shared.restart.notified() => {
                return Err("the watch did not show a write of this store in time".into());
            }
        }
    }
}
