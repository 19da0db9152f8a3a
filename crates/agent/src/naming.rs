//! Readable names of what the agent makes on a host, so `docker ps` and `docker volume ls` alone
//! tell what is there. Containers: `TASK_SERVICE_ENV_UNIXTIME`, as in the seed's
//! `/coding-blog_1441006496`. Volumes: `VOLUME_TASK_SERVICE_ENV_CLUSTER8`.

use cj_api::agent::TaskKey;

pub(crate) fn container_name(key: &TaskKey, unix_seconds: i64, attempt: u32) -> String {
    let base = format!("{}_{}_{}_{}", key.task, key.service, key.env, unix_seconds);
    if attempt == 0 {
        base
    } else {
        format!("{base}-{attempt}")
    }
}

/// The engine's name of a task's volume (see [`TaskKey::volume_name`]).
pub(crate) fn volume_name(volume: &str, key: &TaskKey, cluster: &str) -> String {
    key.volume_name(volume, cluster)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> TaskKey {
        TaskKey {
            env: "production".into(),
            service: "blog".into(),
            job: "db".into(),
            task: "db-1".into(),
        }
    }

    #[test]
    fn container_names_read_task_service_env_time() {
        assert_eq!(
            container_name(&key(), 1_441_006_496, 0),
            "db-1_blog_production_1441006496"
        );
        assert_eq!(
            container_name(&key(), 1_441_006_496, 2),
            "db-1_blog_production_1441006496-2"
        );
    }

    #[test]
    fn volume_names_carry_the_cluster_so_installations_never_share_one() {
        let name = volume_name("mysql-data", &key(), "0123456789abcdef");
        assert_eq!(name, "mysql-data_db-1_blog_production_01234567");
        assert_ne!(
            name,
            volume_name("mysql-data", &key(), "fedcba9876543210"),
            "another cluster"
        );
        assert_eq!(
            volume_name("v", &key(), "abc"),
            "v_db-1_blog_production_abc",
            "a short cluster id is used whole"
        );
        let staging = TaskKey {
            env: "staging".into(),
            ..key()
        };
        assert_ne!(
            volume_name("v", &key(), "c"),
            volume_name("v", &staging, "c")
        );
    }
}
