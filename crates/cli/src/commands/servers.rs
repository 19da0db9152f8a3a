//! `servers`: the servers sharing the cluster's store, which one leads and since when.

use cj_api::servers::ClusterMember;

use crate::args::JsonArgs;
use crate::client::{CliResult, Client};
use crate::output::{elapsed, print_json, print_table, relative, table};

pub async fn run(client: &Client, args: JsonArgs) -> CliResult<i32> {
    let servers: Vec<ClusterMember> = client.json(client.get("/v1/servers")).await?;
    if args.json {
        return print_json(&servers);
    }
    if servers.is_empty() {
        println!("no server has registered (a server registers as it starts)");
        return Ok(0);
    }
    let mut output = table(&["SERVER", "ADDRESS", "LEADER", "SINCE", "VERSION"]);
    for server in &servers {
        output.add_row(vec![
            server.name.clone(),
            server.address.clone(),
            match &server.leader_since {
                Some(since) => format!("yes, for {}", elapsed(Some(since.as_str()))),
                None if server.leader => "yes".into(),
                None => "no".into(),
            },
            relative(Some(server.since.as_str())),
            server.version.clone(),
        ]);
    }
    print_table(&output);
    Ok(0)
}
