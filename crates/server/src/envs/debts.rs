//! What a host that was down owes. `env destroy` cannot reach a host without an agent connected,
//! so it records, under `debts/HOST/ENV`, that the host must remove what is left of the
//! environment (its dead containers and, unless kept, its volumes). The host's containers of the
//! environment stop anyway when it links again (its assignments no longer hold them); the debt is
//! the rest. It is paid when the host's agent links again, and deleted once the agent says it is
//! done, so neither a server restart nor a second outage loses it.

use std::sync::Arc;
use std::time::Duration;

use cj_api::agent::link::{AgentRequest, Outcome};
use cj_store::StoreJson;
use serde::{Deserialize, Serialize};

use crate::base::now_rfc3339;
use crate::error::Failure;
use crate::keys;
use crate::state::ServerState;

/// How long one host may take to remove what is left (volumes can be large).
pub const REMOVE_TIMEOUT: Duration = Duration::from_secs(120);

/// `debts/HOST/ENV`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnvDebt {
    pub env: String,
    pub keep_volumes: bool,
    pub since: String,
    pub by: String,
}

impl ServerState {
    /// Records that `host` must remove what is left of `env` when it is back.
    pub fn record_env_debt(
        &self,
        host: &str,
        env: &str,
        keep_volumes: bool,
        user: &str,
    ) -> Result<(), Failure> {
        let debt = EnvDebt {
            env: env.to_owned(),
            keep_volumes,
            since: now_rfc3339(),
            by: user.to_owned(),
        };
        self.store.put_json(&keys::debt(host, env), &debt)?;
        Ok(())
    }
}

/// Pays what `host` owes, now that its agent has linked: each debt is asked of the agent in turn
/// and deleted once it is done. A debt the agent could not pay stays for its next link.
pub async fn pay_debts(state: Arc<ServerState>, host: String) {
    let debts = match state.store.range(&keys::debts_of(&host)) {
        Ok(debts) => debts,
        Err(error) => {
            tracing::error!(host, %error, "cannot read what the host owes");
            return;
        }
    };
    for entry in debts {
        let debt: EnvDebt = match entry.json() {
            Ok(debt) => debt,
            Err(error) => {
                tracing::warn!(key = entry.key, %error, "ignoring an unreadable debt");
                continue;
            }
        };
        let request = AgentRequest::RemoveEnv {
            env: debt.env.clone(),
            keep_volumes: debt.keep_volumes,
        };
        match state.links.ask(&host, request, REMOVE_TIMEOUT).await {
            Ok(Outcome::Ok(_)) => {
                // Only if unchanged: a newer debt for the same environment stays.
                let compare = cj_store::Compare::mod_revision(&entry.key, Some(entry.mod_revision));
                let delete = cj_store::Op::delete(&entry.key);
                if let Err(error) = state.store.txn(&[compare], &[delete]) {
                    tracing::error!(host, %error, "cannot record a paid debt");
                }
                tracing::info!(
                    host,
                    env = debt.env,
                    "removed what was left of a destroyed environment"
                );
            }
            Ok(Outcome::Failed { error, .. }) => {
                tracing::warn!(
                    host,
                    env = debt.env,
                    error,
                    "could not remove what is left of an environment; trying again on the next link"
                );
            }
            Err(error) => {
                tracing::warn!(host, env = debt.env, %error, "could not remove what is left of an environment; trying again on the next link");
                return;
            }
        }
    }
}
