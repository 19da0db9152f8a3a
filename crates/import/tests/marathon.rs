//! Marathon apps and groups, written small by hand, one construct each: what the service files
//! say once the config's own parser has read them, and what the report says about the rest.
//! Every file written must be one `push` accepts.

mod common;

use cj_spec::{JobSpec, Probe, ServiceSpec, TaskSpec};
use coding_job_import::{Format, Import, Options, Source, import};

/// Imports `json` (as `file`), and checks every file written as `push` would, with every
/// reported variable set.
fn convert_as(file: &str, json: &str, options: &Options) -> (Import, Vec<ServiceSpec>) {
    let source = Source { file, text: json };
    let imported = import(Format::Marathon, &source, options)
        .unwrap_or_else(|error| panic!("not imported: {error}"));
    let specs = common::accepted_by_push(&imported).unwrap_or_else(|problem| panic!("{problem}"));
    (imported, specs)
}

fn convert(json: &str) -> (Import, Vec<ServiceSpec>) {
    convert_as("app.json", json, &Options::default())
}

/// The only job of the only service.
fn only_job(specs: &[ServiceSpec]) -> &JobSpec {
    assert_eq!(specs.len(), 1, "one service");
    assert_eq!(specs[0].jobs.len(), 1, "one job");
    &specs[0].jobs[0]
}

fn first_task(job: &JobSpec) -> &TaskSpec {
    &job.tasks[0]
}

/// Why the construct at `path` was not carried (and what it was, before the reason).
fn left(imported: &Import, path: &str) -> String {
    let found: Vec<String> = imported
        .not_carried
        .iter()
        .filter(|left| left.path == path)
        .map(|left| format!("{} ({})", left.what, left.why))
        .collect();
    assert!(
        !found.is_empty(),
        "nothing left at {path}; left: {:#?}",
        imported.not_carried
    );
    found.join("\n")
}

fn notes(imported: &Import, path: &str) -> String {
    let found: Vec<&str> = imported
        .notes
        .iter()
        .filter(|note| note.path == path)
        .map(|note| note.note.as_str())
        .collect();
    assert!(
        !found.is_empty(),
        "no note at {path}; notes: {:#?}",
        imported.notes
    );
    found.join("\n")
}

fn is_left(imported: &Import, path: &str) -> bool {
    imported.not_carried.iter().any(|left| left.path == path)
}

#[test]
fn an_app_alone_is_one_service_named_after_the_last_segment_of_its_id() {
    let app = r#"{"id": "/shop/web", "instances": 3, "cpus": 0.5, "mem": 256, "disk": 100,
        "container": {"type": "DOCKER", "docker": {"image": "nginx:1.25"}}}"#;
    let (imported, specs) = convert(app);
    assert_eq!(imported.files[0].path, "web.yaml");
    let job = only_job(&specs);
    assert_eq!(specs[0].service, "web");
    assert_eq!(job.name, "web");
    assert_eq!(job.tasks.len(), 3);
    let task = first_task(job);
    assert_eq!(task.image.as_deref(), Some("nginx:1.25"));
    assert_eq!(task.resources.memory_bytes, Some(256 << 20));
    assert_eq!(task.resources.nano_cpus, Some(500_000_000));
    assert!(left(&imported, "disk").contains("disk space"));
    assert!(notes(&imported, "cpus").contains("NanoCpus"));

    let options = Options {
        project: Some("storefront"),
        ..Options::default()
    };
    let (imported, specs) = convert_as("app.json", app, &options);
    assert_eq!(imported.files[0].path, "storefront.yaml");
    assert_eq!(only_job(&specs).name, "web");
}

#[test]
fn a_group_is_a_service_per_group_holding_apps_and_dependencies_cross_them() {
    let group = r#"{
      "id": "/product",
      "apps": [
        {"id": "frontend", "cmd": "serve", "dependencies": ["database/db", "/product/cache"]},
        {"id": "/product/cache", "cmd": "cache"}
      ],
      "groups": [
        {"id": "database", "apps": [{"id": "db", "cmd": "db"}]},
        {"id": "/product/empty", "apps": []},
        {"id": "/product/workers", "dependencies": ["/product/database"],
         "apps": [{"id": "worker", "cmd": "work", "dependencies": ["../frontend", "/elsewhere/app"]}]}
      ]
    }"#;
    let (imported, specs) = convert(group);
    let services: Vec<&str> = specs.iter().map(|spec| spec.service.as_str()).collect();
    assert_eq!(services, ["product", "product-database", "product-workers"]);
    let frontend = specs[0].job("frontend").unwrap();
    assert_eq!(frontend.depends_on, ["product-database/db", "cache"]);
    let worker = specs[2].job("worker").unwrap();
    assert_eq!(
        worker.depends_on,
        ["product/frontend", "product-database/db"]
    );
    assert!(
        left(&imported, "groups[2].apps[0].dependencies[1]").contains("no app or group of this id")
    );

    // The top group is named after the file, or the project, when it is the root.
    let root = r#"{"id": "/", "apps": [{"id": "/api", "cmd": "api"}]}"#;
    let (_, specs) = convert_as("dir/platform.json", root, &Options::default());
    assert_eq!(specs[0].service, "platform");
}

#[test]
fn dependencies_in_a_circle_are_broken_and_reported() {
    let group = r#"{"id": "/g", "apps": [
        {"id": "a", "cmd": "a", "dependencies": ["b"]},
        {"id": "b", "cmd": "b", "dependencies": ["a"]}]}"#;
    let (imported, specs) = convert(group);
    let depends: Vec<&Vec<String>> = specs[0].jobs.iter().map(|job| &job.depends_on).collect();
    assert_eq!(depends, [&vec!["b".to_string()], &Vec::new()]);
    assert!(left(&imported, "apps[1].dependencies").contains("circle"));
}

#[test]
fn bridged_port_mappings_give_the_container_port_and_lose_the_host_port() {
    let app = r#"{"id": "web", "instances": 2, "container": {"type": "DOCKER", "docker": {
        "image": "python:3", "network": "BRIDGE", "portMappings": [
          {"containerPort": 8080, "hostPort": 80, "servicePort": 10000, "protocol": "tcp"},
          {"containerPort": 161, "hostPort": 0, "protocol": "udp"}]}}}"#;
    let (imported, specs) = convert(app);
    assert_eq!(first_task(only_job(&specs)).port, 8080);
    let path = "container.docker.portMappings";
    assert!(
        notes(&imported, &format!("{path}[0].hostPort")).contains("hostPort 80 is not carried")
    );
    assert!(left(&imported, &format!("{path}[0].servicePort")).contains("marathon-lb"));
    assert!(left(&imported, &format!("{path}[1]")).starts_with("161/udp"));
    assert!(notes(&imported, "container.docker.network").contains("host's network"));
    assert!(notes(&imported, "instances").contains("a host of its own"));
}

#[test]
fn marathon_1_5_networks_read_the_containers_port_mappings() {
    let bridge = r#"{"id": "web", "networks": [{"mode": "container/bridge"}],
        "container": {"type": "DOCKER", "docker": {"image": "nginx"},
          "portMappings": [{"containerPort": 80, "hostPort": 0}]}}"#;
    let (_, specs) = convert(bridge);
    assert_eq!(first_task(only_job(&specs)).port, 80);

    let overlay = r#"{"id": "web", "networks": [{"mode": "container", "name": "dcos"}],
        "container": {"type": "DOCKER", "docker": {"image": "nginx"},
          "portMappings": [{"containerPort": 0}]}}"#;
    let (imported, specs) = convert(overlay);
    let task = first_task(only_job(&specs));
    assert!(task.auto_port);
    assert_eq!(task.env["PORT0"], "{{ port }}");
    assert!(left(&imported, "networks[0]").starts_with("dcos (an IP address per task"));

    let host = r#"{"id": "web", "networks": [{"mode": "host"}], "portDefinitions": [{"port": 0}],
        "container": {"type": "DOCKER", "docker": {"image": "nginx"}}}"#;
    let (_, specs) = convert(host);
    assert!(first_task(only_job(&specs)).auto_port);
}

#[test]
fn host_ports_are_fixed_when_required_and_allocated_when_marathon_chose_them() {
    let required = r#"{"id": "a", "cmd": "a", "requirePorts": true,
        "portDefinitions": [{"port": 9990, "name": "admin"}, {"port": 4140}]}"#;
    let (imported, specs) = convert(required);
    assert_eq!(first_task(only_job(&specs)).port, 9990);
    assert!(left(&imported, "portDefinitions[1]").contains("nothing reserves 4140"));

    let random = r#"{"id": "a", "cmd": "a", "portDefinitions": [{"port": 0}, {"port": 0}]}"#;
    let (imported, specs) = convert(random);
    assert!(first_task(only_job(&specs)).auto_port);
    assert!(left(&imported, "portDefinitions[1]").contains("$PORT1"));

    // requirePorts false: the number was a service port, unless nothing reads $PORT0.
    let service_port = r#"{"id": "a", "cmd": "a", "ports": [1980]}"#;
    let (imported, specs) = convert(service_port);
    assert_eq!(first_task(only_job(&specs)).port, 1980);
    assert!(notes(&imported, "ports[0]").contains("taken to listen on 1980"));

    let read_by_a_check = r#"{"id": "a", "cmd": "a", "ports": [1980],
        "healthChecks": [{"protocol": "HTTP", "path": "/ping"}]}"#;
    let (_, specs) = convert(read_by_a_check);
    let task = first_task(only_job(&specs));
    assert!(task.auto_port);
    assert_eq!(
        task.check.as_ref().unwrap().probe,
        Probe::Http {
            url: "http://127.0.0.1:{{port}}/ping".into()
        }
    );
}

#[test]
fn cmd_runs_in_a_shell_with_port0_as_port() {
    let auto = r#"{"id": "a", "cmd": "python -m http.server $PORT0 --bind ${HOST}", "ports": [0],
        "container": {"docker": {"image": "python:3"}}}"#;
    let (imported, specs) = convert(auto);
    let task = first_task(only_job(&specs));
    let command = task.command.as_ref().unwrap();
    assert_eq!(
        command,
        &["sh", "-c", "python -m http.server $PORT --bind ${HOST}"]
    );
    assert!(task.auto_port);
    assert!(
        !task.env.contains_key("PORT0"),
        "the command reads $PORT itself"
    );
    assert_eq!(task.docker_config["Entrypoint"], serde_json::json!([""]));
    let said = notes(&imported, "cmd");
    assert!(said.contains("rewritten as $PORT"), "{said}");
    assert!(said.contains("$HOST set by Marathon"), "{said}");

    let fixed = r#"{"id": "a", "cmd": "serve --port $PORT0", "requirePorts": true,
        "portDefinitions": [{"port": 8080}]}"#;
    let (imported, specs) = convert(fixed);
    let task = first_task(only_job(&specs));
    assert_eq!(task.port, 8080);
    assert_eq!(task.env["PORT"], "8080");
    assert_eq!(task.command.as_ref().unwrap()[2], "serve --port $PORT");
    assert!(notes(&imported, "cmd").contains("env PORT is set to 8080"));
    assert!(notes(&imported, "cmd").contains("names no Docker image"));
}

#[test]
fn args_are_the_argv_of_the_images_entrypoint() {
    let app = r#"{"id": "a", "args": ["--port", "8080", "{{ not a template }}"],
        "container": {"docker": {"image": "busybox"}}}"#;
    let (_, specs) = convert(app);
    let task = first_task(only_job(&specs));
    let command = task.command.as_ref().unwrap();
    assert_eq!(command[..2], ["--port", "8080"]);
    assert!(
        command[2].contains("{% raw %}"),
        "template syntax kept as text"
    );
    assert!(!task.docker_config.contains_key("Entrypoint"));

    let both = r#"{"id": "a", "cmd": "run", "args": ["x"]}"#;
    let (imported, _) = convert(both);
    assert!(left(&imported, "args").contains("never both"));
}

#[test]
fn env_values_are_kept_and_secret_references_become_secret_variables() {
    let app = r#"{"id": "a", "cmd": "a",
        "env": {"LOG_LEVEL": "info", "WORKERS": 4, "DB_PASSWORD": {"secret": "db"},
                "API_TOKEN": "t0ken", "BAD": {"nested": true}},
        "secrets": {"db": {"source": "/prod/db/password"}, "unused": {"source": "/x"}}}"#;
    let (imported, specs) = convert(app);
    let job = only_job(&specs);
    let task = first_task(job);
    assert_eq!(task.env["LOG_LEVEL"], "info");
    assert_eq!(task.env["WORKERS"], "4");
    assert_eq!(task.env["DB_PASSWORD"], "{{ vars.prod_db_password }}");
    assert_eq!(job.secret_env, ["API_TOKEN", "DB_PASSWORD"]);
    let variable = &imported.variables[0];
    assert_eq!(variable.name, "prod_db_password");
    assert!(variable.secret);
    assert_eq!(variable.used_at, ["env.DB_PASSWORD"]);
    assert!(notes(&imported, "env.API_TOKEN").contains("looks secret"));
    assert!(left(&imported, "env.BAD").contains("expected a string"));
    assert!(left(&imported, "secrets.unused").contains("no env variable"));
    assert!(!is_left(&imported, "secrets.db"));
}

#[test]
fn the_first_health_check_that_can_be_probed_is_the_check() {
    let app = r#"{"id": "a", "cmd": "a", "requirePorts": true,
        "portDefinitions": [{"port": 8080}, {"port": 9090}, {"port": 0}],
        "healthChecks": [
          {"protocol": "HTTP", "portIndex": 2, "path": "/random"},
          {"protocol": "MESOS_HTTP", "portIndex": 0, "path": "health", "gracePeriodSeconds": 30,
           "intervalSeconds": 10, "timeoutSeconds": 3, "maxConsecutiveFailures": 0,
           "ignoreHttp1xx": true},
          {"protocol": "TCP", "port": 9090}
        ]}"#;
    let (imported, specs) = convert(app);
    let check = first_task(only_job(&specs)).check.clone().unwrap();
    assert_eq!(
        check.probe,
        Probe::Http {
            url: "http://127.0.0.1:8080/health".into()
        }
    );
    assert_eq!(
        (check.interval_ms, check.timeout_ms, check.start_period_ms),
        (10_000, 3_000, 30_000)
    );
    assert_eq!(check.retries, 100);
    assert!(notes(&imported, "healthChecks[1].maxConsecutiveFailures").contains("never killed"));
    assert!(left(&imported, "healthChecks[0]").contains("random host port"));
    assert!(left(&imported, "healthChecks[1].ignoreHttp1xx").contains("2xx"));
    assert!(left(&imported, "healthChecks[2]").contains("healthChecks[1] was carried"));
}

#[test]
fn tcp_and_command_checks_probe_a_port_or_run_in_the_container() {
    let tcp = r#"{"id": "a", "cmd": "a", "ports": [0],
        "healthChecks": [{"protocol": "TCP", "portIndex": 0}]}"#;
    let (imported, specs) = convert(tcp);
    let check = first_task(only_job(&specs)).check.clone().unwrap();
    assert_eq!(check.probe, Probe::Tcp { port: 0 }, "the allocated port");
    assert!(notes(&imported, "healthChecks[0]").contains("gracePeriodSeconds 300"));
    assert_eq!(
        (check.interval_ms, check.start_period_ms),
        (60_000, 300_000)
    );

    let tcp_on_a_port = r#"{"id": "a", "cmd": "a",
        "healthChecks": [{"protocol": "MESOS_TCP", "port": 9200}]}"#;
    let (_, specs) = convert(tcp_on_a_port);
    let check = first_task(only_job(&specs)).check.clone().unwrap();
    assert_eq!(check.probe, Probe::Tcp { port: 9200 });

    let command = r#"{"id": "a", "cmd": "a", "requirePorts": true, "portDefinitions": [{"port": 80}],
        "healthChecks": [{"protocol": "COMMAND", "command": {"value": "curl -f localhost:$PORT0"}}]}"#;
    let (_, specs) = convert(command);
    let check = first_task(only_job(&specs)).check.clone().unwrap();
    assert_eq!(
        check.probe,
        Probe::Exec {
            command: vec!["sh".into(), "-c".into(), "curl -f localhost:$PORT".into()]
        }
    );
}

#[test]
fn a_readiness_check_is_the_check_only_without_a_health_check() {
    let app = r#"{"id": "a", "cmd": "a", "portDefinitions": [{"port": 0, "name": "http-api"}],
        "readinessChecks": [{"name": "ready", "protocol": "HTTP", "path": "/ready",
          "portName": "http-api", "intervalSeconds": 5, "timeoutSeconds": 2,
          "httpStatusCodesForReady": [200, 302]}]}"#;
    let (imported, specs) = convert(app);
    let check = first_task(only_job(&specs)).check.clone().unwrap();
    assert_eq!(
        check.probe,
        Probe::Http {
            url: "http://127.0.0.1:{{port}}/ready".into()
        }
    );
    assert_eq!((check.interval_ms, check.timeout_ms), (5_000, 2_000));
    assert!(notes(&imported, "readinessChecks[0]").contains("carried as the job's check"));
    assert!(left(&imported, "readinessChecks[0].httpStatusCodesForReady").contains("302"));

    let both = r#"{"id": "a", "cmd": "a", "ports": [0],
        "healthChecks": [{"protocol": "HTTP", "path": "/health"}],
        "readinessChecks": [{"protocol": "HTTP", "path": "/ready"}]}"#;
    let (imported, _) = convert(both);
    assert!(left(&imported, "readinessChecks[0]").contains("serves as both"));
}

#[test]
fn constraints_become_spread_hosts_or_labels_and_the_rest_is_reported() {
    let app = r#"{"id": "a", "cmd": "a", "instances": 3, "requirePorts": true,
        "portDefinitions": [{"port": 8080}],
        "constraints": [
          ["hostname", "UNIQUE"],
          ["rack", "CLUSTER", "r1"],
          ["@zone", "LIKE", "us-east-1a"],
          ["disk", "LIKE", "ssd|nvme"],
          ["rack", "GROUP_BY", "2"],
          ["hostname", "UNLIKE", "bad-host"],
          ["hostname", "MAX_PER", "2"],
          "hostname:LIKE:node-1|node-2"
        ]}"#;
    let (imported, specs) = convert(app);
    let task = first_task(only_job(&specs));
    assert_eq!(task.placement.hosts, ["node-1", "node-2"]);
    let constraints: Vec<(&str, &str)> = task
        .placement
        .constraints
        .iter()
        .map(|(key, value)| (key.as_str(), value.as_str()))
        .collect();
    assert_eq!(constraints, [("rack", "r1"), ("zone", "us-east-1a")]);
    assert!(notes(&imported, "constraints[0]").contains("never share a host"));
    assert!(notes(&imported, "constraints[1]").contains("--label"));
    assert!(left(&imported, "constraints[3]").contains("one exact label value"));
    assert!(left(&imported, "constraints[4]").contains("not over the values of a label"));
    assert!(left(&imported, "constraints[5]").contains("not exclude them"));
    assert!(left(&imported, "constraints[6]").contains("per-host maximum"));

    let pinned = r#"{"id": "a", "cmd": "a", "constraints": [["hostname", "CLUSTER", "db-1"]]}"#;
    let (_, specs) = convert(pinned);
    let job = only_job(&specs);
    assert_eq!(job.tasks.len(), 1);
    assert_eq!(first_task(job).placement.hosts, ["db-1"]);

    let regex = r#"{"id": "a", "cmd": "a", "constraints": [["hostname", "LIKE", "srv2.*"]]}"#;
    let (imported, _) = convert(regex);
    assert!(left(&imported, "constraints[0]").contains("pattern of host names"));
}

#[test]
fn the_upgrade_strategy_sets_the_batch_size_and_says_how() {
    let with_port = r#"{"id": "a", "cmd": "a", "instances": 6, "requirePorts": true,
        "portDefinitions": [{"port": 80}],
        "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0.2}}"#;
    let (imported, specs) = convert(with_port);
    assert_eq!(only_job(&specs).update.batch_size, 3);
    assert!(notes(&imported, "upgradeStrategy").contains("update.batch_size 3"));

    let without_port = r#"{"id": "a", "cmd": "a", "instances": 10,
        "upgradeStrategy": {"minimumHealthCapacity": 0.9, "maximumOverCapacity": 0.2}}"#;
    let (_, specs) = convert(without_port);
    assert_eq!(only_job(&specs).update.batch_size, 3);

    let all_healthy = r#"{"id": "a", "cmd": "a", "instances": 4, "ports": [0],
        "upgradeStrategy": {"minimumHealthCapacity": 1, "maximumOverCapacity": 0}}"#;
    let (imported, specs) = convert(all_healthy);
    assert_eq!(only_job(&specs).update.batch_size, 1);
    assert!(notes(&imported, "upgradeStrategy").contains("one at a time"));
}

#[test]
fn marathon_lb_labels_give_a_route_and_other_labels_are_reported() {
    let app = r#"{"id": "/web", "container": {"docker": {"image": "nginx",
          "network": "BRIDGE", "portMappings": [{"containerPort": 80}]}},
        "labels": {"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "shop.example.com",
                   "owner": "team-a"}}"#;
    let (imported, specs) = convert(app);
    assert_eq!(only_job(&specs).route.as_deref(), Some("web"));
    assert!(notes(&imported, "labels.HAPROXY_0_VHOST").contains("`route: web`"));
    assert!(left(&imported, "labels.HAPROXY_GROUP").contains("`route:`"));
    assert!(left(&imported, "labels.owner").contains("metadata"));

    // Two jobs of an import never share a route.
    let group = r#"{"id": "/", "groups": [
        {"id": "/a", "apps": [{"id": "web", "cmd": "a", "ports": [0], "labels": {"HAPROXY_0_VHOST": "a"}}]},
        {"id": "/b", "apps": [{"id": "web", "cmd": "b", "ports": [0], "labels": {"HAPROXY_0_VHOST": "b"}}]}]}"#;
    let (_, specs) = convert(group);
    let routes: Vec<Option<&str>> = specs
        .iter()
        .map(|spec| spec.jobs[0].route.as_deref())
        .collect();
    assert_eq!(routes, [Some("web"), Some("b-web")]);
}

#[test]
fn host_volumes_are_binds_and_persistent_or_external_ones_named_volumes() {
    let app = r#"{"id": "db", "cmd": "db", "container": {"type": "DOCKER",
        "docker": {"image": "postgres:16"},
        "volumes": [
          {"containerPath": "/etc/conf", "hostPath": "/srv/conf", "mode": "RO"},
          {"containerPath": "/var/lib/postgresql", "hostPath": "/srv/pg", "mode": "RW"},
          {"containerPath": "pgdata", "mode": "RW", "persistent": {"size": 1024}},
          {"containerPath": "/backup", "mode": "RW",
           "external": {"name": "pg_backup", "provider": "dvdi", "options": {"dvdi/driver": "rexray"}}},
          {"containerPath": "/run/secrets/key", "secret": "key"}
        ]}}"#;
    let (imported, specs) = convert(app);
    let task = first_task(only_job(&specs));
    assert_eq!(
        task.docker_hostconfig["Binds"],
        serde_json::json!(["/srv/conf:/etc/conf:ro", "/srv/pg:/var/lib/postgresql:rw"])
    );
    let volumes: Vec<(&str, &str)> = task
        .volumes
        .iter()
        .map(|volume| (volume.name.as_str(), volume.mount.as_str()))
        .collect();
    assert_eq!(
        volumes,
        [
            ("pgdata", "/mnt/mesos/sandbox/pgdata"),
            ("pg-backup", "/backup")
        ]
    );
    let base = "container.volumes";
    assert!(notes(&imported, &format!("{base}[2].containerPath")).contains("sandbox"));
    assert!(left(&imported, &format!("{base}[2].persistent.size")).contains("no size"));
    assert!(left(&imported, &format!("{base}[3].external.provider")).contains("not attached"));
    assert!(left(&imported, &format!("{base}[4]")).contains("secret as a file"));
}

#[test]
fn docker_settings_and_parameters_become_engine_api_fields() {
    let app = r#"{"id": "a", "user": "nobody", "container": {"type": "DOCKER",
        "docker": {"image": "busybox", "privileged": true, "forcePullImage": true,
          "parameters": [
            {"key": "cap-add", "value": "NET_ADMIN"},
            {"key": "label", "value": "team=infra"},
            {"key": "log-driver", "value": "syslog"},
            {"key": "name", "value": "fixed"},
            {"key": "weird-flag", "value": "1"}]}}}"#;
    let (imported, specs) = convert(app);
    let task = first_task(only_job(&specs));
    assert_eq!(task.docker_hostconfig["Privileged"], true);
    assert_eq!(
        task.docker_hostconfig["CapAdd"],
        serde_json::json!(["NET_ADMIN"])
    );
    assert_eq!(task.docker_hostconfig["LogConfig"]["Type"], "syslog");
    assert_eq!(task.docker_config["User"], "nobody");
    assert_eq!(task.docker_config["Labels"]["team"], "infra");
    let docker = "container.docker";
    assert!(left(&imported, &format!("{docker}.forcePullImage")).contains("new tag"));
    assert!(left(&imported, &format!("{docker}.parameters[3]")).contains("names each container"));
    assert!(left(&imported, &format!("{docker}.parameters[4]")).contains("--weird-flag"));
}

#[test]
fn mesos_settings_are_reported_with_the_reason() {
    let app = r#"{"id": "a", "cmd": "a", "fetch": [{"uri": "https://x/a.tgz"}], "uris": ["https://x/b"],
        "acceptedResourceRoles": ["slave_public"], "ipAddress": {"networkName": "dcos"},
        "residency": {"taskLostBehavior": "WAIT_FOREVER"}, "taskKillGracePeriodSeconds": 30,
        "backoffSeconds": 5, "backoffFactor": 1.15, "executor": "", "gpus": 1,
        "unreachableStrategy": {"inactiveAfterSeconds": 60, "expungeAfterSeconds": 120},
        "frobnicate": true}"#;
    let (imported, _) = convert(app);
    assert!(left(&imported, "fetch").contains("downloads nothing"));
    assert!(left(&imported, "uris").contains("downloads nothing"));
    assert!(left(&imported, "acceptedResourceRoles").contains("--label"));
    assert!(left(&imported, "ipAddress").contains("host's network"));
    assert!(left(&imported, "residency").contains("empty one"));
    assert!(left(&imported, "taskKillGracePeriodSeconds").contains("SIGKILL"));
    assert!(left(&imported, "backoffSeconds").contains("doubling"));
    assert!(left(&imported, "gpus").contains("GPU"));
    assert!(left(&imported, "unreachableStrategy").contains("--host-down-after"));
    assert!(left(&imported, "frobnicate").contains("not a construct"));
    // Marathon's defaults and empty values say nothing the user chose.
    assert!(!is_left(&imported, "backoffFactor"));
    assert!(!is_left(&imported, "executor"));
}

#[test]
fn the_state_in_a_get_answer_is_not_configuration() {
    let app = r#"{"app": {"id": "/a", "cmd": "a", "version": "2015-09-28T19:47:37.681Z",
        "versionInfo": {"lastScalingAt": "2015-09-28T19:47:37.681Z"},
        "tasksRunning": 2, "deployments": [], "tasks": [{"id": "a.1"}]}}"#;
    let (imported, specs) = convert(app);
    assert_eq!(only_job(&specs).name, "a");
    assert!(!is_left(&imported, "app.version"));
    assert!(!is_left(&imported, "app.versionInfo"));
    assert!(left(&imported, "app.tasksRunning").contains("state of the running app"));
    assert!(left(&imported, "app.tasks").contains("state of the running app"));
}

#[test]
fn values_outside_the_configs_bounds_are_clamped_or_left_and_said() {
    let long_id = "x".repeat(70);
    let app = format!(
        r#"{{"id": "/{long_id}", "cmd": "a", "instances": 5000, "mem": 2, "cpus": 0.001,
        "ports": [0],
        "healthChecks": [{{"protocol": "TCP", "intervalSeconds": 7200, "timeoutSeconds": 0,
          "gracePeriodSeconds": 99999, "maxConsecutiveFailures": 500}}]}}"#
    );
    let (imported, specs) = convert(&app);
    let job = only_job(&specs);
    assert!(job.name.len() <= 58);
    assert_eq!(job.tasks.len(), 1000);
    let task = first_task(job);
    assert_eq!(task.resources.memory_bytes, Some(6 << 20));
    assert_eq!(task.resources.nano_cpus, None);
    let check = task.check.clone().unwrap();
    assert_eq!(
        (
            check.interval_ms,
            check.timeout_ms,
            check.start_period_ms,
            check.retries
        ),
        (3_600_000, 100, 3_600_000, 100)
    );
    assert!(notes(&imported, "instances").contains("1000"));
    assert!(notes(&imported, "mem").contains("6m"));
    assert!(left(&imported, "cpus").contains("without a CPU limit"));
    assert!(notes(&imported, "healthChecks[0].intervalSeconds").contains("1h"));

    let suspended = r#"{"id": "a", "cmd": "a", "instances": 0}"#;
    let (imported, specs) = convert(suspended);
    assert_eq!(only_job(&specs).tasks.len(), 1);
    assert!(notes(&imported, "instances").contains("suspended"));
}

#[test]
fn an_image_docker_would_refuse_is_left_out_and_said() {
    let app = r#"{"id": "a", "container": {"docker": {"image": "mesosphere:marathon/latest"}}}"#;
    let (imported, specs) = convert(app);
    assert_eq!(first_task(only_job(&specs)).image, None);
    assert!(left(&imported, "container.docker.image").contains("not an image reference"));
}

#[test]
fn unreadable_files_are_errors_located_where_they_fail() {
    let source = Source {
        file: "bad.json",
        text: "{\n  \"id\": \"a\",\n  oops\n}",
    };
    let error = import(Format::Marathon, &source, &Options::default()).unwrap_err();
    assert_eq!((error.line, error.column.is_some()), (Some(3), true));
    assert!(error.to_string().starts_with("bad.json:3:"), "{error}");

    let source = Source {
        file: "list.json",
        text: "\"just text\"",
    };
    let error = import(Format::Marathon, &source, &Options::default()).unwrap_err();
    assert!(error.message.contains("expected a Marathon app"), "{error}");

    let source = Source {
        file: "empty.json",
        text: r#"{"id": "/", "apps": [], "groups": [{"id": "/x", "apps": []}]}"#,
    };
    let error = import(Format::Marathon, &source, &Options::default()).unwrap_err();
    assert!(error.message.contains("nothing to import"), "{error}");
}

#[test]
fn a_list_of_apps_is_one_service_named_after_the_file() {
    let apps = r#"[{"id": "/a", "cmd": "a"}, {"id": "/b", "cmd": "b", "dependencies": ["/a"]}]"#;
    let (imported, specs) = convert_as("apps.json", apps, &Options::default());
    assert_eq!(specs[0].service, "apps");
    assert_eq!(specs[0].job("b").unwrap().depends_on, ["a"]);
    assert!(notes(&imported, "[0].cmd").contains("names no Docker image"));
}
