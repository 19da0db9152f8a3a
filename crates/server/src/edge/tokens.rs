//! API tokens: made, listed and revoked by admins (`/v1/tokens`), looked up by the auth layer on
//! every request that carries one.
//!
//! A secret is `cj_` and 64 hex digits: 32 bytes from the operating system's random number
//! generator. Only its SHA-256 is stored (`tokens/NAME`: name, role, hash, when, by whom); the
//! secret itself is shown once, in the answer that creates it. Such a secret has far too much
//! entropy to guess, so a fast hash is enough (no password hash); a presented secret is hashed
//! and compared with every stored hash in constant time, so an answer's timing says nothing
//! about how close a guess was.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use cj_api::{CreateTokenRequest, CreatedToken, Role, TokenInfo};
use cj_store::{Compare, Op, Store, StoreError, TxnOutcome};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::base::now_rfc3339;
use crate::edge::auth::Identity;
use crate::edge::extract::ApiJson;
use crate::error::{Failure, shown};
use crate::keys;

/// What every secret starts with, so one found in a file or a log is recognisable.
pub const SECRET_PREFIX: &str = "cj_";
/// The most tokens kept: every request with a token compares its hash with all of them.
pub const MAX_TOKENS: usize = 1000;
/// The longest token name (it is also a store key and an audit identity).
pub const MAX_NAME_CHARS: usize = 63;

/// `tokens/NAME`: a token as stored. Never the secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub name: String,
    pub role: Role,
    /// SHA-256 of the secret, in hex.
    pub sha256: String,
    pub created: String,
    pub created_by: String,
}

impl TokenRecord {
    /// The record of a token made now, holding only the secret's hash.
    fn new(name: &str, role: Role, secret: &Secret, created_by: &str) -> TokenRecord {
        TokenRecord {
            name: name.to_owned(),
            role,
            sha256: secret.sha256_hex(),
            created: now_rfc3339(),
            created_by: created_by.to_owned(),
        }
    }

    pub fn info(&self) -> TokenInfo {
        TokenInfo {
            name: self.name.clone(),
            role: self.role,
            created: self.created.clone(),
            created_by: self.created_by.clone(),
        }
    }
}

/// A token's secret. `Debug` does not show it; [`Secret::expose`] is the one way to read it.
pub struct Secret(String);

impl Secret {
    /// 32 fresh bytes from the operating system.
    pub fn generate() -> Result<Secret, TokenError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|error| TokenError::Random(error.to_string()))?;
        Ok(Secret(format!("{SECRET_PREFIX}{}", hex::encode(bytes))))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn sha256_hex(&self) -> String {
        hex::encode(sha256(&self.0))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<hidden>)")
    }
}

fn sha256(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(
        "invalid token name \"{0}\": expected 1 to {MAX_NAME_CHARS} letters, digits, '_', '.' or '-', \
         starting with a letter or digit"
    )]
    InvalidName(String),
    #[error("a token named {0} already exists")]
    Exists(String),
    #[error("no token named {0}")]
    NotFound(String),
    #[error("{0} is the last admin token: create another admin token before revoking it")]
    LastAdmin(String),
    #[error("there are already {MAX_TOKENS} tokens: revoke some before creating more")]
    TooMany,
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

impl From<TokenError> for Failure {
    fn from(error: TokenError) -> Self {
        let message = error.to_string();
        match error {
            TokenError::InvalidName(_) => Failure::BadRequest(message),
            TokenError::NotFound(_) => Failure::NotFound(message),
            TokenError::Exists(_) | TokenError::LastAdmin(_) | TokenError::TooMany => {
                Failure::Conflict(message)
            }
            TokenError::Random(_) | TokenError::Store(_) => Failure::Internal(message),
        }
    }
}

/// Token names are store keys, URL path segments and audit identities: 1 to 63 of
/// `[a-zA-Z0-9_.-]`, the first a letter or digit (so never `..`, nor read as an option).
pub fn check_name(name: &str) -> Result<(), TokenError> {
    let valid = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.len() <= MAX_NAME_CHARS
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if valid {
        Ok(())
    } else {
        Err(TokenError::InvalidName(shown(name)))
    }
}

fn encode(record: &TokenRecord) -> Result<Vec<u8>, TokenError> {
    serde_json::to_vec(record).map_err(|error| TokenError::Store(StoreError::encode(error)))
}

/// Every token, by name.
pub fn list(store: &dyn Store) -> Result<Vec<TokenRecord>, TokenError> {
    Ok(store
        .range(keys::TOKENS)?
        .iter()
        .map(|kv| kv.json())
        .collect::<Result<_, _>>()?)
}

/// Makes a token; the secret is returned, never stored.
pub fn create(
    store: &dyn Store,
    name: &str,
    role: Role,
    created_by: &str,
) -> Result<(TokenRecord, Secret), TokenError> {
    check_name(name)?;
    if store.range(keys::TOKENS)?.len() >= MAX_TOKENS {
        return Err(TokenError::TooMany);
    }
    let secret = Secret::generate()?;
    let record = TokenRecord::new(name, role, &secret, created_by);
    match store.compare_and_swap(&keys::token(name), None, encode(&record)?)? {
        Some(_) => Ok((record, secret)),
        None => Err(TokenError::Exists(name.to_owned())),
    }
}

/// Stores `secret` as the token `name`, replacing any token of that name (the admin token's
/// reset: the old secret stops working).
pub fn store_secret(
    store: &dyn Store,
    name: &str,
    role: Role,
    created_by: &str,
    secret: &Secret,
) -> Result<TokenRecord, TokenError> {
    check_name(name)?;
    let record = TokenRecord::new(name, role, secret, created_by);
    store.put(&keys::token(name), encode(&record)?)?;
    Ok(record)
}

/// Deletes a token; refused for the last admin token, so the server never locks everyone out.
pub fn revoke(store: &dyn Store, name: &str) -> Result<TokenRecord, TokenError> {
    check_name(name)?;
    loop {
        let stored = store.range(keys::TOKENS)?;
        let mut target = None;
        let mut other_admins = Vec::new();
        for kv in &stored {
            let record: TokenRecord = kv.json()?;
            if record.name == name {
                target = Some((record, kv.mod_revision));
            } else if record.role == Role::Admin {
                other_admins.push(Compare::mod_revision(kv.key.clone(), Some(kv.mod_revision)));
            }
        }
        let Some((record, revision)) = target else {
            return Err(TokenError::NotFound(name.to_owned()));
        };
        if record.role == Role::Admin && other_admins.is_empty() {
            return Err(TokenError::LastAdmin(name.to_owned()));
        }
        // Unchanged, and so are the admin tokens that remain: two admins revoking each other
        // at once cannot both succeed.
        let mut compares = other_admins;
        compares.push(Compare::mod_revision(keys::token(name), Some(revision)));
        let ops = [Op::Delete {
            key: keys::token(name),
        }];
        if let TxnOutcome::Committed { .. } = store.txn(&compares, &ops)? {
            return Ok(record);
        }
    }
}

/// The stored token whose secret this is, if any.
#[cfg(test)]
pub fn find(store: &dyn Store, secret: &str) -> Result<Option<TokenRecord>, TokenError> {
    Ok(matching(list(store)?, secret))
}

/// The token of `records` whose secret this is, if any. Every hash is compared, in constant
/// time, whether or not an earlier one matched.
pub fn matching(
    records: impl IntoIterator<Item = TokenRecord>,
    secret: &str,
) -> Option<TokenRecord> {
    let presented = sha256(secret);
    let mut found = None;
    for record in records {
        let mut stored = [0u8; 32];
        // A record with a malformed hash matches nothing.
        let decoded = hex::decode_to_slice(&record.sha256, &mut stored).is_ok();
        let equal: bool = stored.ct_eq(&presented).into();
        if decoded && equal {
            found = Some(record);
        }
    }
    found
}

use crate::state::AppState;

/// `POST /v1/tokens`: answers 201 with the secret, once.
#[utoipa::path(
    post,
    path = "/v1/tokens",
    request_body = CreateTokenRequest,
    responses(
        (status = 201, description = "the token, with its secret: the only time it is shown", body = CreatedToken),
        (status = 409, description = "a token of that name exists", body = cj_api::ApiError),
    )
)]
pub async fn create_token(
    State(state): AppState,
    caller: Identity,
    ApiJson(request): ApiJson<CreateTokenRequest>,
) -> Result<(StatusCode, Json<CreatedToken>), Failure> {
    let (record, secret) = create(&*state.store, &request.name, request.role, &caller.name)?;
    tracing::info!(name = record.name, role = %record.role, by = caller.name, "token created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            name: record.name,
            role: record.role,
            secret: secret.expose().to_owned(),
        }),
    ))
}

/// `GET /v1/tokens`: every token, without secrets or hashes.
#[utoipa::path(
    get,
    path = "/v1/tokens",
    responses((status = 200, description = "every token, without its secret", body = Vec<TokenInfo>))
)]
pub async fn list_tokens(State(state): AppState) -> Result<Json<Vec<TokenInfo>>, Failure> {
    Ok(Json(
        list(&*state.store)?.iter().map(TokenRecord::info).collect(),
    ))
}

/// `DELETE /v1/tokens/{name}`: the token stops working at once.
#[utoipa::path(
    delete,
    path = "/v1/tokens/{name}",
    params(("name" = String, Path, description = "the token's name")),
    responses(
        (status = 200, description = "the token revoked", body = TokenInfo),
        (status = 404, description = "no such token", body = cj_api::ApiError),
        (status = 409, description = "it is the last admin token", body = cj_api::ApiError),
    )
)]
pub async fn revoke_token(
    State(state): AppState,
    caller: Identity,
    Path(name): Path<String>,
) -> Result<Json<TokenInfo>, Failure> {
    let record = revoke(&*state.store, &name)?;
    tracing::info!(name = record.name, by = caller.name, "token revoked");
    Ok(Json(record.info()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, cj_store::EmbeddedStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = cj_store::EmbeddedStore::open(&dir.path().join("store.redb")).unwrap();
        (dir, store)
    }

    #[test]
    fn a_secret_is_32_random_bytes_and_only_its_hash_is_stored() {
        let (_dir, store) = store();
        let (record, secret) = create(&store, "ci", Role::Deploy, "alice").unwrap();
        let text = secret.expose();
        assert!(text.starts_with(SECRET_PREFIX));
        assert_eq!(text.len(), SECRET_PREFIX.len() + 64);
        assert_eq!(record.sha256, hex::encode(Sha256::digest(text.as_bytes())));
        let (_, other) = create(&store, "ci-2", Role::Read, "alice").unwrap();
        assert_ne!(text, other.expose());
        let stored = String::from_utf8(store.get("tokens/ci").unwrap().unwrap().value).unwrap();
        assert!(!stored.contains(&text[SECRET_PREFIX.len()..]), "{stored}");
        assert!(!format!("{secret:?}").contains(&text[SECRET_PREFIX.len()..]));
    }

    #[test]
    fn a_secret_finds_its_token_and_nothing_else_does() {
        let (_dir, store) = store();
        let (_, read) = create(&store, "reader", Role::Read, "alice").unwrap();
        let (_, admin) = create(&store, "boss", Role::Admin, "server").unwrap();
        let found = |secret: &str| find(&store, secret).unwrap().map(|record| record.name);
        assert_eq!(found(read.expose()).as_deref(), Some("reader"));
        assert_eq!(found(admin.expose()).as_deref(), Some("boss"));
        let mut wrong = read.expose().to_owned();
        wrong.pop();
        wrong.push('x');
        for other in ["", "cj_", wrong.as_str(), &read.sha256_hex()] {
            assert_eq!(found(other), None, "{other}");
        }
        revoke(&store, "reader").unwrap();
        assert_eq!(found(read.expose()), None);
    }

    #[test]
    fn names_are_checked_and_unique() {
        let (_dir, store) = store();
        for bad in [
            "",
            "a/b",
            "a b",
            "é",
            "x\n",
            "..",
            "-x",
            ".hidden",
            &"n".repeat(64),
        ] {
            assert!(
                matches!(
                    create(&store, bad, Role::Read, "a"),
                    Err(TokenError::InvalidName(_))
                ),
                "{bad:?}"
            );
        }
        for good in ["ci", "CI_read.2-x", &"n".repeat(63), "1", "x.."] {
            create(&store, good, Role::Read, "a").unwrap();
        }
        assert!(matches!(
            create(&store, "ci", Role::Admin, "a"),
            Err(TokenError::Exists(_))
        ));
        assert!(matches!(
            revoke(&store, "nobody"),
            Err(TokenError::NotFound(_))
        ));
    }

    #[test]
    fn the_last_admin_token_cannot_be_revoked() {
        let (_dir, store) = store();
        create(&store, "root", Role::Admin, "server").unwrap();
        create(&store, "ci", Role::Deploy, "root").unwrap();
        assert!(matches!(
            revoke(&store, "root"),
            Err(TokenError::LastAdmin(_))
        ));
        create(&store, "root-2", Role::Admin, "root").unwrap();
        revoke(&store, "root").unwrap();
        assert!(matches!(
            revoke(&store, "root-2"),
            Err(TokenError::LastAdmin(_))
        ));
        revoke(&store, "ci").unwrap();
        let left: Vec<String> = list(&store).unwrap().into_iter().map(|t| t.name).collect();
        assert_eq!(left, ["root-2"]);
    }

    #[test]
    fn replacing_a_secret_invalidates_the_old_one() {
        let (_dir, store) = store();
        let (_, old) = create(&store, "admin", Role::Admin, "server").unwrap();
        let new = Secret::generate().unwrap();
        store_secret(&store, "admin", Role::Admin, "server", &new).unwrap();
        assert!(find(&store, old.expose()).unwrap().is_none());
        assert_eq!(find(&store, new.expose()).unwrap().unwrap().name, "admin");
    }
}
