//! deploy-agent binary: parse the command line, hand over to `commands`.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = deploy_agent::cli::Cli::parse();
    deploy_agent::commands::main(cli)
}
