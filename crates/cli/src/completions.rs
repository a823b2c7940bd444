//! `mkplan completions SHELL`: shell completion scripts, from the same clap definitions.

use clap_complete::Shell;

use crate::error::CliError;

/// Print a shell completion script.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell to complete for.
    shell: Shell,
}

/// `command` is mkplan's command as `--help` shows it.
pub fn run(args: Args, mut command: clap::Command) -> Result<(), CliError> {
    // Into memory first: clap_complete panics when its writer fails (a closed pipe).
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "mkplan", &mut script);
    print!("{}", String::from_utf8_lossy(&script));
    Ok(())
}
