//! `mkplan man`: the man pages (roff), from the same clap definitions and the same exit
//! status and examples table (`manual/`) as `--help`: mkplan(1) and one page per command
//! (mkplan-validate(1), mkplan-report-verify(1), …), each with EXIT STATUS and EXAMPLES.

use std::path::{Path, PathBuf};

use clap_mangen::Man;

use crate::error::CliError;
use crate::manual::roff::render;

/// Print a man page (mkplan(1), or the page of COMMAND), or write every page with --all.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The command whose page to print (`report verify` → mkplan-report-verify(1)).
    #[arg(value_name = "COMMAND", conflicts_with = "all")]
    command: Vec<String>,
    /// Write mkplan.1 and the page of every command into DIR (created if missing).
    #[arg(long, value_name = "DIR")]
    all: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
enum ManError {
    #[error("cannot write `{path}`: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// `base` is mkplan's command without the exit status and examples, which the pages render
/// as sections of their own.
pub fn run(args: Args, base: clap::Command) -> Result<(), CliError> {
    let root = built_command(base);
    if let Some(dir) = args.all {
        let written =
            write_all(&root, &dir).map_err(|e| CliError::Other(anyhow::anyhow!("{e}")))?;
        for path in written {
            println!("{}", path.display());
        }
        return Ok(());
    }
    let Some(command) = find(&root, &args.command) else {
        eprintln!(
            "mkplan: error: `mkplan {}` is not a command; `mkplan --help` lists them",
            args.command.join(" ")
        );
        return Err(CliError::InvalidSaid);
    };
    let page = render(command, &args.command.join(" "))?;
    print!("{}", String::from_utf8_lossy(&page));
    Ok(())
}

/// The command tree, built (so subcommands know their `mkplan-…` page names), without
/// the `help` subcommand, which has no page.
fn built_command(base: clap::Command) -> clap::Command {
    let mut command = base.disable_help_subcommand(true);
    command.build();
    command
}

fn find<'c>(root: &'c clap::Command, words: &[String]) -> Option<&'c clap::Command> {
    words.iter().try_fold(root, |command, word| {
        command
            .get_subcommands()
            .find(|s| s.get_name() == word && !s.is_hide_set())
    })
}

/// Writes every page into `dir`; returns their paths, mkplan.1 first.
fn write_all(root: &clap::Command, dir: &Path) -> Result<Vec<PathBuf>, ManError> {
    let failed = |path: &Path| {
        let path = path.to_owned();
        move |source| ManError::Write { path, source }
    };
    std::fs::create_dir_all(dir).map_err(failed(dir))?;
    let mut pages = Vec::new();
    collect(root, "", &mut pages);
    let mut written = Vec::new();
    for (command, path) in pages {
        let file = dir.join(Man::new(command.clone()).get_filename());
        let page = render(command, &path).map_err(failed(&file))?;
        std::fs::write(&file, page).map_err(failed(&file))?;
        written.push(file);
    }
    Ok(written)
}

/// Every command with a page, with its path (words after `mkplan`), parents first.
fn collect<'c>(command: &'c clap::Command, path: &str, out: &mut Vec<(&'c clap::Command, String)>) {
    out.push((command, path.to_owned()));
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        let sub_path = format!("{path} {}", sub.get_name());
        collect(sub, sub_path.trim_start(), out);
    }
}
