//! Readable container names: `TASK_SERVICE_ENV_UNIXTIME`, as in the seed's
//! `/coding-blog_1441006496`, so `docker ps` alone tells what runs.

use crate::types::TaskKey;

pub(crate) fn container_name(key: &TaskKey, unix_seconds: i64, attempt: u32) -> String {
    let base = format!("{}_{}_{}_{}", key.task, key.service, key.env, unix_seconds);
    if attempt == 0 {
        base
    } else {
        format!("{base}-{attempt}")
    }
}
