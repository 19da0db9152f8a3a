//! Arguments of `import`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// A Compose file: one job per Compose service, in a service named after the project
    /// (services in a profile go to PROJECT-PROFILE). `env_file:` files and `.env` are read
    /// beside it.
    Compose(ImportFileArgs),
    /// A Marathon app or group (JSON): one job per app, one service per group.
    Marathon(ImportFileArgs),
    /// A Kamal `config/deploy.yml` (Kamal 1 or 2): one job per role and per accessory.
    Kamal(ImportKamalArgs),
    /// The seed's job list in protobuf text format (`jobs: < name: ... image: ... >`).
    Jobs(ImportFileArgs),
}

#[derive(Debug, Args)]
pub struct ImportFileArgs {
    /// The file to import.
    pub file: PathBuf,
    #[command(flatten)]
    pub output: ImportOutputArgs,
}

#[derive(Debug, Args)]
pub struct ImportKamalArgs {
    /// The `deploy.yml` to import.
    pub file: PathBuf,
    /// Merge `deploy.DESTINATION.yml` (beside FILE) over it, as `kamal -d DESTINATION` does.
    #[arg(short = 'd', long, value_name = "DESTINATION")]
    pub destination: Option<String>,
    #[command(flatten)]
    pub output: ImportOutputArgs,
}

#[derive(Debug, Args)]
pub struct ImportOutputArgs {
    /// The service's name (Compose: the project; default: the file's `name:`, else its
    /// directory's name; others: from the file).
    #[arg(long, visible_alias = "service", value_name = "NAME")]
    pub project: Option<String>,
    /// Write one file per service into DIR (made if missing) instead of printing them.
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    /// Print the files and the report as JSON: {"files", "variables", "notes", "not_carried"}.
    #[arg(long)]
    pub json: bool,
}
