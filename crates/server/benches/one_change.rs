//! The cost of one change to the desired state, with 1k, 10k and 100k desired tasks: from a
//! service's change being written to the store to its assignments being published, and the
//! controller's own time for that publish, against
//! placing and publishing everything again (what every change cost when publishing was not
//! incremental), in the same run.
//!
//! `cargo bench -p coding-job-server --bench one_change [-- --sizes 1000,10000,100000]`
//!
//! Services of 10 tasks each, over 100 linked hosts (without agents: placement and publishing
//! are what is measured). The store lives on /dev/shm when there is one, which shortens the
//! setup of 100k tasks and leaves the measured part (a few writes) much the same.

use std::time::Duration;

use coding_job_server::control::bench::PublishFixture;

const PER_SERVICE: usize = 10;
const HOSTS: usize = 100;
const CHANGES: usize = 30;
const EVERYTHING_RUNS: usize = 3;

fn main() -> anyhow::Result<()> {
    let sizes = sizes_from_args()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let under = if std::path::Path::new("/dev/shm").is_dir() {
        std::path::PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    println!(
        "| desired tasks | one change: the controller's publish, median | p90 | write to published, median | p90 | everything again, median |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for tasks in sizes {
        let services = tasks / PER_SERVICE;
        runtime.block_on(async {
            let setup = std::time::Instant::now();
            let mut fixture = PublishFixture::new(&under, services, PER_SERVICE, HOSTS).await?;
            anyhow::ensure!(
                fixture.published_tasks() == tasks,
                "{} of {tasks} tasks published",
                fixture.published_tasks()
            );
            eprintln!(
                "{tasks} tasks set up in {:.1} s",
                setup.elapsed().as_secs_f64()
            );
            let mut changes = Vec::new();
            let mut writes = Vec::new();
            for n in 0..CHANGES {
                // Spread over the services, so no one is always the one changed.
                let (end_to_end, publish) = fixture.one_change(n * 7919).await?;
                writes.push(end_to_end);
                changes.push(publish);
            }
            let mut everything = Vec::new();
            for _ in 0..EVERYTHING_RUNS {
                everything.push(fixture.everything().await?);
            }
            changes.sort();
            writes.sort();
            everything.sort();
            println!(
                "| {tasks} | {} | {} | {} | {} | {} |",
                ms(changes[CHANGES / 2]),
                ms(changes[CHANGES * 9 / 10]),
                ms(writes[CHANGES / 2]),
                ms(writes[CHANGES * 9 / 10]),
                ms(everything[EVERYTHING_RUNS / 2]),
            );
            anyhow::Ok(())
        })?;
    }
    Ok(())
}

fn ms(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1000.0)
}

fn sizes_from_args() -> anyhow::Result<Vec<usize>> {
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--sizes" {
            let list = args.next().unwrap_or_default();
            return list
                .split(',')
                .map(|size| {
                    size.trim()
                        .parse()
                        .map_err(|_| anyhow::anyhow!("--sizes: `{size}` is not a number"))
                })
                .collect();
        }
    }
    Ok(vec![1_000, 10_000, 100_000])
}
