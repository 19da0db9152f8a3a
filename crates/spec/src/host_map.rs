//! `env create --map-hosts host-1=host-4`: an environment runs the tasks a file pins to one host
//! on another, so one file serves environments on different machines.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::ServiceSpec;

impl ServiceSpec {
    /// Moves every task pinned to (or allowed on) a host of `map` to the host it maps to.
    pub fn map_hosts(&mut self, map: &BTreeMap<String, String>) {
        if map.is_empty() {
            return;
        }
        let mapped = |host: &mut String| {
            if let Some(to) = map.get(host.as_str()) {
                *host = to.clone();
            }
        };
        for task in self.jobs.iter_mut().flat_map(|job| job.tasks.iter_mut()) {
            if let Some(host) = &mut task.run_on_host {
                mapped(host);
            }
            task.placement.hosts.iter_mut().for_each(mapped);
        }
    }

    /// Every host a task of the service is pinned to or allowed on.
    pub fn named_hosts(&self) -> BTreeSet<String> {
        self.jobs
            .iter()
            .flat_map(|job| job.tasks.iter())
            .flat_map(|task| task.run_on_host.iter().chain(&task.placement.hosts))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_and_allowed_hosts_are_mapped_and_others_stay() {
        let source = "service: s\njobs:\n  - name: a\n    image: x\n    run_on_host: host-1\n  - name: b\n    image: x\n    instances: 2\n    hosts: [host-1, host-2]\n";
        let mut spec = crate::parse_service("s.yaml", source).unwrap();
        assert_eq!(
            spec.named_hosts().into_iter().collect::<Vec<_>>(),
            ["host-1", "host-2"]
        );
        spec.map_hosts(&BTreeMap::from([("host-1".into(), "host-4".into())]));
        assert_eq!(spec.jobs[0].tasks[0].run_on_host.as_deref(), Some("host-4"));
        assert_eq!(spec.jobs[1].tasks[0].placement.hosts, ["host-4", "host-2"]);
    }
}
