//! Each credential source, with a fixed environment: entries' own fields, environment variables,
//! files, Docker configs with `auths`, and credential helpers (small shell scripts on `PATH`).

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use tempfile::TempDir;

use super::*;

#[derive(Default)]
struct FixedEnvironment(HashMap<String, String>);

impl FixedEnvironment {
    fn with(mut self, name: &str, value: &str) -> Self {
        self.0.insert(name.to_string(), value.to_string());
        self
    }
}

impl Environment for FixedEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}

fn entry(json: &str) -> RegistryConfig {
    serde_json::from_str(json).unwrap()
}

fn auth(username: &str, password: &str) -> Option<RegistryAuth> {
    Some(RegistryAuth {
        username: username.into(),
        password: password.into(),
    })
}

async fn resolved(
    entry: Option<&RegistryConfig>,
    host: &str,
    env: &FixedEnvironment,
) -> Result<Option<RegistryAuth>, String> {
    resolve(entry, host, env)
        .await
        .map_err(|error| error.to_string())
}

/// A Docker config dir with `config.json` holding `json`, as `DOCKER_CONFIG` names one.
fn docker_config_dir(json: &str) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), json).unwrap();
    dir
}

/// `docker-credential-NAME` in `dir`: it answers for registry.example.com and Docker Hub, and
/// says "credentials not found" for anything else, as docker-credential-helpers' helpers do.
fn write_helper(dir: &Path, name: &str) {
    let script = r#"#!/bin/sh
[ "$1" = get ] || exit 2
server=$(cat)
case "$server" in
  registry.example.com) echo '{"ServerURL":"registry.example.com","Username":"helper-user","Secret":"helper-Pa55"}' ;;
  https://index.docker.io/v1/) echo '{"ServerURL":"https://index.docker.io/v1/","Username":"hub-user","Secret":"hub-Pa55"}' ;;
  token.example.com) echo '{"ServerURL":"token.example.com","Username":"<token>","Secret":"refresh"}' ;;
  broken.example.com) echo 'keyring is locked' >&2; exit 3 ;;
  *) echo 'credentials not found in native keychain'; exit 1 ;;
esac
"#;
    let path = dir.join(format!("docker-credential-{name}"));
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[tokio::test]
async fn passwords_come_from_the_entry_a_variable_or_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("password");
    std::fs::write(&file, "from-File-Pa55\n").unwrap();
    let env = FixedEnvironment::default().with("REGISTRY_PASSWORD", "from-Env-Pa55");
    let inline = entry(r#"{"host":"r","username":"ci","password":"inline-Pa55"}"#);
    let from_env = entry(r#"{"host":"r","username":"ci","password_env":"REGISTRY_PASSWORD"}"#);
    let from_file = RegistryConfig {
        host: "r".into(),
        username: Some("ci".into()),
        password_file: Some(file),
        ..RegistryConfig::default()
    };

    assert_eq!(
        resolved(Some(&inline), "r", &env).await,
        Ok(auth("ci", "inline-Pa55"))
    );
    assert_eq!(
        resolved(Some(&from_env), "r", &env).await,
        Ok(auth("ci", "from-Env-Pa55"))
    );
    assert_eq!(
        resolved(Some(&from_file), "r", &env).await,
        Ok(auth("ci", "from-File-Pa55"))
    );
    for config in [&inline, &from_env, &from_file] {
        assert!(check(config, &env).is_ok(), "{config:?}");
    }
}

#[tokio::test]
async fn unset_variables_and_unreadable_files_name_the_field() {
    let env = FixedEnvironment::default().with("EMPTY", "");
    let unset = entry(r#"{"host":"r","username":"ci","password_env":"REGISTRY_PASSWORD"}"#);
    let empty = entry(r#"{"host":"r","username":"ci","password_env":"EMPTY"}"#);
    let missing = entry(r#"{"host":"r","username":"ci","password_file":"/nonexistent/password"}"#);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("blank"), "\n").unwrap();
    let blank = RegistryConfig {
        password_file: Some(dir.path().join("blank")),
        ..missing.clone()
    };

    for (config, expected) in [
        (
            &unset,
            "registry r: password_env: environment variable REGISTRY_PASSWORD is not set".to_string(),
        ),
        (
            &empty,
            "registry r: password_env: environment variable EMPTY is empty".to_string(),
        ),
        (
            &missing,
            "registry r: password_file: cannot read /nonexistent/password: No such file or directory (os error 2)".to_string(),
        ),
        (
            &blank,
            format!(
                "registry r: password_file: {} is empty",
                dir.path().join("blank").display()
            ),
        ),
    ] {
        assert_eq!(resolved(Some(config), "r", &env).await, Err(expected.clone()));
        assert_eq!(check(config, &env).unwrap_err().to_string(), expected);
    }
}

#[tokio::test]
async fn docker_config_auths_are_read_by_host_as_docker_writes_them() {
    // "ci:docker-Pa55" and "hub:hub-Pa55" in base64, as `docker login` stores them.
    let dir = docker_config_dir(
        r#"{"auths":{
            "registry.example.com":{"auth":"Y2k6ZG9ja2VyLVBhNTU="},
            "https://other.example.com/v1/":{"username":"ci2","password":"plain-Pa55"},
            "https://index.docker.io/v1/":{"auth":"aHViOmh1Yi1QYTU1"},
            "empty.example.com":{}
        }}"#,
    );
    let env = FixedEnvironment::default().with("DOCKER_CONFIG", dir.path().to_str().unwrap());

    for (host, expected) in [
        ("registry.example.com", auth("ci", "docker-Pa55")),
        ("REGISTRY.example.com", auth("ci", "docker-Pa55")),
        ("other.example.com", auth("ci2", "plain-Pa55")),
        ("docker.io", auth("hub", "hub-Pa55")),
        ("empty.example.com", None),
        ("unknown.example.com", None),
    ] {
        assert_eq!(resolved(None, host, &env).await, Ok(expected), "{host}");
    }
    // An entry without credentials reads Docker's config too.
    let bare = entry(r#"{"host":"registry.example.com","insecure":true}"#);
    assert_eq!(
        resolved(Some(&bare), "registry.example.com", &env).await,
        Ok(auth("ci", "docker-Pa55"))
    );
}

#[tokio::test]
async fn docker_config_is_found_as_docker_finds_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(".docker")).unwrap();
    std::fs::write(
        dir.path().join(".docker/config.json"),
        r#"{"auths":{"registry.example.com":{"auth":"Y2k6ZG9ja2VyLVBhNTU="}}}"#,
    )
    .unwrap();
    let home = FixedEnvironment::default().with("HOME", dir.path().to_str().unwrap());
    assert_eq!(
        resolved(None, "registry.example.com", &home).await,
        Ok(auth("ci", "docker-Pa55"))
    );
    // Without a config file, or a place for one, access is anonymous.
    let nowhere = FixedEnvironment::default().with("DOCKER_CONFIG", "/nonexistent");
    assert_eq!(
        resolved(None, "registry.example.com", &nowhere).await,
        Ok(None)
    );
    assert_eq!(
        resolved(None, "registry.example.com", &FixedEnvironment::default()).await,
        Ok(None)
    );
    // An entry's own `docker_config` wins over Docker's.
    let other = docker_config_dir(
        r#"{"auths":{"registry.example.com":{"username":"own","password":"own-Pa55"}}}"#,
    );
    let own = RegistryConfig {
        host: "registry.example.com".into(),
        docker_config: Some(other.path().join("config.json")),
        ..RegistryConfig::default()
    };
    assert_eq!(
        resolved(Some(&own), "registry.example.com", &home).await,
        Ok(auth("own", "own-Pa55"))
    );
}

#[tokio::test]
async fn broken_docker_configs_are_clear_errors_without_secrets() {
    let bad_auth = docker_config_dir(r#"{"auths":{"r":{"auth":"c2VjcmV0LW5vLWNvbG9u"}}}"#);
    let env = FixedEnvironment::default().with("DOCKER_CONFIG", bad_auth.path().to_str().unwrap());
    let error = resolved(None, "r", &env).await.unwrap_err();
    assert_eq!(
        error,
        format!(
            "docker config {}: auths entry for r: auth is not base64 of user:password",
            bad_auth.path().join("config.json").display()
        )
    );
    assert!(
        !error.contains("c2VjcmV0") && !error.contains("secret"),
        "{error}"
    );

    let identity = docker_config_dir(r#"{"auths":{"r":{"identitytoken":"refresh-tok"}}}"#);
    let env = FixedEnvironment::default().with("DOCKER_CONFIG", identity.path().to_str().unwrap());
    let error = resolved(None, "r", &env).await.unwrap_err();
    assert!(
        error.contains("identity tokens are not supported"),
        "{error}"
    );
    assert!(!error.contains("refresh-tok"), "{error}");

    let truncated = docker_config_dir("{");
    let not_json = RegistryConfig {
        host: "r".into(),
        docker_config: Some(truncated.path().join("config.json")),
        ..RegistryConfig::default()
    };
    let error = check(&not_json, &env).unwrap_err().to_string();
    assert!(error.starts_with("registry r: docker_config: "), "{error}");
    assert!(error.contains("not a Docker config"), "{error}");
    let missing = entry(r#"{"host":"r","docker_config":"/nonexistent/config.json"}"#);
    assert_eq!(
        check(&missing, &env).unwrap_err().to_string(),
        "registry r: docker_config: /nonexistent/config.json: cannot read: No such file or directory (os error 2)"
    );
}

#[tokio::test]
async fn credential_helpers_are_asked_with_the_host_on_stdin() {
    let bin = tempfile::tempdir().unwrap();
    write_helper(bin.path(), "fake");
    let path = format!("/nonexistent:{}", bin.path().display());
    // `credHelpers` for one host, `credsStore` for the rest; `auths` serves when the helper has
    // nothing.
    let dir = docker_config_dir(
        r#"{"credHelpers":{"registry.example.com":"fake"},"credsStore":"fake",
            "auths":{"fallback.example.com":{"auth":"Y2k6ZG9ja2VyLVBhNTU="}}}"#,
    );
    let env = FixedEnvironment::default()
        .with("DOCKER_CONFIG", dir.path().to_str().unwrap())
        .with("PATH", &path);

    for (host, expected) in [
        ("registry.example.com", auth("helper-user", "helper-Pa55")),
        ("docker.io", auth("hub-user", "hub-Pa55")),
        ("fallback.example.com", auth("ci", "docker-Pa55")),
        ("unknown.example.com", None),
    ] {
        assert_eq!(resolved(None, host, &env).await, Ok(expected), "{host}");
    }

    let error = resolved(None, "broken.example.com", &env)
        .await
        .unwrap_err();
    assert_eq!(
        error,
        "credential helper docker-credential-fake for broken.example.com: failed (exit status: 3): keyring is locked"
    );
    let error = resolved(None, "token.example.com", &env).await.unwrap_err();
    assert!(error.contains("identity token"), "{error}");
    assert!(!error.contains("refresh"), "{error}");

    let missing = docker_config_dir(r#"{"credsStore":"absent"}"#);
    let env = FixedEnvironment::default()
        .with("DOCKER_CONFIG", missing.path().to_str().unwrap())
        .with("PATH", &path);
    assert_eq!(
        resolved(None, "registry.example.com", &env).await,
        Err("credential helper docker-credential-absent for registry.example.com: not found in PATH".into())
    );
}
