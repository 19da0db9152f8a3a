//! Where the server may place a job's unpinned tasks: `instances` with `hosts` (the hosts to
//! choose among) and `constraints` (labels a host must carry). Pinned tasks (`run_on_host`, or
//! `hosts` alone) are never placed, so constraints on a job whose tasks are all pinned are
//! refused rather than silently ignored.

use std::collections::{BTreeMap, HashSet};

use serde_saphyr::Spanned;

use crate::error::shown;
use crate::model::TaskSpec;
use crate::names::label_problem;
use crate::parse::Checker;
use crate::raw::EnvValue;

impl Checker<'_> {
    /// The hosts `instances` may be placed on, checked like any host names.
    pub(crate) fn eligible_hosts(
        &mut self,
        path: &str,
        hosts: &Spanned<Vec<Spanned<String>>>,
        run_on_host: Option<&Spanned<String>>,
    ) -> Vec<String> {
        if let Some(pinned) = run_on_host {
            let message = "`run_on_host` pins every instance to one host; `hosts` lets the server choose among several: give one of them";
            self.error(&pinned.referenced, format!("{path}.run_on_host"), message);
        }
        if hosts.value.is_empty() {
            let message = "expected at least one host";
            self.error(&hosts.referenced, format!("{path}.hosts"), message);
        }
        let mut seen = HashSet::new();
        let mut eligible = Vec::new();
        for (index, host) in hosts.value.iter().enumerate() {
            let host_path = format!("{path}.hosts[{index}]");
            if !self.check_name(host, &host_path, "host") {
                continue;
            }
            if !seen.insert(host.value.as_str()) {
                let message = format!("duplicate host \"{}\"", shown(&host.value));
                self.error(&host.referenced, &host_path, message);
                continue;
            }
            eligible.push(host.value.clone());
        }
        eligible
    }

    /// Checks `constraints` and gives them to every task the server places.
    pub(crate) fn apply_constraints(
        &mut self,
        path: &str,
        constraints: &Spanned<BTreeMap<String, Spanned<EnvValue>>>,
        tasks: &mut [TaskSpec],
    ) {
        let path = format!("{path}.constraints");
        let mut wanted = BTreeMap::new();
        for (key, value) in &constraints.value {
            let value_text = value.value.clone().into_string();
            let key_path = format!("{path}.{}", shown(key));
            let at = &value.referenced;
            if self.refuse_template_in(at, &key_path, key, "constraints")
                || self.refuse_template_in(at, &key_path, &value_text, "constraints")
            {
                continue;
            }
            if let Some(problem) = label_problem(key, &value_text) {
                self.error(&value.referenced, format!("{path}.{}", shown(key)), problem);
                continue;
            }
            wanted.insert(key.clone(), value_text);
        }
        if !tasks.is_empty() && tasks.iter().all(|task| task.run_on_host.is_some()) {
            let message = "every task of this job is pinned to a host (`run_on_host` or `hosts` alone), so constraints would never apply; use `instances` with `constraints` to let the server choose";
            self.error(&constraints.referenced, &path, message);
            return;
        }
        for task in tasks.iter_mut().filter(|task| task.run_on_host.is_none()) {
            task.placement.constraints.clone_from(&wanted);
        }
    }
}
