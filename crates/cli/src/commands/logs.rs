//! `logs TASK`: the container's output, streamed as it comes.

use std::io::Write;

use futures_util::StreamExt;

use crate::args::LogsArgs;
use crate::client::{CliError, CliResult, Client};

pub async fn run(client: &Client, args: LogsArgs) -> CliResult<i32> {
    let mut query = vec![
        ("env", client.env.clone()),
        ("target", args.target.clone()),
        ("follow", args.follow.to_string()),
    ];
    if let Some(tail) = args.tail {
        query.push(("tail", tail.to_string()));
    }
    if let Some(container) = &args.container {
        query.push(("container", container.clone()));
    }
    if let Some(stream) = &args.stream {
        query.push(("stream", stream.clone()));
    }
    let response = client.send(client.get("/v1/logs").query(&query)).await?;
    let mut stream = response.bytes_stream();
    let mut stdout = std::io::stdout().lock();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|error| {
            CliError::failed(format!("lost the connection to the server: {error}"))
        })?;
        if stdout
            .write_all(&chunk)
            .and_then(|_| stdout.flush())
            .is_err()
        {
            // The reader went away (e.g. `| head`): stop quietly.
            return Ok(0);
        }
    }
    Ok(0)
}
