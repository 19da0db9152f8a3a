//! `token create|list|revoke`: API tokens. A new token's secret is printed once, alone on
//! stdout (so `$(coding-job token create ...)` captures it), with the warning on stderr.

use cj_api::{CreateTokenRequest, CreatedToken, Role, TokenInfo};

use crate::args::TokenCommand;
use crate::client::{CliError, CliResult, Client};
use crate::output::{print_json, print_table, relative, table};

pub async fn run(client: &Client, command: TokenCommand) -> CliResult<i32> {
    match command {
        TokenCommand::Create(args) => {
            let role: Role = args.role.parse().map_err(CliError::bad_input)?;
            let request = CreateTokenRequest {
                name: args.name,
                role,
            };
            let created: CreatedToken = client.json(client.post("/v1/tokens", &request)).await?;
            if args.json {
                return print_json(&created);
            }
            eprintln!(
                "token {} ({}) created. Its secret is shown only now: the server keeps only its \
                 hash. Pass it with --token or CODING_JOB_TOKEN.",
                created.name, created.role
            );
            println!("{}", created.secret);
            Ok(0)
        }
        TokenCommand::List(args) => {
            let tokens: Vec<TokenInfo> = client.json(client.get("/v1/tokens")).await?;
            if args.json {
                return print_json(&tokens);
            }
            let mut output = table(&["NAME", "ROLE", "CREATED", "BY"]);
            for token in &tokens {
                output.add_row(vec![
                    token.name.clone(),
                    token.role.to_string(),
                    relative(Some(&token.created)),
                    token.created_by.clone(),
                ]);
            }
            print_table(&output);
            Ok(0)
        }
        TokenCommand::Revoke(args) => {
            // The name becomes a path segment: nothing in it may read as more path.
            let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
            if !args.name.starts_with(|c: char| c.is_ascii_alphanumeric())
                || !args.name.chars().all(plain)
            {
                return Err(CliError::bad_input(format!(
                    "invalid token name \"{}\": expected letters, digits, '_', '.' or '-'",
                    args.name.escape_debug()
                )));
            }
            let path = format!("/v1/tokens/{}", args.name);
            let revoked: TokenInfo = client.json(client.delete(&path)).await?;
            println!("token {} ({}) revoked", revoked.name, revoked.role);
            Ok(0)
        }
    }
}
