use super::*;

fn key(job: &str, task: &str) -> TaskKey {
    TaskKey {
        env: "production".into(),
        service: "shop".into(),
        job: job.into(),
        task: task.into(),
    }
}

fn spec(task: &str) -> TaskSpec {
    serde_json::from_value(serde_json::json!({
        "name": task, "image": "i:1", "command": null, "env": {}, "port": 0,
        "run_on_host": null, "resources": {"memory_bytes": null, "nano_cpus": null},
        "init": true, "docker_hostconfig": {}, "docker_config": {}
    }))
    .unwrap()
}

fn host(name: &str) -> HostView {
    HostView {
        name: name.into(),
        ready: true,
        capacity: Some(Capacity {
            memory_bytes: 4 << 30,
            nano_cpus: 2_000_000_000,
        }),
        ..HostView::default()
    }
}

struct Case {
    tasks: Vec<(TaskKey, TaskSpec)>,
}

impl Case {
    fn instances(job: &str, count: usize, edit: impl Fn(&mut TaskSpec)) -> Case {
        let tasks = (1..=count)
            .map(|n| {
                let name = format!("{job}-{n}");
                let mut spec = spec(&name);
                edit(&mut spec);
                (key(job, &name), spec)
            })
            .collect();
        Case { tasks }
    }

    fn place(&self, hosts: &[HostView], stored: &HashMap<TaskKey, StoredPlacement>) -> Decisions {
        let demands: Vec<Demand> = self
            .tasks
            .iter()
            .map(|(key, spec)| Demand { key, spec })
            .collect();
        place(&demands, hosts, stored, "now", &HashMap::new())
    }
}

fn hosts_of(decisions: &Decisions) -> Vec<String> {
    decisions.placed.values().cloned().collect()
}

fn stored(decisions: &Decisions) -> HashMap<TaskKey, StoredPlacement> {
    decisions.changed.iter().cloned().collect()
}

#[test]
fn instances_spread_over_the_hosts_first() {
    let hosts = [host("h1"), host("h2"), host("h3")];
    let decisions = Case::instances("web", 6, |_| {}).place(&hosts, &HashMap::new());
    let mut placed = hosts_of(&decisions);
    placed.sort();
    assert_eq!(placed, ["h1", "h1", "h2", "h2", "h3", "h3"]);
    assert!(decisions.unplaced.is_empty());
    assert!(decisions.changed.iter().all(|(_, p)| p.reason == "placed"));
}

#[test]
fn stored_placements_are_kept_so_nothing_moves_without_a_reason() {
    let hosts = [host("h1"), host("h2")];
    let case = Case::instances("web", 2, |_| {});
    let first = case.place(&hosts, &HashMap::new());
    // A third host joins: nothing moves.
    let more = [host("h1"), host("h2"), host("h3")];
    let again = case.place(&more, &stored(&first));
    assert_eq!(again.placed, first.placed);
    assert!(again.changed.is_empty());
}

#[test]
fn a_lost_or_draining_host_gives_its_tasks_up_and_a_merely_down_one_keeps_them() {
    let case = Case::instances("web", 2, |_| {});
    let first = case.place(&[host("h1"), host("h2")], &HashMap::new());
    let on_h1 = first
        .placed
        .iter()
        .find(|(_, host)| *host == "h1")
        .map(|(key, _)| key.clone())
        .unwrap();

    let down = HostView {
        ready: false,
        ..host("h1")
    };
    let kept = case.place(&[down.clone(), host("h2"), host("h3")], &stored(&first));
    assert!(kept.changed.is_empty(), "moved before --host-down-after");

    let lost = HostView { lost: true, ..down };
    let moved = case.place(&[lost, host("h2"), host("h3")], &stored(&first));
    assert_eq!(
        moved.placed[&on_h1], "h3",
        "spread: h2 has one of the job already"
    );
    assert_eq!(moved.changed.len(), 1);
    assert_eq!(moved.changed[0].1.reason, "moved from h1: host down");

    let draining = HostView {
        draining: true,
        ..host("h1")
    };
    let drained = case.place(&[draining.clone(), host("h2")], &stored(&first));
    assert_eq!(drained.placed[&on_h1], "h2");
    assert_eq!(drained.changed[0].1.reason, "moved from h1: host draining");
    // A draining host still runs the task until its new copy serves; a lost one cannot.
    assert_eq!(drained.changed[0].1.handover_from.as_deref(), Some("h1"));
    assert_eq!(drained.handovers[&on_h1], "h1");
    assert_eq!(moved.changed[0].1.handover_from, None);
    assert!(moved.handovers.is_empty());

    // The hand-over is kept while the old host is there, and dropped once it is not.
    let mut after = stored(&first);
    after.extend(stored(&drained));
    let handing_over = case.place(&[draining.clone(), host("h2")], &after);
    assert!(handing_over.changed.is_empty());
    assert_eq!(handing_over.handovers[&on_h1], "h1");
    let gone = HostView {
        ready: false,
        ..draining
    };
    let without_old = case.place(&[gone, host("h2")], &after);
    assert!(without_old.handovers.is_empty());
}

#[test]
fn hosts_and_constraints_choose_among_hosts() {
    let mut labelled = host("h2");
    labelled.labels.insert("zone".into(), "a".into());
    let hosts = [host("h1"), labelled, host("h3")];
    let zone_a = Case::instances("web", 2, |spec| {
        spec.placement.constraints.insert("zone".into(), "a".into());
    });
    assert_eq!(
        hosts_of(&zone_a.place(&hosts, &HashMap::new())),
        ["h2", "h2"]
    );

    let listed = Case::instances("web", 3, |spec| {
        spec.placement.hosts = vec!["h1".into(), "h3".into()];
    });
    let mut placed = hosts_of(&listed.place(&hosts, &HashMap::new()));
    placed.sort();
    assert_eq!(placed, ["h1", "h1", "h3"]);

    let zone_b = Case::instances("web", 1, |spec| {
        spec.placement.constraints.insert("zone".into(), "b".into());
    });
    let none = zone_b.place(&hosts, &HashMap::new());
    assert_eq!(
        none.unplaced.values().next().unwrap(),
        "no host matches zone=b"
    );
}

#[test]
fn a_fixed_port_is_a_placement_constraint_across_environments() {
    let hosts = [host("h1"), host("h2")];
    let mut case = Case::instances("web", 3, |spec| spec.port = 7002);
    // Another environment pins a task with the same port to h1.
    let mut pinned = spec("other");
    pinned.port = 7002;
    pinned.run_on_host = Some("h1".into());
    let mut other_env = key("web", "other");
    other_env.env = "staging".into();
    case.tasks.push((other_env, pinned));
    let decisions = case.place(&hosts, &HashMap::new());
    assert_eq!(hosts_of(&decisions), ["h2"]);
    assert_eq!(decisions.unplaced.len(), 2);
    assert!(
        decisions
            .unplaced
            .values()
            .all(|reason| reason == "port 7002 already used on every eligible host"),
        "{decisions:?}"
    );
}

#[test]
fn resources_are_reserved_against_capacity() {
    let hosts = [host("h1"), host("h2")];
    let case = Case::instances("db", 3, |spec| spec.resources.memory_bytes = Some(3 << 30));
    let decisions = case.place(&hosts, &HashMap::new());
    assert_eq!(decisions.placed.len(), 2);
    assert_eq!(
        decisions.unplaced.values().next().unwrap(),
        "no host has 3 GiB free"
    );
    let cpu = Case::instances("cpu", 3, |spec| {
        spec.resources.nano_cpus = Some(1_500_000_000)
    });
    let decisions = cpu.place(&hosts, &HashMap::new());
    assert_eq!(
        decisions.unplaced.values().next().unwrap(),
        "no host has 1.5 CPUs free"
    );
}

#[test]
fn a_host_of_unknown_size_takes_reserving_tasks_only_when_the_known_ones_are_full() {
    let unknown = HostView {
        capacity: None,
        ..host("a-new")
    };
    let hosts = [unknown, host("h1"), host("h2")];
    // Four tasks of 2 GiB: two fit on each known host, so none goes to the new one, though
    // spreading alone would put one there first (fewest tasks, first by name).
    let case = Case::instances("db", 4, |spec| spec.resources.memory_bytes = Some(2 << 30));
    let decisions = case.place(&hosts, &HashMap::new());
    assert!(
        !hosts_of(&decisions).contains(&"a-new".to_owned()),
        "{:?}",
        hosts_of(&decisions)
    );
    // A fifth has no room on a known host: the new one, rather than nowhere.
    let case = Case::instances("db", 5, |spec| spec.resources.memory_bytes = Some(2 << 30));
    let decisions = case.place(&hosts, &HashMap::new());
    assert_eq!(decisions.placed.len(), 5);
    assert_eq!(
        hosts_of(&decisions)
            .iter()
            .filter(|host| *host == "a-new")
            .count(),
        1
    );
    // Tasks that reserve nothing spread over every host as before.
    let light = Case::instances("web", 3, |_| {});
    let decisions = light.place(&hosts, &HashMap::new());
    assert!(hosts_of(&decisions).contains(&"a-new".to_owned()));
}

#[test]
fn nothing_ready_or_everything_draining_says_so() {
    let case = Case::instances("web", 1, |_| {});
    let down = HostView {
        ready: false,
        ..host("h1")
    };
    assert_eq!(
        case.place(&[down], &HashMap::new())
            .unplaced
            .values()
            .next()
            .unwrap(),
        "no host is ready: no agent is connected"
    );
    let draining = HostView {
        draining: true,
        ..host("h1")
    };
    assert_eq!(
        case.place(&[draining], &HashMap::new())
            .unplaced
            .values()
            .next()
            .unwrap(),
        "every matching host is draining (h1)"
    );
}

#[test]
fn what_other_services_take_counts_as_a_placement_of_all_would() {
    let hosts = [host("h1"), host("h2")];
    // Another service already has a task on port 7002 on h1 and fills most of h2's memory.
    let mut others: HashMap<String, Load> = HashMap::new();
    let mut on_port = spec("other");
    on_port.port = 7002;
    others.entry("h1".into()).or_default().add(&on_port);
    let mut big = spec("big");
    big.resources.memory_bytes = Some(3 << 30);
    others.entry("h2".into()).or_default().add(&big);

    let case = Case::instances("web", 1, |spec| spec.port = 7002);
    let demands: Vec<Demand> = case
        .tasks
        .iter()
        .map(|(key, spec)| Demand { key, spec })
        .collect();
    let decisions = place(&demands, &hosts, &HashMap::new(), "now", &others);
    assert_eq!(hosts_of(&decisions), ["h2"]);

    let case = Case::instances("db", 1, |spec| spec.resources.memory_bytes = Some(2 << 30));
    let demands: Vec<Demand> = case
        .tasks
        .iter()
        .map(|(key, spec)| Demand { key, spec })
        .collect();
    let decisions = place(&demands, &hosts, &HashMap::new(), "now", &others);
    assert_eq!(hosts_of(&decisions), ["h1"], "h2 has only 1 GiB left");

    // Taking the other service away frees what it took.
    let mut total = others["h2"].clone();
    total.remove_all(&others["h2"]);
    assert_eq!(total, Load::default());
}
