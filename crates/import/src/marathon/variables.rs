//! Marathon's variables in shell lines (`cmd`, COMMAND checks): `$PORT0` and its other names
//! for the job's port become `$PORT`, which coding-job sets for an allocated port (and which
//! env sets for a fixed one); the other variables Marathon and Mesos set are noted, as
//! coding-job does not set them.

use std::collections::{BTreeMap, BTreeSet};

use super::Context;
use super::ports::Ports;

impl Ports {
    /// A shell line (`cmd`, a COMMAND check) with Marathon's variables for the job's port
    /// rewritten as `$PORT`, which coding-job sets for `port: auto`; for a fixed port, `env`
    /// gets `PORT` set to it. Other variables Marathon set are noted.
    pub fn shell(
        &self,
        context: &mut Context,
        path: &str,
        line: &str,
        env: &mut BTreeMap<String, String>,
    ) -> String {
        let (rewritten, seen) = rewrite(line, |name| self.is_job_port_variable(name));
        let reads_port = seen.iter().any(|name| self.is_job_port_variable(name));
        if reads_port {
            let rewritten_note = match rewritten != line {
                true => "Marathon's port variables rewritten as $PORT; ",
                false => "",
            };
            match self.job_port {
                Some(0) => context.note(
                    path,
                    format!("{rewritten_note}coding-job sets $PORT to the port it allocates to each task (`port: auto`)"),
                ),
                Some(port) => {
                    let set = !env.contains_key("PORT");
                    if set {
                        env.insert("PORT".into(), port.to_string());
                    }
                    let how = match set {
                        true => format!("env PORT is set to {port}, the job's fixed port"),
                        false => "the app's own env PORT is kept".to_string(),
                    };
                    context.note(path, format!("{rewritten_note}{how}"));
                }
                None => context.note(
                    path,
                    "the command reads a port variable, but the app declares no port: give the job `port:` (auto sets $PORT)",
                ),
            }
        }
        let others: BTreeSet<&str> = seen
            .iter()
            .map(String::as_str)
            .filter(|name| !self.is_job_port_variable(name) && set_by_marathon(name))
            .collect();
        if !others.is_empty() {
            let names: Vec<String> = others.iter().map(|name| format!("${name}")).collect();
            context.note(
                path,
                format!(
                    "{} set by Marathon or Mesos, not by coding-job: set them in env, or change the command",
                    names.join(", ")
                ),
            );
        }
        rewritten
    }
}

/// Whether a shell line reads one of Marathon's port variables.
pub(super) fn mentions_port(line: &str) -> bool {
    let (_, seen) = rewrite(line, |_| false);
    seen.iter().any(|name| {
        name == "PORT"
            || name == "PORTS"
            || name.strip_prefix("PORT").is_some_and(|rest| {
                rest.starts_with('_') || rest.bytes().all(|c| c.is_ascii_digit())
            })
    })
}

/// Variables Marathon and Mesos set in a task's environment.
fn set_by_marathon(name: &str) -> bool {
    name == "HOST"
        || name == "PORTS"
        || name.starts_with("PORT_")
        || name.starts_with("MESOS_")
        || name.starts_with("MARATHON_")
        || name
            .strip_prefix("PORT")
            .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|c| c.is_ascii_digit()))
}

/// `line` with every `$NAME` and `${NAME...}` for which `is_port(NAME)` renamed `PORT`, and
/// every name read, in order. `\$` is not a variable.
fn rewrite(line: &str, is_port: impl Fn(&str) -> bool) -> (String, Vec<String>) {
    let mut out = String::with_capacity(line.len());
    let mut seen = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find('$') {
        let (before, after) = rest.split_at(at);
        out.push_str(before);
        out.push('$');
        let after = &after[1..];
        let braced = after.starts_with('{');
        let body = if braced { &after[1..] } else { after };
        let len = body
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(body.len());
        let name = &body[..len];
        let escaped = before.ends_with('\\');
        if escaped || name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            rest = after;
            continue;
        }
        if braced {
            out.push('{');
        }
        out.push_str(if is_port(name) { "PORT" } else { name });
        seen.push(name.to_string());
        rest = &body[len..];
    }
    out.push_str(rest);
    (out, seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_variables_are_found_and_renamed() {
        let (line, seen) = rewrite("serve --port $PORT0 ${PORT0} $HOST \\$PORT0 $1", |name| {
            name == "PORT0"
        });
        assert_eq!(line, "serve --port $PORT ${PORT} $HOST \\$PORT0 $1");
        assert_eq!(seen, ["PORT0", "PORT0", "HOST"]);
        assert!(mentions_port("python -m http.server $PORT0"));
        assert!(mentions_port("x ${PORT_HTTP}"));
        assert!(!mentions_port("x $PORTAL $HOST"));
        assert!(set_by_marathon("PORT1"));
        assert!(set_by_marathon("MESOS_SANDBOX"));
        assert!(!set_by_marathon("PATH"));
    }
}
