//! Dependency order: which jobs can start together, wave by wave, and cycles.

use std::collections::{BTreeMap, BTreeSet};

/// A set of jobs that depend on each other in a circle, named in the order of the circle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DependencyCycle(pub Vec<String>);

impl std::fmt::Display for DependencyCycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names = self.0.clone();
        if let Some(first) = names.first().cloned() {
            names.push(first);
        }
        write!(f, "dependency cycle: {}", names.join(" -> "))
    }
}

/// Groups `nodes` (name, names it depends on) into waves: every node's dependencies are in an
/// earlier wave, and the nodes of one wave can start in parallel. Dependencies on names outside
/// `nodes` are ignored (they are checked elsewhere, or already satisfied). Reverse the waves for
/// the stop order. Names inside a wave are sorted, so the result is deterministic. Takes time
/// linear in the number of nodes and dependencies (Kahn's algorithm, wave by wave).
pub fn dependency_waves<'a>(
    nodes: impl IntoIterator<Item = (&'a str, &'a [String])>,
) -> Result<Vec<Vec<String>>, DependencyCycle> {
    let edges: BTreeMap<&str, Vec<&str>> = nodes
        .into_iter()
        .map(|(name, deps)| (name, deps.iter().map(String::as_str).collect()))
        .collect();
    // For each node, how many of its (distinct, known) dependencies are not placed yet; and for
    // each node, the nodes that depend on it.
    let mut waiting: BTreeMap<&str, usize> = BTreeMap::new();
    let mut dependents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, deps) in &edges {
        let known: BTreeSet<&str> = deps
            .iter()
            .copied()
            .filter(|dep| edges.contains_key(dep))
            .collect();
        waiting.insert(name, known.len());
        for dep in known {
            dependents.entry(dep).or_default().push(name);
        }
    }
    let mut wave: Vec<&str> = waiting
        .iter()
        .filter(|(_, count)| **count == 0)
        .map(|(name, _)| *name)
        .collect();
    let mut placed: BTreeSet<&str> = BTreeSet::new();
    let mut waves = Vec::new();
    while !wave.is_empty() {
        let mut next = Vec::new();
        for name in &wave {
            placed.insert(*name);
            for dependent in dependents.get(name).into_iter().flatten() {
                if let Some(count) = waiting.get_mut(dependent) {
                    *count -= 1;
                    if *count == 0 {
                        next.push(*dependent);
                    }
                }
            }
        }
        next.sort_unstable();
        waves.push(wave.into_iter().map(str::to_owned).collect());
        wave = next;
    }
    if placed.len() < edges.len() {
        return Err(find_cycle(&edges, &placed));
    }
    Ok(waves)
}

/// Walks dependencies from an unplaced node until a name repeats; the repeated stretch is a cycle.
fn find_cycle(edges: &BTreeMap<&str, Vec<&str>>, placed: &BTreeSet<&str>) -> DependencyCycle {
    let start = edges
        .keys()
        .find(|name| !placed.contains(*name))
        .copied()
        .unwrap_or_default();
    let mut path: Vec<&str> = vec![start];
    let mut on_path: BTreeSet<&str> = BTreeSet::from([start]);
    loop {
        let current = *path.last().unwrap_or(&start);
        let next = edges
            .get(current)
            .and_then(|deps| {
                deps.iter()
                    .find(|dep| edges.contains_key(*dep) && !placed.contains(*dep))
            })
            .copied();
        let Some(next) = next else {
            return DependencyCycle(path.iter().map(|s| s.to_string()).collect());
        };
        if on_path.contains(next) {
            let position = path.iter().position(|name| *name == next).unwrap_or(0);
            return DependencyCycle(path[position..].iter().map(|s| s.to_string()).collect());
        }
        on_path.insert(next);
        path.push(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waves(nodes: &[(&str, &[&str])]) -> Result<Vec<Vec<String>>, DependencyCycle> {
        let owned: Vec<(String, Vec<String>)> = nodes
            .iter()
            .map(|(n, d)| (n.to_string(), d.iter().map(|s| s.to_string()).collect()))
            .collect();
        dependency_waves(owned.iter().map(|(n, d)| (n.as_str(), d.as_slice())))
    }

    #[test]
    fn independent_jobs_share_one_wave() {
        assert_eq!(
            waves(&[("b", &[]), ("a", &[])]).unwrap(),
            vec![vec!["a", "b"]]
        );
    }

    #[test]
    fn dependencies_come_first() {
        let result = waves(&[
            ("web", &["api"]),
            ("api", &["db", "cache"]),
            ("db", &[]),
            ("cache", &[]),
        ]);
        assert_eq!(
            result.unwrap(),
            vec![vec!["cache", "db"], vec!["api"], vec!["web"]]
        );
    }

    #[test]
    fn unknown_dependencies_are_ignored() {
        assert_eq!(waves(&[("a", &["elsewhere"])]).unwrap(), vec![vec!["a"]]);
    }

    #[test]
    fn cycle_names_its_members_in_order() {
        let cycle = waves(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"]), ("d", &[])]).unwrap_err();
        assert_eq!(cycle.to_string(), "dependency cycle: a -> b -> c -> a");
    }

    #[test]
    fn a_long_chain_is_ordered_quickly() {
        let names: Vec<String> = (0..1000).map(|n| format!("j{n:04}")).collect();
        let deps: Vec<Vec<String>> = (0..1000).map(|n| names[..n].to_vec()).collect();
        let started = std::time::Instant::now();
        let result = dependency_waves(
            names
                .iter()
                .zip(&deps)
                .map(|(n, d)| (n.as_str(), d.as_slice())),
        );
        assert_eq!(result.unwrap().len(), 1000);
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }

    #[test]
    fn duplicate_dependencies_count_once() {
        assert_eq!(
            waves(&[("a", &["b", "b"]), ("b", &[])]).unwrap(),
            vec![vec!["b"], vec!["a"]]
        );
    }

    #[test]
    fn cycle_reached_through_a_tail_names_only_the_cycle() {
        let cycle = waves(&[("a", &["b"]), ("b", &["c"]), ("c", &["b"])]).unwrap_err();
        assert_eq!(cycle.0, vec!["b", "c"]);
    }
}
