//! `env list|create|up|down|destroy|vars`: environments (`/v1/envs`), one request each; `up` and
//! `down` follow the same progress stream as `up TARGET`. `env run` is in `run`, vars files in
//! `vars_file`.

mod run;
mod vars_file;

use std::collections::BTreeMap;

use cj_api::envs::{
    CreateEnvRequest, CreateEnvResponse, DestroyEnvResponse, EnvInfo, EnvVar, EnvVars,
    SetVarsRequest,
};
use cj_spec::shown;

use crate::args::{
    EnvCommand, EnvCreateArgs, EnvDestroyArgs, EnvListArgs, EnvOperationArgs, EnvVarsArgs,
    NewEnvArgs,
};
use crate::client::{CliError, CliResult, Client};
use crate::commands::operation::{follow, print_summary};
use crate::output::{dash, print_json, print_table, relative, table};

/// How a secret value is shown: it never leaves the server.
const HIDDEN: &str = cj_api::SECRET_MASK;

pub async fn run(client: &Client, command: EnvCommand) -> CliResult<i32> {
    match command {
        EnvCommand::List(args) => list(client, args).await,
        EnvCommand::Create(args) => create(client, args).await,
        EnvCommand::Up(args) => operation(client, "up", args).await,
        EnvCommand::Down(args) => operation(client, "down", args).await,
        EnvCommand::Destroy(args) => destroy(client, args).await,
        EnvCommand::Vars(args) => vars(client, args).await,
        EnvCommand::Run(args) => run::run(client, args).await,
    }
}

async fn list(client: &Client, args: EnvListArgs) -> CliResult<i32> {
    let query = [("all", args.all.to_string())];
    let envs: Vec<EnvInfo> = client.json(client.get("/v1/envs").query(&query)).await?;
    if args.json {
        return print_json(&envs);
    }
    if envs.is_empty() {
        println!(
            "no environments yet: push to one (`coding-job push --env NAME FILE`), or copy one \
             with `coding-job env create NAME --from ENV`"
        );
        return Ok(0);
    }
    let mut output = table(&[
        "NAME", "FROM", "SERVICES", "JOBS UP", "TASKS", "STATE", "CREATED", "EXPIRES",
    ]);
    for env in &envs {
        output.add_row(vec![
            env.name.clone(),
            dash(env.from.as_ref()),
            if env.services.is_empty() {
                "-".into()
            } else {
                env.services.join(",")
            },
            env.jobs_up.to_string(),
            format!("{}/{}", env.tasks_running, env.tasks_total),
            env.state.clone(),
            relative(env.created_at.as_deref()),
            expires(env.expires_at.as_deref()),
        ]);
    }
    print_table(&output);
    Ok(0)
}

/// "in 7 h", or "now" for an environment whose time is (about) up but is not destroyed yet.
fn expires(at: Option<&str>) -> String {
    let when = relative(at);
    if when == "-" || when.starts_with("in ") {
        when
    } else {
        "now".into()
    }
}

async fn create(client: &Client, args: EnvCreateArgs) -> CliResult<i32> {
    let name = checked_name(&args.name)?;
    let request = create_request(name, args.new)?;
    let created: CreateEnvResponse = client.json(client.post("/v1/envs", &request)).await?;
    if args.json {
        return print_json(&created);
    }
    let expiry = match &created.env.expires_at {
        Some(at) => format!(", destroyed {}", expires(Some(at))),
        None => String::new(),
    };
    println!(
        "created environment {name} from {}: {}{expiry}",
        request.from,
        count(created.copied.len(), "service")
    );
    for copied in &created.copied {
        println!(
            "  {}: version {} (version {} in {})",
            copied.service, copied.version, copied.from_version, request.from
        );
    }
    if !created.snapshots.is_empty() {
        let bytes: u64 = created.snapshots.iter().map(|s| s.content_bytes).sum();
        println!(
            "  with data: {} from fresh snapshots ({} of files), filled in when its tasks first start",
            count(created.snapshots.len(), "volume"),
            crate::output::bytes(bytes)
        );
        for snapshot in &created.snapshots {
            println!(
                "    {}/{}/{} {}: {}",
                snapshot.service, snapshot.job, snapshot.task, snapshot.volume, snapshot.id
            );
        }
    }
    println!("start it with: coding-job env up {name}");
    Ok(0)
}

/// The request that creates environment `name`: the vars file's variables, overridden by
/// `--set`, checked here so a mistake costs no request.
fn create_request(name: &str, new: NewEnvArgs) -> CliResult<CreateEnvRequest> {
    let mut vars = match &new.vars_file {
        Some(path) => vars_file::read(path)?,
        None => BTreeMap::new(),
    };
    // A later `--set` of a name overrides an earlier one, as the file's value.
    vars.extend(new.set);
    for secret in &new.secret {
        if !vars.contains_key(secret) {
            return Err(CliError::bad_input(format!(
                "--secret {}: no such variable in --vars or --set (give its value with \
                 --set {0}=VALUE)",
                shown(secret)
            )));
        }
    }
    let mut map_hosts = BTreeMap::new();
    for (from, to) in new.map_hosts {
        if map_hosts.contains_key(&from) {
            return Err(CliError::bad_input(format!(
                "--map-hosts: host {} is mapped twice",
                shown(&from)
            )));
        }
        map_hosts.insert(from, to);
    }
    let mut secret_vars = new.secret;
    secret_vars.sort();
    secret_vars.dedup();
    Ok(CreateEnvRequest {
        name: name.to_owned(),
        from: new.from,
        vars,
        secret_vars,
        ttl_seconds: new.ttl,
        map_hosts,
        vars_file: new.vars_file.map(|path| path.display().to_string()),
        with_data: new
            .with_data
            .map(|jobs| jobs.into_iter().filter(|job| !job.is_empty()).collect()),
    })
}

/// `env up NAME` and `env down NAME` (`verb`).
async fn operation(client: &Client, verb: &str, args: EnvOperationArgs) -> CliResult<i32> {
    let name = checked_name(&args.name)?;
    let response = start(client, name, verb, args.timeout).await?;
    let followed = follow(response, verb, args.json).await?;
    let summary = followed.summary.ok_or_else(|| {
        CliError::failed(format!("the server ended `env {verb}` without a summary"))
    })?;
    if !args.json {
        print_summary(verb, &format!("environment {name}"), &summary);
    }
    Ok(if summary.ok { 0 } else { 1 })
}

/// Starts `env up` or `env down` (`verb`); the answer is the progress stream.
async fn start(
    client: &Client,
    name: &str,
    verb: &str,
    timeout_seconds: Option<u64>,
) -> CliResult<reqwest::Response> {
    // No body: the wave timeout (absent: the server's default) is a query parameter.
    let query: Vec<(&str, u64)> = timeout_seconds
        .map(|seconds| ("timeout_seconds", seconds))
        .into_iter()
        .collect();
    let request = client
        .post(&format!("/v1/envs/{name}/{verb}"), &serde_json::json!({}))
        .query(&query);
    client.send(request).await
}

async fn destroy(client: &Client, args: EnvDestroyArgs) -> CliResult<i32> {
    let name = checked_name(&args.name)?;
    let destroyed = request_destroy(client, name, args.keep_volumes).await?;
    if args.json {
        return print_json(&destroyed);
    }
    println!("{}", destroyed_line(&destroyed));
    Ok(0)
}

async fn request_destroy(
    client: &Client,
    name: &str,
    keep_volumes: bool,
) -> CliResult<DestroyEnvResponse> {
    let query = [("keep_volumes", keep_volumes.to_string())];
    client
        .json(client.delete(&format!("/v1/envs/{name}")).query(&query))
        .await
}

/// What a destroy removed, in one line.
fn destroyed_line(destroyed: &DestroyEnvResponse) -> String {
    let mut line = format!(
        "destroyed environment {}: {} removed",
        destroyed.env,
        count(destroyed.tasks_removed.len(), "task")
    );
    if !destroyed.volumes_removed.is_empty() {
        line.push_str(&format!(
            ", {} removed",
            count(destroyed.volumes_removed.len(), "volume")
        ));
    }
    if !destroyed.volumes_kept.is_empty() {
        line.push_str(&format!(
            ", {} kept ({})",
            count(destroyed.volumes_kept.len(), "volume"),
            destroyed.volumes_kept.join(", ")
        ));
    }
    line.push_str(&format!(
        ", {} released in {:.1}s",
        count(destroyed.ports_released, "port"),
        destroyed.seconds
    ));
    if !destroyed.hosts_pending.is_empty() {
        line.push_str(&format!(
            "; down, they clean up when back: {}",
            destroyed.hosts_pending.join(", ")
        ));
    }
    line
}

/// "1 task", "3 tasks".
fn count(number: usize, noun: &str) -> String {
    match number {
        1 => format!("1 {noun}"),
        _ => format!("{number} {noun}s"),
    }
}

async fn vars(client: &Client, args: EnvVarsArgs) -> CliResult<i32> {
    let name = checked_name(&args.name)?;
    let path = format!("/v1/envs/{name}/vars");
    let vars: EnvVars = match set_vars_request(&args)? {
        None => client.json(client.get(&path)).await?,
        Some(request) => client.json(client.put(&path, &request)).await?,
    };
    if args.json {
        return print_json(&vars);
    }
    if vars.vars.is_empty() {
        println!("environment {name} has no variables");
    } else {
        let mut output = table(&["NAME", "VALUE"]);
        for var in &vars.vars {
            output.add_row(vec![var.name.clone(), shown_value(var)]);
        }
        print_table(&output);
    }
    if !vars.restarting.is_empty() {
        println!(
            "restarting, as a value they use changed: {}",
            vars.restarting.join(", ")
        );
    }
    Ok(0)
}

fn shown_value(var: &EnvVar) -> String {
    if var.secret {
        HIDDEN.into()
    } else {
        dash(var.value.as_ref())
    }
}

/// The change `env vars` asks for, if any: `None` only lists.
fn set_vars_request(args: &EnvVarsArgs) -> CliResult<Option<SetVarsRequest>> {
    if args.set.is_empty() && args.unset.is_empty() {
        if !args.secret.is_empty() {
            return Err(CliError::bad_input(
                "--secret marks a variable given with --set: --set K=V --secret K",
            ));
        }
        return Ok(None);
    }
    let mut set: BTreeMap<String, Option<String>> = args
        .set
        .iter()
        .map(|(name, value)| (name.clone(), Some(value.clone())))
        .collect();
    for name in &args.unset {
        if set.contains_key(name) {
            return Err(CliError::bad_input(format!(
                "{} is both set and unset",
                shown(name)
            )));
        }
        set.insert(name.clone(), None);
    }
    for secret in &args.secret {
        if !args.set.iter().any(|(name, _)| name == secret) {
            return Err(CliError::bad_input(format!(
                "--secret {}: not among --set (give its value with --set {0}=VALUE)",
                shown(secret)
            )));
        }
    }
    let mut secret = args.secret.clone();
    secret.sort();
    secret.dedup();
    Ok(Some(SetVarsRequest { set, secret }))
}

/// The environment's name, refused here if it could read as more than one path segment (the
/// server checks the rest of its rules).
fn checked_name(name: &str) -> CliResult<&str> {
    match cj_api::envs::env_name_problem(name) {
        None => Ok(name),
        Some(problem) => Err(CliError::bad_input(problem)),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn new_env(vars_file: Option<PathBuf>, set: &[(&str, &str)], secret: &[&str]) -> NewEnvArgs {
        NewEnvArgs {
            from: "staging".into(),
            vars_file,
            set: set
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
            secret: secret.iter().map(|name| name.to_string()).collect(),
            ttl: Some(3600),
            map_hosts: vec![("host-1".into(), "host-4".into())],
            with_data: None,
        }
    }

    #[test]
    fn set_overrides_the_vars_file_and_secrets_must_be_given() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("vars.yaml");
        std::fs::write(&file, "db_name: shop_pr\npassword: from-file\nport: 5432\n").unwrap();
        let request = create_request(
            "pr-1",
            new_env(
                Some(file.clone()),
                &[("password", "s3cret"), ("extra", "x")],
                &["password", "password"],
            ),
        )
        .unwrap();
        assert_eq!(request.name, "pr-1");
        assert_eq!(request.from, "staging");
        let vars: Vec<(&str, &str)> = request
            .vars
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        assert_eq!(
            vars,
            [
                ("db_name", "shop_pr"),
                ("extra", "x"),
                ("password", "s3cret"),
                ("port", "5432")
            ]
        );
        assert_eq!(request.secret_vars, ["password"]);
        assert_eq!(request.ttl_seconds, Some(3600));
        assert_eq!(request.map_hosts["host-1"], "host-4");
        assert_eq!(request.vars_file, Some(file.display().to_string()));

        let error = create_request("pr-1", new_env(None, &[("a", "1")], &["b"])).unwrap_err();
        assert_eq!(error.exit_code, 2);
        assert!(error.message.contains("--secret b"), "{}", error.message);

        let mut twice = new_env(None, &[], &[]);
        twice.map_hosts.push(("host-1".into(), "host-5".into()));
        let error = create_request("pr-1", twice).unwrap_err();
        assert!(error.message.contains("mapped twice"), "{}", error.message);
    }

    #[test]
    fn a_bad_vars_file_is_bad_input_with_its_place() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("vars.yaml");
        std::fs::write(&file, "a: 1\nb: [1, 2]\n").unwrap();
        let error = create_request("pr-1", new_env(Some(file.clone()), &[], &[])).unwrap_err();
        assert_eq!(error.exit_code, 2);
        assert!(
            error.message.starts_with(&format!(
                "{}:2:4: b: expected a single value",
                file.display()
            )),
            "{}",
            error.message
        );
        let missing = dir.path().join("missing.yaml");
        let error = create_request("pr-1", new_env(Some(missing), &[], &[])).unwrap_err();
        assert_eq!(error.exit_code, 2);
        assert!(
            error.message.starts_with("cannot read "),
            "{}",
            error.message
        );
    }

    #[test]
    fn vars_changes_are_checked_before_they_are_sent() {
        let args = |set: &[(&str, &str)], unset: &[&str], secret: &[&str]| EnvVarsArgs {
            name: "pr-1".into(),
            set: set
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
            unset: unset.iter().map(|name| name.to_string()).collect(),
            secret: secret.iter().map(|name| name.to_string()).collect(),
            json: false,
        };
        assert!(set_vars_request(&args(&[], &[], &[])).unwrap().is_none());
        let request = set_vars_request(&args(&[("a", "1"), ("p", "x")], &["b"], &["p"]))
            .unwrap()
            .unwrap();
        assert_eq!(request.set["a"].as_deref(), Some("1"));
        assert_eq!(request.set["b"], None);
        assert_eq!(request.secret, ["p"]);
        for (set, unset, secret) in [
            (&[][..], &[][..], &["p"][..]),
            (&[("a", "1")][..], &["a"][..], &[][..]),
            (&[("a", "1")][..], &[][..], &["b"][..]),
        ] {
            let error = set_vars_request(&args(set, unset, secret)).unwrap_err();
            assert_eq!(error.exit_code, 2, "{}", error.message);
        }
    }

    #[test]
    fn secret_values_are_never_shown() {
        let var = |value: Option<&str>, secret| EnvVar {
            name: "x".into(),
            value: value.map(str::to_owned),
            secret,
        };
        assert_eq!(shown_value(&var(Some("1"), false)), "1");
        assert_eq!(shown_value(&var(None, true)), HIDDEN);
        // Even if a server sent one.
        assert_eq!(shown_value(&var(Some("leak"), true)), HIDDEN);
    }

    #[test]
    fn environment_names_stay_one_path_segment() {
        for name in ["pr-123", "dev_1", "A"] {
            assert_eq!(checked_name(name).unwrap(), name);
        }
        for name in ["", "-x", "a/b", "..", "a.b", "a b", "a?b"] {
            assert_eq!(checked_name(name).unwrap_err().exit_code, 2, "{name:?}");
        }
    }

    #[test]
    fn a_destroy_reads_as_one_line() {
        let mut destroyed = DestroyEnvResponse {
            env: "pr-1".into(),
            tasks_removed: vec!["a".into(), "b".into()],
            volumes_removed: vec![],
            volumes_kept: vec![],
            hosts_pending: vec![],
            ports_released: 1,
            seconds: 1.24,
        };
        assert_eq!(
            destroyed_line(&destroyed),
            "destroyed environment pr-1: 2 tasks removed, 1 port released in 1.2s"
        );
        destroyed.volumes_removed = vec!["data".into()];
        destroyed.volumes_kept = vec!["cache".into(), "logs".into()];
        assert_eq!(
            destroyed_line(&destroyed),
            "destroyed environment pr-1: 2 tasks removed, 1 volume removed, 2 volumes kept \
             (cache, logs), 1 port released in 1.2s"
        );
    }
}
