//! Dependencies between apps: an app's `dependencies` and its groups' name apps or groups by
//! id; each becomes a `depends_on` entry for every app it names, `JOB` in the same service or
//! `SERVICE/JOB` in another. Ids the file does not hold, and circles, are reported.

use super::{Context, Plan};

impl Plan<'_> {
    /// The apps an id names: the app of that id, or every app under the group of that id.
    fn named(&self, id: &str) -> Vec<usize> {
        let under = format!("{}/", id.trim_end_matches('/'));
        self.apps
            .iter()
            .enumerate()
            .filter(|(_, site)| {
                site.id
                    .as_deref()
                    .is_some_and(|app| app == id || app.starts_with(&under))
            })
            .map(|(index, _)| index)
            .collect()
    }

    /// Adds the apps dependency `id` (at `path`) of app `index` names to `into`.
    pub(super) fn depend(
        &self,
        context: &mut Context,
        index: usize,
        path: &str,
        id: &str,
        into: &mut Vec<usize>,
    ) {
        let own = self.apps[index].id.as_deref().unwrap_or_default();
        if own.starts_with(&format!("{}/", id.trim_end_matches('/'))) {
            let why = "names a group that holds this app itself: an app cannot start after itself";
            context.left(path, id, why);
            return;
        }
        let targets = self.named(id);
        if targets.is_empty() {
            let why = "no app or group of this id is in the file: once its app is imported, add it to depends_on as SERVICE/JOB";
            context.left(path, id, why);
            return;
        }
        for target in targets.into_iter().filter(|target| *target != index) {
            if !into.contains(&target) {
                into.push(target);
            }
        }
    }

    /// A group's `dependencies` apply to every app in it and in its groups.
    pub(super) fn group_dependencies(
        &self,
        context: &mut Context,
        dependencies: &mut [Vec<usize>],
    ) {
        for (group_index, group) in self.groups.iter().enumerate() {
            for (path, id) in &group.dependencies {
                let targets = self.named(id);
                if targets.is_empty() {
                    let why = "no app or group of this id is in the file: once its apps are imported, add them to depends_on as SERVICE/JOB";
                    context.left(path, id.as_str(), why);
                    continue;
                }
                if group
                    .id
                    .starts_with(&format!("{}/", id.trim_end_matches('/')))
                    || *id == group.id
                {
                    let why = "names a group that holds this group itself: its apps cannot start after themselves";
                    context.left(path, id.as_str(), why);
                    continue;
                }
                for (index, site) in self.apps.iter().enumerate() {
                    if !self.within(site.group, group_index) {
                        continue;
                    }
                    for &target in &targets {
                        if target != index && !dependencies[index].contains(&target) {
                            dependencies[index].push(target);
                        }
                    }
                }
            }
        }
    }

    /// Whether group `inner` is group `outer` or one of its groups.
    fn within(&self, inner: usize, outer: usize) -> bool {
        let mut at = Some(inner);
        while let Some(group) = at {
            if group == outer {
                return true;
            }
            at = self.groups[group].parent;
        }
        false
    }

    /// Drops any dependency that closes a circle (Marathon refuses them too, but a file written
    /// by hand may hold one), reporting it: the config refuses circles.
    pub(super) fn break_cycles(&self, context: &mut Context, dependencies: &mut [Vec<usize>]) {
        // 0: not seen, 1: on the current path, 2: done.
        let mut state = vec![0u8; dependencies.len()];
        for start in 0..dependencies.len() {
            if state[start] != 0 {
                continue;
            }
            let mut stack = vec![(start, 0usize)];
            state[start] = 1;
            while let Some((node, next)) = stack.pop() {
                if next >= dependencies[node].len() {
                    state[node] = 2;
                    continue;
                }
                stack.push((node, next + 1));
                let target = dependencies[node][next];
                match state[target] {
                    0 => {
                        state[target] = 1;
                        stack.push((target, 0));
                    }
                    1 => {
                        dependencies[node].remove(next);
                        // The entry after the removed one is now at `next`.
                        if let Some(top) = stack.last_mut() {
                            top.1 = next;
                        }
                        let site = &self.apps[node];
                        let target_id = self.apps[target].id.clone().unwrap_or_default();
                        let why = "the apps would each wait for the other: the config refuses dependencies in a circle";
                        context.left(format!("{}.dependencies", site.path), target_id, why);
                    }
                    _ => {}
                }
            }
        }
    }

    /// How a job of service `from` names app `target`'s job: `JOB`, or `SERVICE/JOB`.
    pub(super) fn reference(&self, target: usize, from: &str) -> String {
        let site = &self.apps[target];
        let service = &self.groups[site.group].service;
        match service == from {
            true => site.job.clone(),
            false => format!("{service}/{}", site.job),
        }
    }
}
