//! Docker credential helpers: `docker-credential-NAME get`, given the server on standard input,
//! answers `{"ServerURL": ..., "Username": ..., "Secret": ...}`, or fails saying it holds nothing
//! for that server. The program is looked up in `PATH`, as Docker does.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::Environment;
use crate::RegistryAuth;
use crate::error::CredentialError;

/// A helper may ask a keyring or agent; one that hangs must not hold a listing forever.
const TIMEOUT: Duration = Duration::from_secs(30);
/// What helpers say when they hold nothing for a server (docker-credential-helpers'
/// `ErrCredentialsNotFound`): anonymous access, as Docker then uses.
const NOT_FOUND: &str = "credentials not found";
/// The username by which a helper says its secret is an identity (OAuth refresh) token.
const IDENTITY_TOKEN_USER: &str = "<token>";

/// The helper's credentials for `server_url`; `None` if it holds none. `host` is for messages.
pub(super) async fn get(
    name: &str,
    server_url: &str,
    host: &str,
    env: &dyn Environment,
) -> Result<Option<RegistryAuth>, CredentialError> {
    let error = |reason: String| CredentialError::Helper {
        helper: name.to_string(),
        host: host.to_string(),
        reason,
    };
    let valid_name = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.is_empty() || !name.chars().all(valid_name) {
        return Err(error("not a credential helper name".into()));
    }
    let program = find_program(&format!("docker-credential-{name}"), env)
        .ok_or_else(|| error("not found in PATH".into()))?;
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|cause| error(format!("cannot run {}: {cause}", program.display())))?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    // A helper that exits without reading its input answers all the same; its exit says more.
    let _ = stdin.write_all(server_url.as_bytes()).await;
    drop(stdin);
    let output = tokio::time::timeout(TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| error(format!("no answer within {} seconds", TIMEOUT.as_secs())))?
        .map_err(|cause| error(cause.to_string()))?;
    if !output.status.success() {
        let said = [&output.stdout, &output.stderr]
            .into_iter()
            .map(|text| String::from_utf8_lossy(text).trim().to_string())
            .find(|text| !text.is_empty())
            .unwrap_or_default();
        if said.contains(NOT_FOUND) {
            return Ok(None);
        }
        let said = said.lines().next().unwrap_or("no message");
        return Err(error(format!("failed ({}): {said}", output.status)));
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Answer {
        username: String,
        secret: String,
    }
    // The answer is not quoted in the error: it holds the secret.
    let answer: Answer = serde_json::from_slice(&output.stdout)
        .map_err(|_| error("did not answer JSON with Username and Secret".into()))?;
    if answer.username == IDENTITY_TOKEN_USER {
        return Err(error(
            "gave an identity token, which is not supported; log in with a username and password or token".into(),
        ));
    }
    if answer.secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(RegistryAuth {
        username: answer.username,
        password: answer.secret,
    }))
}

/// The first executable file named `program` in the directories of `PATH`.
fn find_program(program: &str, env: &dyn Environment) -> Option<PathBuf> {
    let path = env.var("PATH")?;
    path.split(':')
        .filter(|dir| !dir.is_empty())
        .map(|dir| PathBuf::from(dir).join(program))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
}
