//! `mkplan completions SHELL`: shell completion scripts, from the same clap definitions.

use clap_complete::Shell;

use crate::exit_code;

/// Print a shell completion script.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell to complete for.
    shell: Shell,
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    let mut command = crate::cli::command();
    clap_complete::generate(args.shell, &mut command, "mkplan", &mut std::io::stdout());
    Ok(exit_code::SUCCESS)
}
