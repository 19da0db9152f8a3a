//! How the long-lived processes (`dev`, `server`, `agent`, `router`) use glibc's allocator.
//!
//! glibc gives each thread that allocates its own arena, up to eight per core, and keeps freed
//! memory in them. A server's work hops between tokio's workers and its blocking threads (the
//! store's transactions run there), so a few bursts leave several arenas each holding a few
//! megabytes nobody uses: most of the resident memory above the working set. Two arenas keep
//! the contention low on the few threads that allocate, and a periodic trim hands what the
//! arenas hold free back to the kernel. Both are what `MALLOC_ARENA_MAX=2` and a `malloc_trim`
//! call do; they are set here so that every deployment gets them without a wrapper script.
//!
//! This is the one module of the project with `unsafe` code: two calls into the C library.

use std::time::Duration;

/// How often what the arenas hold free goes back to the kernel. A trim of a few megabytes takes
/// microseconds; once a second keeps the resident size near the working set after a burst.
const TRIM_EVERY: Duration = Duration::from_secs(1);

/// Limits glibc to two arenas. Call first thing in `main`, before any thread starts: an arena
/// limit applies to arenas made after it.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn limit_arenas() {
    // SAFETY: `mallopt` only sets a tunable of the allocator; no thread exists yet to race it,
    // and a value it does not accept is ignored (it returns 0), which leaves the default.
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn limit_arenas() {}

/// Hands what the allocator holds free back to the kernel every [`TRIM_EVERY`], for as long as
/// the process runs. Runs on a plain thread: a trim walks the arenas under their locks and
/// should not hold up an async worker.
pub fn trim_periodically() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    std::thread::Builder::new()
        .name("malloc-trim".to_owned())
        .spawn(|| {
            loop {
                std::thread::sleep(TRIM_EVERY);
                // SAFETY: `malloc_trim` is thread-safe (it takes each arena's lock) and only
                // returns free pages to the kernel; no pointer the program holds changes.
                #[allow(unsafe_code)]
                unsafe {
                    libc::malloc_trim(0);
                }
            }
        })
        .map(drop)
        .unwrap_or_else(|error| tracing::warn!("memory trimming is off: {error}"));
}
