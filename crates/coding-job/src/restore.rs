//! `coding-job store restore FILE --data-dir DIR`: a data directory's store built from a
//! snapshot, with no server running on it (`cj_server::startup::restore_store`), and what it
//! holds, said.

use cj_cli::RestoreArgs;

/// Its exit code: 0 restored, 1 failed.
pub fn run(args: RestoreArgs) -> i32 {
    let restored = match cj_server::startup::restore_store(&args.file, &args.data_dir, args.force) {
        Ok(restored) => restored,
        Err(error) => {
            eprintln!("error: {error:#}");
            return 1;
        }
    };
    let snapshot = &restored.snapshot;
    println!(
        "restored {} from {}: revision {}, {} keys, {} leases",
        restored.store_file.display(),
        args.file.display(),
        snapshot.revision,
        snapshot.keys,
        snapshot.leases
    );
    if let Some(cluster) = &restored.cluster {
        println!("  cluster id:   {cluster} (its agents' containers are re-adopted as they run)");
    }
    println!(
        "  versions: {}, deployments: {}, environments: {}, hosts: {}, tokens: {}",
        restored.versions,
        restored.deployments,
        restored.environments,
        restored.hosts,
        restored.tokens
    );
    println!(
        "  the tokens are those of the snapshot; admin.token and the audit log are not part of \
         it. Start the server with --data-dir {}",
        args.data_dir.display()
    );
    0
}
