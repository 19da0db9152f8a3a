//! Kamal imports of small hand-written `deploy.yml` files, Kamal 1 and 2: each written file is
//! read back with the config's own parser and checked job by job, and the report says what
//! was changed or left out.

mod common;

use cj_spec::{JobSpec, Probe, ServiceSpec};
use coding_job_import::{Format, Import, Options, Source, import};

/// What an import wrote, read back as `push` reads it.
struct Imported {
    import: Import,
    spec: ServiceSpec,
}

impl Imported {
    fn job(&self, name: &str) -> &JobSpec {
        self.spec
            .job(name)
            .unwrap_or_else(|| panic!("no job {name} in:\n{}", self.import.files[0].text))
    }

    /// The reasons given for what is left out at `path`.
    fn left(&self, path: &str) -> Vec<&str> {
        self.import
            .not_carried
            .iter()
            .filter(|left| left.path == path)
            .map(|left| left.why.as_str())
            .collect()
    }

    fn left_what(&self, path: &str) -> Vec<&str> {
        self.import
            .not_carried
            .iter()
            .filter(|left| left.path == path)
            .map(|left| left.what.as_str())
            .collect()
    }

    fn notes(&self, path: &str) -> Vec<&str> {
        self.import
            .notes
            .iter()
            .filter(|note| note.path == path)
            .map(|note| note.note.as_str())
            .collect()
    }

    fn variable(&self, name: &str) -> &coding_job_import::Variable {
        self.import
            .variables
            .iter()
            .find(|variable| variable.name == name)
            .unwrap_or_else(|| panic!("no variable {name}"))
    }
}

fn kamal(text: &str) -> Imported {
    kamal_with(text, None)
}

fn kamal_with(text: &str, destination: Option<&str>) -> Imported {
    let source = Source {
        file: "deploy.yml",
        text,
    };
    let options = Options {
        destination: destination.map(|text| Source {
            file: "deploy.staging.yml",
            text,
        }),
        ..Options::default()
    };
    let import = import(Format::Kamal, &source, &options).expect("imports");
    assert_eq!(import.files.len(), 1);
    let spec = common::accepted_by_push(&import)
        .unwrap_or_else(|problem| panic!("{problem}"))
        .remove(0);
    Imported { import, spec }
}

fn hosts(job: &JobSpec) -> Vec<&str> {
    job.tasks
        .iter()
        .map(|task| task.run_on_host.as_deref().unwrap_or("-"))
        .collect()
}

const KAMAL1: &str = r#"
service: shop
image: acme/shop
registry:
  server: ghcr.io
  username: acme
  password:
    - KAMAL_REGISTRY_PASSWORD
servers:
  web:
    hosts:
      - 10.0.0.1
      - 10.0.0.2
    labels:
      traefik.http.routers.shop.rule: Host(`shop.example.com`)
      team: storefront
    options:
      memory: 512m
      network: private
  workers:
    hosts:
      - 10.0.0.3
    cmd: bin/jobs --queue default
    env:
      clear:
        QUEUE: default
healthcheck:
  path: /health
  port: 4000
  max_attempts: 7
  interval: 10s
  cord: false
traefik:
  args:
    accesslog: true
env:
  clear:
    RAILS_ENV: production
    DB_HOST: <%= ENV.fetch("DB_HOST", "10.0.0.9") %>
    BUILD: <%= `git rev-parse HEAD` %>
  secret:
    - RAILS_MASTER_KEY
accessories:
  db:
    image: mysql:8.0
    host: 10.0.0.9
    port: "127.0.0.1:3306:3306"
    env:
      clear:
        MYSQL_ROOT_HOST: '%'
      secret:
        - MYSQL_ROOT_PASSWORD
    files:
      - config/my.cnf:/etc/mysql/my.cnf
    directories:
      - mysql_data:/var/lib/mysql
      - /srv/backups:/backups
stop_wait_time: 20
builder:
  args:
    COMMIT: <%= `git rev-parse HEAD` %>
"#;

#[test]
fn kamal1_roles_become_jobs_with_one_task_per_host() {
    let imported = kamal(KAMAL1);
    assert_eq!(imported.spec.service, "shop");
    let web = imported.job("web");
    assert_eq!(hosts(web), ["10.0.0.1", "10.0.0.2"]);
    assert_eq!(
        web.tasks[0].image.as_deref(),
        Some("ghcr.io/acme/shop:{{ vars.version }}")
    );
    assert_eq!(imported.variable("version").default, None);
    let workers = imported.job("workers");
    assert_eq!(hosts(workers), ["10.0.0.3"]);
    assert_eq!(
        workers.tasks[0].command.as_deref(),
        Some(&["bin/jobs".to_string(), "--queue".into(), "default".into()][..])
    );
    // A role's env is merged over the top level's.
    assert_eq!(workers.tasks[0].env["QUEUE"], "default");
    assert_eq!(workers.tasks[0].env["RAILS_ENV"], "production");
    assert!(!web.tasks[0].env.contains_key("QUEUE"));
}

#[test]
fn kamal1_traefik_role_is_routed_and_checked_as_its_healthcheck_says() {
    let imported = kamal(KAMAL1);
    let web = imported.job("web");
    assert_eq!(web.route.as_deref(), Some("web"));
    let task = &web.tasks[0];
    assert_eq!(task.port, 4000);
    let check = task.check.as_ref().expect("a check");
    assert_eq!(
        check.probe,
        Probe::Http {
            url: "http://127.0.0.1:4000/health".into()
        }
    );
    assert_eq!(check.interval_ms, 10_000);
    // 7 attempts, waiting 1s, 2s, ... 7s.
    assert_eq!(web.update.healthy_deadline_ms, 28_000);
    // Only the primary role runs Traefik, and only it gets the top level's check.
    let workers = imported.job("workers");
    assert_eq!(workers.route, None);
    assert!(workers.tasks[0].check.is_none());
    assert_eq!(
        imported.left("healthcheck.cord"),
        [
            "the cord file let Traefik stop routing to an old container; the router takes a task out of its pool before it stops it (drain_timeout)"
        ]
    );
    assert!(imported.left("traefik.args")[0].contains("replaced by the router"));
    assert!(
        imported.left("servers.web.labels.traefik.http.routers.shop.rule")[0]
            .contains("Traefik routing label")
    );
    assert_eq!(
        task.docker_config["Labels"],
        serde_json::json!({"team": "storefront"})
    );
    assert_eq!(task.resources.memory_bytes, Some(512 << 20));
    assert!(imported.left("servers.web.options.network")[0].contains("host networking"));
    assert_eq!(task.docker_config["StopTimeout"], 20);
}

#[test]
fn env_secrets_are_secret_variables_and_clear_values_are_kept() {
    let imported = kamal(KAMAL1);
    let web = imported.job("web");
    let env = &web.tasks[0].env;
    assert_eq!(env["RAILS_MASTER_KEY"], "{{ vars.RAILS_MASTER_KEY }}");
    assert!(web.secret_env.contains(&"RAILS_MASTER_KEY".to_string()));
    assert!(imported.variable("RAILS_MASTER_KEY").secret);
    assert!(imported.variable("MYSQL_ROOT_PASSWORD").secret);
    assert!(!imported.notes("env.secret").is_empty());
    let db = imported.job("db");
    assert_eq!(db.tasks[0].env["MYSQL_ROOT_HOST"], "%");
    assert_eq!(db.secret_env, ["MYSQL_ROOT_PASSWORD"]);
}

#[test]
fn erb_environment_reads_become_variables_and_other_ruby_is_reported_with_its_line() {
    let imported = kamal(KAMAL1);
    let env = &imported.job("web").tasks[0].env;
    assert_eq!(env["DB_HOST"], "{{ vars.DB_HOST }}");
    let db_host = imported.variable("DB_HOST");
    assert_eq!(db_host.default.as_deref(), Some("10.0.0.9"));
    assert_eq!(db_host.used_at, ["env.clear.DB_HOST"]);
    // Other Ruby is kept as text in an env value, and reported with its line.
    assert_eq!(env["BUILD"], "<%= `git rev-parse HEAD` %>");
    assert_eq!(
        imported.left_what("env.clear.BUILD"),
        ["<%= `git rev-parse HEAD` %> (ERB at deploy.yml:40)"]
    );
    // In a section left out as a whole, the ERB's line is shown with it.
    assert!(imported.left_what("builder")[0].ends_with("(ERB at deploy.yml:61)"));
}

#[test]
fn accessories_are_pinned_with_their_port_volumes_and_files_reported() {
    let imported = kamal(KAMAL1);
    let db = imported.job("db");
    assert_eq!(hosts(db), ["10.0.0.9"]);
    assert_eq!(db.tasks[0].image.as_deref(), Some("mysql:8.0"));
    assert_eq!(db.tasks[0].port, 3306);
    assert!(imported.notes("accessories.db.port")[0].contains("published it on 127.0.0.1 only"));
    let volumes = &db.tasks[0].volumes;
    assert_eq!(volumes.len(), 1);
    assert_eq!(
        (volumes[0].name.as_str(), volumes[0].mount.as_str()),
        ("mysql-data", "/var/lib/mysql")
    );
    assert_eq!(
        db.tasks[0].docker_hostconfig["Binds"],
        serde_json::json!(["/srv/backups:/backups"])
    );
    assert!(imported.left("accessories.db.files[0]")[0].contains("seed"));
    assert!(imported.left("registry.password")[0].contains("registries:"));
}

const KAMAL2: &str = r#"
service: shop
image: acme/shop
servers:
  web:
    hosts:
      - app-1
      - app-2: [canary]
  jobs:
    hosts:
      - app-3
    cmd: bin/jobs
    proxy: false
  admin:
    hosts:
      - app-3
    proxy:
      app_port: 4000
      host: admin.example.com
proxy:
  host: shop.example.com
  app_port: 3000
  ssl: true
  healthcheck:
    path: /healthz
    interval: 3
    timeout: 2
  buffering:
    requests: false
env:
  clear:
    LOG_LEVEL: info
    HOST_TOKEN: "${HOST_TOKEN}"
  secret:
    - DATABASE_PASSWORD:MAIN_DB_PASSWORD
  tags:
    canary:
      LOG_LEVEL: debug
volumes:
  - "/srv/uploads:/rails/public/uploads"
logging:
  driver: json-file
  options:
    max-size: 100m
accessories:
  redis:
    image: redis:7
    roles:
      - web
    port: 6379
    directories:
      - local: data
        remote: /data
        mode: "0750"
    options:
      cpus: 0.5
aliases:
  console: app exec --interactive --reuse "bin/rails console"
drain_timeout: 5
deploy_timeout: 20
boot:
  limit: 50%
  wait: 2
x-shared: &shared
  a: 1
"#;

#[test]
fn kamal2_proxy_routes_the_primary_role_and_roles_that_ask() {
    let imported = kamal(KAMAL2);
    let web = imported.job("web");
    assert_eq!(web.route.as_deref(), Some("web"));
    assert_eq!(web.drain_timeout_ms, 5000);
    let task = &web.tasks[0];
    assert_eq!(task.port, 3000);
    let check = task.check.as_ref().expect("a check");
    assert_eq!(
        check.probe,
        Probe::Http {
            url: "http://127.0.0.1:3000/healthz".into()
        }
    );
    assert_eq!((check.interval_ms, check.timeout_ms), (3000, 2000));
    let notes = imported.notes("proxy");
    assert!(
        notes
            .iter()
            .any(|note| note.contains("web.ENV.DOMAIN") && note.contains("shop.example.com")),
        "{notes:?}"
    );
    assert!(notes.iter().any(|note| note.starts_with("ssl:")));
    assert!(imported.left("proxy.buffering")[0].contains("no equivalent"));
    // `proxy: false` on a role, and a role's own proxy settings over the top level's.
    assert_eq!(imported.job("jobs").route, None);
    let admin = imported.job("admin");
    assert_eq!(admin.route.as_deref(), Some("admin"));
    assert_eq!(admin.tasks[0].port, 4000);
    assert!(
        imported
            .notes("servers.admin.proxy")
            .iter()
            .any(|note| note.contains("admin.example.com"))
    );
}

#[test]
fn kamal2_env_tags_aliases_and_shell_variables() {
    let imported = kamal(KAMAL2);
    let web = imported.job("web");
    let env = |task: usize| &web.tasks[task].env;
    assert_eq!(
        env(0)["LOG_LEVEL"],
        "{% if task.name == \"web-app-2\" %}debug{% else %}info{% endif %}"
    );
    assert!(!imported.notes("env.tags.canary").is_empty());
    // `KEY:ALIAS` reads the secret ALIAS.
    assert_eq!(env(0)["DATABASE_PASSWORD"], "{{ vars.MAIN_DB_PASSWORD }}");
    assert!(imported.variable("MAIN_DB_PASSWORD").secret);
    assert!(web.secret_env.contains(&"DATABASE_PASSWORD".to_string()));
    // `${NAME}` is expanded by the host's shell in Kamal: a variable here.
    assert_eq!(env(0)["HOST_TOKEN"], "{{ vars.HOST_TOKEN }}");
    assert!(imported.notes("env.clear.HOST_TOKEN")[0].contains("host's shell"));
    // Hosts without tags in a role: plain values.
    assert_eq!(imported.job("jobs").tasks[0].env["LOG_LEVEL"], "info");
    assert!(imported.left("aliases")[0].contains("CLI directly"));
    // Extensions are for YAML anchors; Kamal ignores them.
    assert!(imported.left("x-shared").is_empty());
}

#[test]
fn kamal2_top_level_docker_settings_and_rollout_timing() {
    let imported = kamal(KAMAL2);
    let web = imported.job("web");
    let task = &web.tasks[0];
    assert_eq!(
        task.docker_hostconfig["Binds"],
        serde_json::json!(["/srv/uploads:/rails/public/uploads"])
    );
    assert_eq!(
        task.docker_hostconfig["LogConfig"],
        serde_json::json!({"Type": "json-file", "Config": {"max-size": "100m"}})
    );
    assert_eq!(web.update.healthy_deadline_ms, 20_000);
    assert_eq!(web.update.min_healthy_time_ms, 2000);
    assert_eq!(web.update.batch_size, 1);
    // A job that is not routed is stopped with the drain timeout, as Kamal stops it.
    let jobs = imported.job("jobs");
    assert_eq!(jobs.tasks[0].docker_config["StopTimeout"], 5);
}

#[test]
fn kamal2_accessory_on_roles_with_a_directory_volume() {
    let imported = kamal(KAMAL2);
    let redis = imported.job("redis");
    assert_eq!(hosts(redis), ["app-1", "app-2"]);
    assert_eq!(redis.tasks[0].port, 6379);
    assert_eq!(redis.tasks[0].volumes[0].name, "data");
    assert_eq!(redis.tasks[0].volumes[0].mount, "/data");
    assert_eq!(redis.tasks[0].resources.nano_cpus, Some(500_000_000));
    assert!(imported.left("accessories.redis.directories[0].mode")[0].contains("mode and owner"));
    assert!(imported.notes("accessories.redis.directories[0]")[0].contains("volume data"));
}

#[test]
fn a_destination_file_is_merged_over_the_base() {
    let staging = r#"
servers:
  web:
    hosts:
      - staging-1
env:
  clear:
    LOG_LEVEL: debug
proxy:
  host: staging.shop.example.com
"#;
    let imported = kamal_with(KAMAL2, Some(staging));
    let web = imported.job("web");
    // Lists are replaced; maps merge key by key.
    assert_eq!(hosts(web), ["staging-1"]);
    assert_eq!(web.tasks[0].env["LOG_LEVEL"], "debug");
    assert_eq!(web.tasks[0].env["HOST_TOKEN"], "{{ vars.HOST_TOKEN }}");
    assert_eq!(web.tasks[0].port, 3000);
    assert!(
        imported
            .notes("proxy")
            .iter()
            .any(|note| note.contains("staging.shop.example.com"))
    );
    // The base's other roles stay.
    assert_eq!(hosts(imported.job("jobs")), ["app-3"]);
}

#[test]
fn a_plain_list_of_hosts_is_the_web_role() {
    let imported =
        kamal("service: blog\nimage: me/blog\nservers:\n  - 192.168.0.1\n  - 192.168.0.2\n");
    let web = imported.job("web");
    assert_eq!(hosts(web), ["192.168.0.1", "192.168.0.2"]);
    // No proxy section: Kamal's proxy still serves the primary role, on port 80.
    assert_eq!(web.route.as_deref(), Some("web"));
    assert_eq!(web.tasks[0].port, 80);
    assert!(imported.notes("servers")[0].contains("agent names"));
}

#[test]
fn erb_in_hosts_keys_and_code_is_reported_and_left_out() {
    let imported = kamal(
        r#"service: blog
image: <%= ENV['REGISTRY_USER'] %>/blog
servers:
  web:
    - <%= ENV["WEB_HOST"] %>
<% if ENV["WITH_WORKERS"] %>
  workers:
    - 10.0.0.5
<% end %>
env:
  clear:
    <%= ENV["FLAG_NAME"] %>: "on"
    GREETING: <%= ENV.fetch("GREETING") { "hello" } %>
accessories:
  cache:
    image: redis:7
    host: <%= `hostname`.strip %>
"#,
    );
    let web = imported.job("web");
    assert_eq!(
        web.tasks[0].image.as_deref(),
        Some("{{ vars.REGISTRY_USER }}/blog:{{ vars.version }}")
    );
    // A host cannot be a variable: the job is left to the server to place.
    assert_eq!(hosts(web), ["-"]);
    assert_eq!(
        imported.left_what("servers.web[0]"),
        [r#"<%= ENV["WEB_HOST"] %> (ERB at deploy.yml:5)"#]
    );
    assert_eq!(imported.left("deploy.yml:6").len(), 1);
    assert_eq!(imported.left("deploy.yml:9").len(), 1);
    // Both branches of the code are read as written.
    assert_eq!(hosts(imported.job("workers")), ["10.0.0.5"]);
    assert_eq!(
        imported.left_what(r#"env.clear.<%= ENV["FLAG_NAME"] %>"#),
        [r#"<%= ENV["FLAG_NAME"] %> (ERB at deploy.yml:12)"#]
    );
    assert_eq!(web.tasks[0].env["GREETING"], "{{ vars.GREETING }}");
    assert_eq!(
        imported.variable("GREETING").default.as_deref(),
        Some("hello")
    );
    assert_eq!(
        imported.left_what("accessories.cache.host"),
        ["<%= `hostname`.strip %> (ERB at deploy.yml:17)"]
    );
    assert_eq!(hosts(imported.job("cache")), ["-"]);
}

#[test]
fn a_file_that_is_not_a_mapping_is_an_error() {
    let source = Source {
        file: "deploy.yml",
        text: "- a\n- b\n",
    };
    let error = import(Format::Kamal, &source, &Options::default()).unwrap_err();
    assert!(error.to_string().contains("expected a Kamal deploy.yml"));
}

#[test]
fn what_push_would_refuse_is_left_out_rather_than_written() {
    let imported = kamal(
        r#"service: blog
image: Me/Blog
servers:
  web:
    - web-1
accessories:
  db:
    image: "postgres 16"
    host: web-1
    directories:
      - data:/var/lib/postgresql/data
      - other:/var/lib/postgresql/data
"#,
    );
    assert_eq!(imported.job("web").tasks[0].image, None);
    assert!(imported.left("image")[0].starts_with("not an image reference"));
    let db = imported.job("db");
    assert_eq!(db.tasks[0].image, None);
    assert!(imported.left("accessories.db.image")[0].starts_with("not an image reference"));
    assert_eq!(db.tasks[0].volumes.len(), 1);
    assert!(imported.left("accessories.db.directories[1]")[0].contains("mounted at this path"));
}
