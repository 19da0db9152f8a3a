//! Where and how many: `instances`, `constraints` (Mesos agent attributes are coding-job host
//! labels, `hostname` is the host's name) and `upgradeStrategy` as the rollout's batch size.

use serde_json::Value;

use cj_spec::limits::MAX_INSTANCES;

use super::{Context, list, whole};
use crate::fields::{Fields, item};
use crate::service_file::{Job, Update};
use crate::text;

/// `instances` and `constraints`.
pub(super) fn place(context: &mut Context, fields: &mut Fields, job: &mut Job) {
    let instances_path = fields.at("instances");
    let instances = fields.take("instances");
    match instances.map(|value| (value, whole(value))) {
        None | Some((_, Some(1))) => {}
        Some((_, Some(0))) => {
            let note = "0 instances: the app was suspended; the job runs one task once it is up: keep it down (`coding-job down SERVICE/JOB`) to keep it stopped";
            context.note(instances_path, note);
        }
        Some((_, Some(count))) if count > u64::from(MAX_INSTANCES) => {
            let note = format!(
                "{count} instances is more than the {MAX_INSTANCES} the config accepts: instances {MAX_INSTANCES}"
            );
            context.note(instances_path, note);
            job.instances = Some(MAX_INSTANCES);
        }
        Some((_, Some(count))) => job.instances = u32::try_from(count).ok(),
        Some((value, None)) => {
            let why = "expected a whole number of instances";
            context.left(instances_path, text::shown(value), why);
        }
    }
    let constraints_path = fields.at("constraints");
    let mut spread = false;
    for (index, constraint) in list(context, fields, "constraints").iter().enumerate() {
        spread |= constrain(context, &item(&constraints_path, index), constraint, job);
    }
    if let (Some(port @ 1..), Some(count @ 2..)) = (job.port, job.instances)
        && !spread
    {
        let note = format!(
            "{count} instances with the fixed port {port}: two tasks needing one host port never share a host, so each needs a host of its own"
        );
        context.note(fields.at("instances"), note);
    }
}

/// One constraint, `[FIELD, OPERATOR, VALUE]` (or `"FIELD:OPERATOR:VALUE"`); whether it asked
/// for instances spread over hosts (and the note said how coding-job spreads them).
fn constrain(context: &mut Context, path: &str, constraint: &Value, job: &mut Job) -> bool {
    let parts: Vec<String> = match constraint {
        Value::Array(parts) => parts.iter().filter_map(text::scalar).collect(),
        Value::String(line) => line.splitn(3, ':').map(str::to_string).collect(),
        _ => Vec::new(),
    };
    let shown = parts.join(" ");
    let (field, operator, value) = match parts.as_slice() {
        [field, operator] => (field.as_str(), operator.as_str(), None),
        [field, operator, value] => (field.as_str(), operator.as_str(), Some(value.as_str())),
        _ => {
            let why = "expected [FIELD, OPERATOR] or [FIELD, OPERATOR, VALUE]";
            context.left(path, text::shown(constraint), why);
            return false;
        }
    };
    // Mesos' fault domains (`@region`, `@zone`) are labels like any other here.
    let field = field.strip_prefix('@').unwrap_or(field);
    let result = match field {
        "hostname" => on_hostname(context, path, operator, value, job),
        label => on_label(context, path, label, operator, value, job).map(|()| false),
    };
    result.unwrap_or_else(|why| {
        context.left(path, shown, why);
        false
    })
}

fn on_hostname(
    context: &mut Context,
    path: &str,
    operator: &str,
    value: Option<&str>,
    job: &mut Job,
) -> Result<bool, String> {
    let spread = |context: &mut Context, job: &Job| {
        let fixed = job.port.is_some_and(|port| port != 0);
        let mut note = "coding-job spreads a job's instances over the eligible hosts already (fewest of the job first), and instances with a fixed port never share a host".to_string();
        if !fixed && job.instances.is_some() {
            note.push_str("; this job's port is not fixed, so with more instances than hosts two may share one");
        }
        context.note(path, note);
    };
    match (operator, value) {
        ("UNIQUE", _) | ("GROUP_BY", _) | ("MAX_PER", Some("1")) => {
            spread(context, job);
            Ok(true)
        }
        ("CLUSTER" | "IS", Some(host)) => pin(context, path, vec![host.to_string()], job).map(|()| false),
        ("LIKE", Some(pattern)) => match host_names(pattern) {
            Some(hosts) => pin(context, path, hosts, job).map(|()| false),
            None => Err("a pattern of host names: coding-job chooses hosts from a list (`hosts:`) or by label (`constraints:`); list them, or label them".into()),
        },
        ("UNLIKE", _) => Err("coding-job can choose hosts, not exclude them: list the hosts to use (`hosts:`), or label them".into()),
        ("MAX_PER", _) => Err("no per-host maximum: coding-job spreads a job's instances evenly over the eligible hosts".into()),
        ("CLUSTER", None) => Err("all instances on one host, whichever: give `hosts: [HOST]` to name it".into()),
        _ => Err(format!("not a constraint operator coding-job can follow ({operator})")),
    }
}

/// Runs the instances on `hosts`, with `instances` so the server places them.
fn pin(context: &mut Context, path: &str, hosts: Vec<String>, job: &mut Job) -> Result<(), String> {
    if let Some(invalid) = hosts.iter().find(|host| !cj_spec::is_valid_name(host)) {
        return Err(format!(
            "{invalid} is not a host name the config accepts ({})",
            cj_spec::NAME_RULE
        ));
    }
    if !job.hosts.is_empty() {
        return Err("the job's hosts are chosen by an earlier constraint already".into());
    }
    job.hosts = hosts;
    job.instances.get_or_insert(1);
    let note = format!(
        "hosts: {}: a host's name is its agent's `--name`, by default the system's host name, as Mesos' hostname was",
        job.hosts.join(", ")
    );
    context.note(path, note);
    Ok(())
}

/// The host names a LIKE pattern lists, when it is only names (`a|b|c`): a dot is taken as the
/// dot of a domain name.
fn host_names(pattern: &str) -> Option<Vec<String>> {
    let pattern = pattern
        .strip_prefix('(')
        .and_then(|p| p.strip_suffix(')'))
        .unwrap_or(pattern);
    let names: Vec<String> = pattern.split('|').map(str::to_string).collect();
    let plain = |name: &String| {
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    names.iter().all(plain).then_some(names)
}

fn on_label(
    context: &mut Context,
    path: &str,
    label: &str,
    operator: &str,
    value: Option<&str>,
    job: &mut Job,
) -> Result<(), String> {
    let wanted = match (operator, value) {
        ("CLUSTER" | "IS", Some(value)) => value,
        ("LIKE", Some(value)) if is_plain(value) => value,
        ("LIKE", Some(_)) => {
            return Err("a pattern: coding-job's constraints require one exact label value".into());
        }
        ("CLUSTER", None) => {
            return Err(format!(
                "all instances on hosts with one value of {label}, whichever: name the value (`constraints: {{{label}: VALUE}}`)"
            ));
        }
        ("UNIQUE" | "GROUP_BY" | "MAX_PER", _) => {
            return Err(format!(
                "coding-job spreads a job's instances over hosts, not over the values of a label ({label})"
            ));
        }
        ("UNLIKE", _) => {
            return Err(
                "coding-job's constraints require a label value; they cannot exclude one".into(),
            );
        }
        _ => {
            return Err(format!(
                "not a constraint operator coding-job can follow ({operator})"
            ));
        }
    };
    if let Some(problem) = cj_spec::label_problem(label, wanted) {
        return Err(problem);
    }
    if cj_spec::is_template(wanted) {
        return Err("template syntax ({{, {%) is not allowed in constraints".into());
    }
    if let Some(earlier) = job
        .constraints
        .get(label)
        .filter(|earlier| *earlier != wanted)
    {
        return Err(format!(
            "an earlier constraint requires {label} = {earlier} already"
        ));
    }
    job.constraints
        .insert(label.to_string(), wanted.to_string());
    context.note_once(
        "labels",
        path,
        "Mesos agent attributes are host labels in coding-job: start each agent with `--label NAME=VALUE` for the attributes the constraints name",
    );
    Ok(())
}

/// A LIKE value that is a plain value rather than a pattern.
fn is_plain(value: &str) -> bool {
    !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '/' | ' ' | ':'))
}

/// `upgradeStrategy` as `update.batch_size`.
pub(super) fn update(context: &mut Context, fields: &mut Fields, job: &mut Job) {
    let path = fields.at("upgradeStrategy");
    let Some(strategy) = fields
        .take("upgradeStrategy")
        .filter(|value| value.is_object())
    else {
        return;
    };
    let mut strategy_fields = Fields::new(path.clone(), strategy);
    let share = |fields: &mut Fields, key| {
        fields
            .take(key)
            .and_then(Value::as_f64)
            .unwrap_or(1.0)
            .clamp(0.0, 1.0)
    };
    let healthy = share(&mut strategy_fields, "minimumHealthCapacity");
    let over = share(&mut strategy_fields, "maximumOverCapacity");
    strategy_fields.leave_rest(context.report, |_| None);
    let instances = u64::from(job.instances.unwrap_or(1));
    let (batch, how) = batch_size(instances, healthy, over, job.port.is_some());
    if batch > 1 {
        job.update = Some(Update {
            batch_size: u32::try_from(batch).ok(),
            ..Update::default()
        });
    }
    let note = format!(
        "minimumHealthCapacity {healthy}, maximumOverCapacity {over} of {instances} instance{}: {how}: update.batch_size {batch}",
        if instances == 1 { "" } else { "s" }
    );
    context.note(path, note);
}

/// The tasks a rollout may replace at once, and why. A task with a port is stopped before its
/// replacement starts (both need the port), so only the tasks that may be down count; one
/// without starts its replacement first, so the room over capacity counts too.
fn batch_size(instances: u64, healthy: f64, over: f64, has_port: bool) -> (u64, String) {
    let must_run = (healthy * instances as f64).ceil() as u64;
    let may_be_down = instances.saturating_sub(must_run);
    let extra = (over * instances as f64).floor() as u64;
    if instances <= 1 {
        let how = match has_port {
            true => {
                "a task with a port stops before its replacement starts (both need the port), so the one task is briefly down"
            }
            false => "a task without a port gets its replacement started before it stops",
        };
        return (1, how.to_string());
    }
    if has_port {
        let how = match may_be_down {
            0 => "none may be down, but a task with a port stops before its replacement starts (both need the port), so they are replaced one at a time, each briefly down".to_string(),
            down => format!("{down} may be down, and a task with a port stops before its replacement starts (both need the port)"),
        };
        (may_be_down.clamp(1, instances.max(1)), how)
    } else {
        let how = format!(
            "{may_be_down} may be down and {extra} may run beside them, and a task without a port gets its replacement started before it stops"
        );
        ((may_be_down + extra).clamp(1, instances.max(1)), how)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_sizes_follow_the_upgrade_strategy() {
        assert_eq!(batch_size(4, 1.0, 1.0, true).0, 1);
        assert_eq!(batch_size(4, 0.5, 0.0, true).0, 2);
        assert_eq!(batch_size(4, 1.0, 1.0, false).0, 4);
        assert_eq!(batch_size(5, 0.5, 0.0, false).0, 2);
        assert_eq!(batch_size(1, 0.0, 0.0, true).0, 1);
        assert_eq!(batch_size(10, 0.9, 0.2, false).0, 3);
    }

    #[test]
    fn like_patterns_that_only_list_names_are_hosts() {
        assert_eq!(
            host_names("a|b.example.com").unwrap(),
            ["a", "b.example.com"]
        );
        assert_eq!(host_names("(a|b)").unwrap(), ["a", "b"]);
        assert_eq!(host_names("srv2.*"), None);
        assert!(is_plain("us-east-1a"));
        assert!(!is_plain("rack-[12]"));
    }
}
