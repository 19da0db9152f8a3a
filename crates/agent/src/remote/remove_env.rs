//! Answering [`AgentRequest::RemoveEnv`](cj_api::agent::link::AgentRequest::RemoveEnv): the
//! reconcile loop's agent does the work; this sends its outcome back.

use std::sync::Arc;

use cj_api::agent::Assignment;
use cj_api::agent::link::AgentMessage;
use cj_runtime::ContainerRuntime;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::text;
use crate::reconcile::Agent;

pub(super) async fn answer<R: ContainerRuntime>(
    agent: Option<Arc<Agent<R>>>,
    assignments: Option<Arc<Vec<Assignment>>>,
    id: u64,
    env: String,
    keep_volumes: bool,
    outgoing: mpsc::Sender<Message>,
) {
    let result = match &agent {
        Some(agent) => {
            agent
                .remove_env(
                    &env,
                    keep_volumes,
                    assignments.as_deref().map(Vec::as_slice),
                )
                .await
        }
        None => Err("this agent is not managing containers yet".to_owned()),
    };
    let outcome = super::outcome_of(result);
    let _ = outgoing
        .send(text(&AgentMessage::Response { id, outcome }))
        .await;
}
