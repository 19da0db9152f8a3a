//! The first admin token: how a server that requires tokens can be used at all.
//!
//! When no admin token exists (the first start), the server makes one named `admin` and writes
//! its secret to `DATA_DIR/admin.token` (mode 0600; the secret is never printed or logged), then
//! stores its hash. The file is written first, so a crash in between leaves a file without a
//! token, and the next start simply makes a new pair. Later starts leave both alone and only
//! say where the file is. If the file was deleted while admin tokens remain, nothing is written
//! (anyone who can delete the file could otherwise mint an admin token by restarting the
//! server unnoticed); an operator with access to the data directory restarts with
//! `--reset-admin-token`, which gives the token named `admin` a new secret in a new file (the
//! old secret stops working).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use cj_api::Role;
use cj_store::Store;

use crate::edge::tokens::{self, TokenError};

/// The admin token file's name in the data directory.
pub const FILE_NAME: &str = "admin.token";
/// The name of the token the server makes.
pub const NAME: &str = "admin";
/// The `created_by` of that token.
const CREATOR: &str = "server";

/// What happened to the admin token file at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminToken {
    /// A new admin token's secret was written to the file.
    Written(PathBuf),
    /// The file is there from before; `valid` says whether its secret is an admin token's.
    Kept { path: PathBuf, valid: bool },
    /// Admin tokens exist, but the file is gone.
    Missing(PathBuf),
    /// A server joining a cluster's shared store: the cluster's tokens are in the store, and its
    /// first server wrote the admin token's file in its own data directory.
    Cluster,
}

#[derive(Debug, thiserror::Error)]
pub enum AdminTokenError {
    #[error("failed to write the admin token file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Token(#[from] TokenError),
}

/// Makes sure an admin can get in: see the module's description.
pub fn ensure(
    store: &dyn Store,
    data_dir: &Path,
    reset: bool,
) -> Result<AdminToken, AdminTokenError> {
    let path = data_dir.join(FILE_NAME);
    let records = tokens::list(store)?;
    let admins = records.iter().filter(|record| record.role == Role::Admin);
    if reset || admins.clone().next().is_none() {
        // Without `reset`, a token named `admin` of another role keeps its name and role.
        let taken = |name: &str| records.iter().any(|record| record.name == name);
        let name = if reset || !taken(NAME) {
            NAME.to_owned()
        } else {
            (2..)
                .map(|n| format!("{NAME}-{n}"))
                .find(|name| !taken(name))
                .expect("a free name")
        };
        let secret = tokens::Secret::generate()?;
        write_secret(&path, secret.expose())?;
        tokens::store_secret(store, &name, Role::Admin, CREATOR, &secret)?;
        return Ok(AdminToken::Written(path));
    }
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let valid = tokens::matching(admins.cloned(), text.trim()).is_some();
            Ok(AdminToken::Kept { path, valid })
        }
        Err(_) => Ok(AdminToken::Missing(path)),
    }
}

/// Writes `secret` to `path`, readable by this user only, replacing what was there at once.
fn write_secret(path: &Path, secret: &str) -> Result<(), AdminTokenError> {
    let failed = |source| AdminTokenError::Write {
        path: path.to_owned(),
        source,
    };
    let partial = path.with_extension("token.partial");
    let _ = std::fs::remove_file(&partial);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .map_err(failed)?;
    file.write_all(format!("{secret}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(failed)?;
    std::fs::rename(&partial, path).map_err(failed)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn the_first_start_writes_the_secret_once_and_later_starts_keep_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = cj_store::EmbeddedStore::open(&dir.path().join("store.redb")).unwrap();
        let path = dir.path().join(FILE_NAME);
        assert_eq!(
            ensure(&store, dir.path(), false).unwrap(),
            AdminToken::Written(path.clone())
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let secret = std::fs::read_to_string(&path).unwrap();
        let record = tokens::find(&store, secret.trim()).unwrap().unwrap();
        assert_eq!((record.name.as_str(), record.role), (NAME, Role::Admin));

        let kept = AdminToken::Kept {
            path: path.clone(),
            valid: true,
        };
        assert_eq!(ensure(&store, dir.path(), false).unwrap(), kept);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), secret);

        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            ensure(&store, dir.path(), false).unwrap(),
            AdminToken::Missing(path.clone())
        );
        assert!(!path.exists());

        assert_eq!(
            ensure(&store, dir.path(), true).unwrap(),
            AdminToken::Written(path.clone())
        );
        let new = std::fs::read_to_string(&path).unwrap();
        assert_ne!(new, secret);
        assert!(tokens::find(&store, secret.trim()).unwrap().is_none());
        assert_eq!(tokens::list(&store).unwrap().len(), 1);
    }

    #[test]
    fn a_file_whose_token_was_revoked_is_reported_stale() {
        let dir = tempfile::tempdir().unwrap();
        let store = cj_store::EmbeddedStore::open(&dir.path().join("store.redb")).unwrap();
        ensure(&store, dir.path(), false).unwrap();
        tokens::create(&store, "other-admin", Role::Admin, "admin").unwrap();
        tokens::revoke(&store, NAME).unwrap();
        let path = dir.path().join(FILE_NAME);
        assert_eq!(
            ensure(&store, dir.path(), false).unwrap(),
            AdminToken::Kept { path, valid: false }
        );
    }
}
