//! `logs TASK`: the container's output, streamed as it comes.

use std::io::Write;

use futures_util::StreamExt;
use time::format_description::well_known::Rfc3339;

use crate::args::LogsArgs;
use crate::client::{CliError, CliResult, Client};

pub async fn run(client: &Client, args: LogsArgs) -> CliResult<i32> {
    let response = client
        .send(client.get("/v1/logs").query(&query(client, &args)?))
        .await?;
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

/// The query of `GET /v1/logs`. `since` and `timestamps` are sent only when asked for: a
/// server of an earlier build refuses parameters it does not know.
fn query(client: &Client, args: &LogsArgs) -> CliResult<Vec<(&'static str, String)>> {
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
    if let Some(since) = args.since {
        let since = since
            .format(&Rfc3339)
            .map_err(|error| CliError::bad_input(format!("--since: {error}")))?;
        query.push(("since", since));
    }
    if args.timestamps {
        query.push(("timestamps", "true".into()));
    }
    Ok(query)
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use time::{Duration, OffsetDateTime};

    use crate::args::{Cli, Command, LogsArgs};

    fn logs(args: &[&str]) -> Result<LogsArgs, clap::Error> {
        let all = ["coding-job", "logs"].iter().chain(args);
        match Cli::try_parse_from(all)?.command {
            Command::Logs(args) => Ok(args),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn since_is_a_duration_before_now_or_an_rfc3339_time() {
        let ago = |text: &str| {
            let since = logs(&["shop/web", "--since", text]).unwrap().since.unwrap();
            OffsetDateTime::now_utc() - since
        };
        // Seconds of slack: the clock moves between parsing and reading.
        let ten_minutes = ago("10m");
        assert!(
            (Duration::minutes(10)..Duration::minutes(10) + Duration::seconds(5))
                .contains(&ten_minutes),
            "{ten_minutes}"
        );
        let ninety_minutes = ago("1h30m");
        assert!(
            (Duration::minutes(90)..Duration::minutes(90) + Duration::seconds(5))
                .contains(&ninety_minutes),
            "{ninety_minutes}"
        );
        let at = logs(&["shop/web", "--since", "2026-05-01T12:00:00+02:00"])
            .unwrap()
            .since
            .unwrap();
        assert_eq!(at.unix_timestamp(), 1_777_629_600);
        let too_far = logs(&["shop/web", "--since", "1000000000h"]).unwrap();
        assert_eq!(too_far.since, Some(OffsetDateTime::UNIX_EPOCH));
        let plain = logs(&["shop/web"]).unwrap();
        assert!(plain.since.is_none() && !plain.timestamps);
    }

    #[test]
    fn a_since_that_is_neither_is_bad_input() {
        for refused in ["yesterday", "600", "10 minutes", "2026-05-01", "-5m", ""] {
            let error = logs(&["shop/web", &format!("--since={refused}")]).unwrap_err();
            assert_eq!(error.exit_code(), 2, "--since {refused}");
            let message = error.to_string();
            assert!(
                message.contains("expected a duration such as 10m or 1h30m, or an RFC 3339 time"),
                "--since {refused}: {message}"
            );
        }
    }

    #[test]
    fn timestamps_has_a_short_flag() {
        assert!(logs(&["shop/web", "-t"]).unwrap().timestamps);
        let args = logs(&["shop/web", "-ft", "--tail", "5"]).unwrap();
        assert!(args.follow && args.timestamps);
    }
}
