//! Fuzzing the config parser: tens of thousands of mutated configs, each checked against the
//! invariants every caller relies on.
//!
//! The corpus is every example (`examples/*.yaml`) and every fixture (`tests/fixtures/**`),
//! read at test time. A case takes one corpus file and applies a few mutations: insertions,
//! deletions and replacements of bytes with interesting values (NUL, newlines, quotes, YAML
//! indicators, huge numbers, long strings, unicode, tabs), duplicated and swapped lines, values
//! swapped between lines, and splices of two files. Invariants, on every case:
//!
//! - `parse_service` never panics;
//! - every refusal is located (line and column from 1, within the file), names a field path and
//!   has a short message;
//! - every accepted spec is within `limits`: valid names, task names unique in the service,
//!   valid image references (or templates), bounded durations, sizes and counts, no NUL where a
//!   process or Docker would get it, dependencies on jobs of the service without cycles (or on
//!   `SERVICE/JOB` of another service), valid routes and volumes, and a stored form that reads
//!   back equal;
//! - rendering an accepted task for an environment never panics, and what it renders is within
//!   `limits` too.
//!
//! Runs `CJ_FUZZ_CASES` cases (30 000 by default) from a fixed seed, `CJ_FUZZ_SEED` to vary it;
//! `cargo nextest run -p coding-job-spec --no-capture fuzz` shows the figures.

use std::cell::Cell;
use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use coding_job_spec::limits::*;
use std::collections::BTreeMap;

use coding_job_spec::{
    ImageRef, Probe, RenderContext, ServiceSpec, SpecErrors, TaskSpec, dependency_waves,
    render_task,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

const DEFAULT_CASES: u32 = 30_000;
const DEFAULT_SEED: u64 = 0x636a_5f66_757a_7a31;

/// Values that have broken parsers before: YAML indicators, escapes, special scalars, numbers
/// at and beyond every bound, and bits of this schema, so mutations reach the later checks.
const INTERESTING: &[&str] = &[
    "\0",
    "\\0",
    "\n",
    "\r\n",
    "\t",
    "\"",
    "'",
    ":",
    ": ",
    "-",
    "- ",
    "{",
    "}",
    "[",
    "]",
    ",",
    "#",
    "&a ",
    "*a",
    "<<: ",
    "!!binary ",
    "!x ",
    "!!str ",
    "---\n",
    "...\n",
    "%YAML 1.2\n",
    "? ",
    "|\n",
    ">-\n",
    "~",
    "null",
    ".nan",
    ".inf",
    "-.inf",
    "1e300",
    "-1",
    "0",
    "0.0",
    "99999999999999999999",
    "18446744073709551616",
    "4294967296",
    "65536",
    "0x10",
    "0o17",
    "1_000",
    "true",
    "yes",
    "é",
    "日本",
    "\u{202e}",
    "\u{feff}",
    "\u{7f}",
    "\u{85}",
    "\\u0000",
    "\\x00",
    " ",
    "    ",
    "@",
    "`",
    "%",
    "image: ",
    "image: \"\"",
    "name: ",
    "hosts: [a, a]",
    "hosts: [\"a/b\"]",
    "instances: 1000",
    "instances: 0",
    "tasks:\n  - name: t\n",
    "env: {A: 1}",
    "env: [\"A=\\0\"]",
    "command: ",
    "command: []",
    "depends_on: [a]",
    "run_on_host: ../x",
    "interval: 1e300",
    "timeout: 0",
    "healthy_deadline: 25h",
    "memory: 99999999999999999999t",
    "memory: 5m",
    "cpu: 0.0000000001",
    "cpu: 1025",
    "retries: 0",
    "retries: 101",
    "batch_size: 1001",
    "canary: 1001",
    "check: {tcp: true}",
    "check: {http: /x}",
    "port: 70000",
    "port: auto",
    "docker_config: {docker_config: {Labels: {a: b}}}",
    "{{",
    "}}",
    "{%",
    "{#",
    "{{ vars.a }}",
    "{{ addr(\"b-1\") }}",
    "{{ port }}",
    "{% if env.name == \"x\" %}a{% endif %}",
    "route: true",
    "route: {host: a, path: /v2, timeout: 1s, max_body: 1m}",
    "route: {path: /v2/../x, timeout: 0s, max_body: 2t}",
    "drain_timeout: 5s",
    "depends_on: [x/y]",
    "volumes: [{name: a, mount: /a, seed: /s.tar}]",
];

/// Values put in place of a whole value, so the file stays YAML and reaches the later checks:
/// names, numbers and durations at and beyond every bound, images, lists that repeat.
const VALUES: &[&str] = &[
    "a",
    "b-1",
    "a-b",
    "a_b.c",
    "x/y",
    "\"\"",
    "~",
    "{}",
    "[]",
    "[a, a]",
    "[a, b-1]",
    "[b-1]",
    "\"a\\0\"",
    "true",
    "false",
    "0",
    "1",
    "2",
    "3",
    "100",
    "101",
    "1000",
    "1001",
    "-1",
    "99ms",
    "100ms",
    "500ms",
    "2s",
    "10m",
    "11m",
    "1h",
    "2h",
    "24h",
    "25h",
    "1e300",
    "5m",
    "6m",
    "256m",
    "16t",
    "17t",
    "0.01",
    "0.009",
    "1024",
    "1025",
    "80",
    "65535",
    "65536",
    "busybox",
    "Busybox",
    "busybox:1.36",
    "reg.example.com:5000/team/app:v1",
    "a:-x",
    "a@sha256:0123",
    "/health",
    "http://127.0.0.1:8080/ready",
    "\"sh -c 'exit 0'\"",
    "[httpd, -f]",
    "keep",
    "restart",
    "{tcp: true}",
    "{http: /x}",
    "{exec: [true]}",
    "{batch_size: 2, canary: 1}",
    "{memory: 64m, cpu: 0.5}",
    "{A: 1}",
    "[\"A=1\"]",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "auto",
    "\"{{ vars.a }}\"",
    "\"x-{{ task.index }}\"",
    "\"{{ addr('a') }}\"",
    "\"{{ nope }}\"",
    "\"{% for c in vars.a %}{% endfor %}\"",
    "[{name: a, mount: /a}]",
    "[a/b]",
];

#[derive(Debug, Clone)]
enum Mutation {
    Insert {
        at: usize,
        text: String,
    },
    Delete {
        at: usize,
        len: usize,
    },
    Replace {
        at: usize,
        len: usize,
        text: String,
    },
    DuplicateLine {
        line: usize,
    },
    SwapLines {
        a: usize,
        b: usize,
    },
    /// Swaps what follows `: ` on two lines.
    SwapValues {
        a: usize,
        b: usize,
    },
    /// Replaces a value (what follows `: `, in block or flow style).
    SetValue {
        at: usize,
        value: &'static str,
    },
    /// This file up to `at`, then another corpus file from `other_at`.
    Splice {
        other: usize,
        at: usize,
        other_at: usize,
    },
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::sample::select(INTERESTING).prop_map(str::to_owned),
        3 => "[a-zA-Z0-9 _.:/@=-]{0,8}",
        2 => (60usize..70).prop_map(|n| "x".repeat(n)),
        1 => (200usize..300).prop_map(|n| "y".repeat(n)),
        1 => Just("z".repeat(100_000)),
        2 => any::<char>().prop_map(String::from),
        1 => prop::collection::vec(any::<char>(), 1..6).prop_map(String::from_iter),
    ]
}

fn mutation(corpus_len: usize) -> impl Strategy<Value = Mutation> {
    let at = any::<usize>();
    prop_oneof![
        6 => (at, text()).prop_map(|(at, text)| Mutation::Insert { at, text }),
        3 => (at, 1usize..20).prop_map(|(at, len)| Mutation::Delete { at, len }),
        6 => (at, 1usize..12, text()).prop_map(|(at, len, text)| Mutation::Replace { at, len, text }),
        2 => at.prop_map(|line| Mutation::DuplicateLine { line }),
        2 => (at, at).prop_map(|(a, b)| Mutation::SwapLines { a, b }),
        3 => (at, at).prop_map(|(a, b)| Mutation::SwapValues { a, b }),
        8 => (at, prop::sample::select(VALUES))
            .prop_map(|(at, value)| Mutation::SetValue { at, value }),
        1 => (0..corpus_len, at, at)
            .prop_map(|(other, at, other_at)| Mutation::Splice { other, at, other_at }),
    ]
}

/// The char boundary at or before `at % (len + 1)`.
fn boundary(text: &str, at: usize) -> usize {
    let mut at = at % (text.len() + 1);
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// Indexes of the lines with a `KEY: value`.
fn lines_with_values(lines: &[String]) -> Vec<usize> {
    (0..lines.len())
        .filter(|index| lines[*index].contains(": "))
        .collect()
}

/// `  key: value\n` -> (`  key: `, `value`).
fn split_value(line: &str) -> (String, String) {
    let (key, value) = line.split_once(": ").unwrap_or((line, ""));
    (format!("{key}: "), value.trim_end_matches('\n').to_owned())
}

/// About `len` bytes from `at`, on char boundaries.
fn range(text: &str, at: usize, len: usize) -> (usize, usize) {
    let start = boundary(text, at);
    let mut end = (start + len).min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (start, end)
}

fn apply(source: &mut String, mutation: &Mutation, corpus: &[String]) {
    let lines =
        |source: &str| -> Vec<String> { source.split_inclusive('\n').map(str::to_owned).collect() };
    match mutation {
        Mutation::Insert { at, text } => {
            let at = boundary(source, *at);
            source.insert_str(at, text);
        }
        Mutation::Delete { at, len } => {
            let (start, end) = range(source, *at, *len);
            source.replace_range(start..end, "");
        }
        Mutation::Replace { at, len, text } => {
            let (start, end) = range(source, *at, *len);
            source.replace_range(start..end, text);
        }
        Mutation::DuplicateLine { line } => {
            let mut all = lines(source);
            if !all.is_empty() {
                let index = line % all.len();
                let copy = all[index].clone();
                all.insert(index, copy);
                *source = all.concat();
            }
        }
        Mutation::SwapLines { a, b } => {
            let mut all = lines(source);
            if !all.is_empty() {
                let len = all.len();
                all.swap(a % len, b % len);
                *source = all.concat();
            }
        }
        Mutation::SwapValues { a, b } => {
            let mut all = lines(source);
            let with_values = lines_with_values(&all);
            if with_values.len() >= 2 {
                let (a, b) = (
                    with_values[a % with_values.len()],
                    with_values[b % with_values.len()],
                );
                let ((key_a, value_a), (key_b, value_b)) =
                    (split_value(&all[a]), split_value(&all[b]));
                all[a] = format!("{key_a}{value_b}\n");
                all[b] = format!("{key_b}{value_a}\n");
                *source = all.concat();
            }
        }
        Mutation::SetValue { at, value } => {
            // A value starts after ": " and ends at the end of its line or flow item.
            let starts: Vec<usize> = source.match_indices(": ").map(|(at, _)| at + 2).collect();
            if !starts.is_empty() {
                let start = starts[at % starts.len()];
                let end = source[start..]
                    .find([',', '}', '\n'])
                    .map_or(source.len(), |len| start + len);
                source.replace_range(start..end, value);
            }
        }
        Mutation::Splice {
            other,
            at,
            other_at,
        } => {
            let other = &corpus[*other % corpus.len()];
            let at = boundary(source, *at);
            let other_at = boundary(other, *other_at);
            *source = format!("{}{}", &source[..at], &other[other_at..]);
        }
    }
}

fn yaml_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yaml_files(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "yaml") {
            found.push(path);
        }
    }
}

fn corpus() -> Vec<String> {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths = Vec::new();
    yaml_files(&crate_dir.join("../../examples"), &mut paths);
    yaml_files(&crate_dir.join("tests/fixtures"), &mut paths);
    paths.sort();
    paths
        .iter()
        .map(|path| std::fs::read_to_string(path).unwrap())
        .collect()
}

fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    let text = text.trim();
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// The name rule, written again here so the parser is checked against an independent reading.
fn valid_name(name: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.len())
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

fn valid_argv(argv: &[String]) -> bool {
    !argv.is_empty()
        && argv.len() <= MAX_COMMAND_ARGS
        && argv.iter().map(|arg| arg.len() + 1).sum::<usize>() <= MAX_COMMAND_BYTES
        && argv.iter().all(|arg| !arg.contains('\0'))
}

fn json_has_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(text) => text.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(json_has_nul),
        serde_json::Value::Object(map) => map
            .iter()
            .any(|(key, item)| key.contains('\0') || json_has_nul(item)),
        _ => false,
    }
}

/// Why `errors` break the refusal invariants, if they do.
fn refusal_problem(source: &str, errors: &SpecErrors) -> Option<String> {
    if errors.0.is_empty() {
        return Some("refused with no errors".into());
    }
    // YAML breaks lines at "\r\n", "\r" and "\n".
    let line_count = source.replace("\r\n", "\n").split(['\n', '\r']).count() as u64;
    for error in &errors.0 {
        if error.line < 1 || error.column < 1 {
            return Some(format!("unlocated: {error}"));
        }
        if error.line > line_count + 1 {
            return Some(format!("beyond the last line ({line_count}): {error}"));
        }
        if error.path.is_empty() || error.path.chars().count() > 512 {
            return Some(format!("bad path: {error}"));
        }
        if error.message.is_empty() || error.message.chars().count() > 512 {
            return Some(format!("bad message: {error}"));
        }
        if error.file != "fuzz.yaml" {
            return Some(format!("wrong file: {error}"));
        }
    }
    None
}

/// Whether `text` is a template, rendered for each environment.
fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%") || text.contains("{#")
}

/// The volume name rule, written again here.
fn valid_volume_name(name: &str) -> bool {
    (1..=MAX_VOLUME_NAME_LEN).contains(&name.len())
        && name.as_bytes()[0].is_ascii_lowercase()
        && name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
}

/// Why `task` breaks the limits, if it does.
fn task_problem(task: &TaskSpec) -> Option<String> {
    let within = |value: u64, min: u64, max: u64| (min..=max).contains(&value);
    if let Some(image) = &task.image
        && (image.trim() != image
            || (is_template(image) && image.len() > MAX_IMAGE_TEMPLATE_LEN)
            || (!is_template(image) && ImageRef::parse(image).is_err()))
    {
        return Some(format!("invalid image {image:?}"));
    }
    if task.command.as_ref().is_some_and(|argv| !valid_argv(argv)) {
        return Some("invalid command".into());
    }
    let env_bytes: usize = task.env.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    let env_names_ok = task.env.keys().all(|name| {
        !name.is_empty()
            && name.len() <= MAX_ENV_NAME_BYTES
            && !name
                .chars()
                .any(|c| c == '=' || c.is_whitespace() || c.is_control())
    });
    if !env_names_ok
        || task.env.values().any(|value| value.contains('\0'))
        || task.env.len() > MAX_ENV_VARS
        || env_bytes > MAX_ENV_BYTES
    {
        return Some("invalid env".into());
    }
    if task
        .run_on_host
        .as_deref()
        .is_some_and(|host| !valid_name(host))
    {
        return Some("invalid host".into());
    }
    if task
        .resources
        .memory_bytes
        .is_some_and(|bytes| !within(bytes, MIN_MEMORY_BYTES, MAX_MEMORY_BYTES))
    {
        return Some("memory out of range".into());
    }
    let (min_nanos, max_nanos) = ((MIN_CPUS * 1e9) as u64, (MAX_CPUS * 1e9) as u64);
    if task
        .resources
        .nano_cpus
        .is_some_and(|nanos| !within(nanos, min_nanos, max_nanos))
    {
        return Some("cpu out of range".into());
    }
    if json_has_nul(&serde_json::Value::Object(task.docker_hostconfig.clone()))
        || json_has_nul(&serde_json::Value::Object(task.docker_config.clone()))
    {
        return Some("NUL in Docker fields".into());
    }
    if let Some(check) = &task.check {
        let timing_ok = within(check.interval_ms, MIN_INTERVAL_MS, MAX_INTERVAL_MS)
            && within(check.timeout_ms, MIN_TIMEOUT_MS, MAX_TIMEOUT_MS)
            && within(check.start_period_ms, 0, MAX_START_PERIOD_MS)
            && (MIN_RETRIES..=MAX_RETRIES).contains(&check.retries);
        let probe_ok = match &check.probe {
            Probe::Http { url } if is_template(url) => {
                url.len() <= MAX_HTTP_TARGET_LEN + 30 && !url.chars().any(char::is_control)
            }
            Probe::Http { url } => {
                url.len() <= MAX_HTTP_TARGET_LEN + 30
                    && (url.starts_with("http://") || url.starts_with("https://"))
                    && !url.chars().any(|c| c.is_whitespace() || c.is_control())
            }
            Probe::Tcp { port } => *port >= 1 || task.auto_port,
            Probe::Exec { command } => valid_argv(command),
        };
        if !timing_ok || !probe_ok {
            return Some(format!("invalid check {check:?}"));
        }
    }
    if task.auto_port && task.port != 0 {
        return Some("an allocated port before rendering".into());
    }
    let mut mounts = HashSet::new();
    let mut volume_names = HashSet::new();
    if task.volumes.len() > MAX_VOLUMES {
        return Some("too many volumes".into());
    }
    for volume in &task.volumes {
        let mount = volume.mount.trim_end_matches('/');
        if !valid_volume_name(&volume.name)
            || !volume_names.insert(volume.name.as_str())
            || !volume.mount.starts_with('/')
            || mount.is_empty()
            || !mounts.insert(mount)
            || volume.mount.len() > MAX_VOLUME_PATH_LEN
            || volume
                .mount
                .chars()
                .any(|c| c.is_control() || c == ':' || c == ',')
            || volume
                .seed
                .as_ref()
                .is_some_and(|seed| seed.len() > MAX_VOLUME_PATH_LEN || seed.contains('\0'))
        {
            return Some(format!("invalid volume {volume:?}"));
        }
    }
    None
}

/// Why `spec` breaks the limits, if it does.
fn spec_problem(spec: &ServiceSpec) -> Option<String> {
    if !valid_name(&spec.service) {
        return Some(format!("invalid service name {:?}", spec.service));
    }
    if spec.jobs.is_empty() || spec.jobs.len() > MAX_JOBS {
        return Some(format!("{} jobs", spec.jobs.len()));
    }
    let mut job_names = HashSet::new();
    let mut task_names = HashSet::new();
    for job in &spec.jobs {
        if !valid_name(&job.name) || !job_names.insert(job.name.as_str()) {
            return Some(format!("invalid or duplicate job name {:?}", job.name));
        }
        let update = &job.update;
        let update_ok = (MIN_BATCH_SIZE..=MAX_BATCH_SIZE).contains(&update.batch_size)
            && update.canary <= MAX_CANARY
            && update.min_healthy_time_ms <= MAX_MIN_HEALTHY_TIME_MS
            && (MIN_HEALTHY_DEADLINE_MS..=MAX_HEALTHY_DEADLINE_MS)
                .contains(&update.healthy_deadline_ms);
        if !update_ok {
            return Some(format!("invalid update policy {update:?}"));
        }
        if job.tasks.is_empty() {
            return Some(format!("job {:?} has no tasks", job.name));
        }
        for task in &job.tasks {
            if !valid_name(&task.name) || !task_names.insert(task.name.as_str()) {
                return Some(format!("invalid or duplicate task name {:?}", task.name));
            }
            if let Some(problem) = task_problem(task) {
                return Some(format!("task {:?}: {problem}", task.name));
            }
        }
    }
    if task_names.len() > MAX_TASKS {
        return Some(format!("{} tasks", task_names.len()));
    }
    let mut routes = HashSet::new();
    for job in &spec.jobs {
        // `SERVICE/JOB` of another service, or a job of this one (stored as `JOB`).
        let bad_dependency = |dep: &String| match dep.split_once('/') {
            Some((service, name)) => {
                service == spec.service || !valid_name(service) || !valid_name(name)
            }
            None => *dep == job.name || !job_names.contains(dep.as_str()),
        };
        if job.depends_on.iter().any(bad_dependency) {
            return Some(format!("job {:?} has a bad dependency", job.name));
        }
        let options = &job.route_options;
        if let Some(route) = &job.route
            && (!valid_name(route) || !routes.insert((route.as_str(), options.path.as_deref())))
        {
            return Some(format!("job {:?} has a bad route", job.name));
        }
        let bad_path = options.path.as_deref().is_some_and(|path| {
            path.len() > MAX_ROUTE_PATH_LEN
                || !path.starts_with('/')
                || path
                    .split('/')
                    .skip(1)
                    .any(|segment| segment.is_empty() || segment == "..")
        });
        if bad_path
            || options
                .timeout_ms
                .is_some_and(|ms| ms == 0 || ms > MAX_ROUTE_TIMEOUT_MS)
            || options
                .max_body_bytes
                .is_some_and(|bytes| bytes > MAX_ROUTE_BODY_BYTES)
            || (job.route.is_none() && !options.is_unset())
        {
            return Some(format!("job {:?} has bad route options", job.name));
        }
        if job.drain_timeout_ms > MAX_DRAIN_TIMEOUT_MS {
            return Some(format!("job {:?} drains too long", job.name));
        }
    }
    let edges = spec
        .jobs
        .iter()
        .map(|job| (job.name.as_str(), job.depends_on.as_slice()));
    if dependency_waves(edges).is_err() {
        return Some("dependency cycle".into());
    }
    let stored = serde_json::to_string(spec).unwrap();
    if serde_json::from_str::<ServiceSpec>(&stored).ok().as_ref() != Some(spec) {
        return Some("the stored form does not read back equal".into());
    }
    render_problem(spec)
}

/// Why rendering the first tasks of `spec` for an environment breaks the limits, if it does.
/// Rendering may refuse (a variable that is not set); what it renders must be complete.
fn render_problem(spec: &ServiceSpec) -> Option<String> {
    let vars: BTreeMap<String, String> = [("a", "x"), ("b", "y")]
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    let addr = |service: &str, job: &str| vec![format!("{service}-{job}.test:80")];
    let ctx = RenderContext {
        env: "fuzz",
        vars: &vars,
        addr: &addr,
    };
    for job in &spec.jobs {
        for task in job.tasks.iter().take(3) {
            let mut task = task.clone();
            if task.auto_port {
                task.port = 31000;
            }
            let Ok(rendered) = render_task(&spec.service, job, &task, &ctx) else {
                continue;
            };
            // Other values may hold braces once rendered (a `{% raw %}` block's text).
            let templated = rendered.image.iter().any(|image| is_template(image));
            if templated || (rendered.auto_port && !rendered.env.contains_key("PORT")) {
                return Some(format!("task {:?} rendered incompletely", task.name));
            }
            let mut unrendered = rendered.clone();
            unrendered.port = 0;
            if let Some(problem) = task_problem(&unrendered) {
                return Some(format!("task {:?} rendered: {problem}", task.name));
            }
        }
    }
    None
}

#[derive(Default)]
struct Figures {
    accepted: Cell<u64>,
    refused: Cell<u64>,
    unlocated: Cell<u64>,
    slowest: Cell<Duration>,
}

#[test]
fn fuzz_parse_service_keeps_its_invariants() {
    let corpus = corpus();
    assert!(corpus.len() >= 20, "only {} corpus files", corpus.len());
    let cases = env_number("CJ_FUZZ_CASES").map_or(DEFAULT_CASES, |n| n as u32);
    let seed = env_number("CJ_FUZZ_SEED").unwrap_or(DEFAULT_SEED);
    let seed_bytes: Vec<u8> = std::iter::repeat_n(seed.to_le_bytes(), 4)
        .flatten()
        .collect();
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    // Half the cases start from a file that loads, so mutations also reach the checks made on
    // a well-formed file (most of the corpus is the invalid fixtures).
    let loading: Vec<usize> = (0..corpus.len())
        .filter(|index| coding_job_spec::parse_service("corpus.yaml", &corpus[*index]).is_ok())
        .collect();
    assert!(
        loading.len() >= 3,
        "only {} corpus files load",
        loading.len()
    );
    let file = prop_oneof![0..corpus.len(), prop::sample::select(loading)];
    let strategy = (file, prop::collection::vec(mutation(corpus.len()), 1..=3));
    let figures = Figures::default();
    let started = Instant::now();
    let result = runner.run(&strategy, |(file, mutations)| {
        let mut source = corpus[file].clone();
        for mutation in &mutations {
            apply(&mut source, mutation, &corpus);
        }
        let case_started = Instant::now();
        let parsed = catch_unwind(AssertUnwindSafe(|| {
            coding_job_spec::parse_service("fuzz.yaml", &source)
        }));
        let took = case_started.elapsed();
        figures.slowest.set(figures.slowest.get().max(took));
        let Ok(parsed) = parsed else {
            return Err(TestCaseError::fail(format!("panicked on {source:?}")));
        };
        match parsed {
            Ok(spec) => {
                figures.accepted.set(figures.accepted.get() + 1);
                if let Some(problem) = spec_problem(&spec) {
                    return Err(TestCaseError::fail(format!(
                        "accepted {source:?}: {problem}"
                    )));
                }
            }
            Err(errors) => {
                figures.refused.set(figures.refused.get() + 1);
                let unlocated = errors.0.iter().filter(|e| e.line < 1 || e.column < 1);
                figures
                    .unlocated
                    .set(figures.unlocated.get() + unlocated.count() as u64);
                if let Some(problem) = refusal_problem(&source, &errors) {
                    return Err(TestCaseError::fail(format!(
                        "refused {source:?}: {problem}"
                    )));
                }
            }
        }
        prop_assert!(took < Duration::from_secs(5), "took {took:?} on {source:?}");
        Ok(())
    });
    println!(
        "fuzz: {} cases from {} corpus files in {:.1}s (seed {seed:#x}): {} accepted, {} refused, \
         {} refusals without a location; slowest case {:?}",
        figures.accepted.get() + figures.refused.get(),
        corpus.len(),
        started.elapsed().as_secs_f64(),
        figures.accepted.get(),
        figures.refused.get(),
        figures.unlocated.get(),
        figures.slowest.get(),
    );
    if let Err(failure) = result {
        panic!("{failure}");
    }
    assert_eq!(figures.unlocated.get(), 0);
}
