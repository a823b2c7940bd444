//! `mkplan man`: the man pages (roff), from the same clap definitions and the same exit
//! status and examples table (`manual.rs`) as `--help`: mkplan(1) and one page per command
//! (mkplan-validate(1), mkplan-report-verify(1), …), each with EXIT STATUS and EXAMPLES.

use std::path::{Path, PathBuf};

use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};

use crate::cli::exit_code;
use crate::cli::manual::{self, Page};

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
pub fn run(args: Args, base: clap::Command) -> anyhow::Result<i32> {
    let root = built_command(base);
    if let Some(dir) = args.all {
        return Ok(match write_all(&root, &dir) {
            Ok(written) => {
                for path in written {
                    println!("{}", path.display());
                }
                exit_code::SUCCESS
            }
            Err(e) => {
                eprintln!("mkplan: error: {e}");
                exit_code::FAILURE
            }
        });
    }
    let Some(command) = find(&root, &args.command) else {
        eprintln!(
            "mkplan: error: `mkplan {}` is not a command; `mkplan --help` lists them",
            args.command.join(" ")
        );
        return Ok(exit_code::INVALID);
    };
    let page = render(command, &args.command.join(" "))?;
    print!("{}", String::from_utf8_lossy(&page));
    Ok(exit_code::SUCCESS)
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

/// One page: clap_mangen's sections, then NOTES (the help's own text), EXIT STATUS,
/// EXAMPLES and SEE ALSO.
fn render(command: &clap::Command, path: &str) -> std::io::Result<Vec<u8>> {
    let man = Man::new(command.clone()).source(format!("mkplan {}", env!("CARGO_PKG_VERSION")));
    let ours = our_sections(command, path);
    // Each section comes with roff's preamble; the page needs it once.
    let preamble = Roff::new().render();
    let mut out = preamble.clone().into_bytes();
    let mut section = |render: &dyn Fn(&mut Vec<u8>) -> std::io::Result<()>| {
        let mut buffer = Vec::new();
        render(&mut buffer)?;
        out.extend_from_slice(buffer.strip_prefix(preamble.as_bytes()).unwrap_or(&buffer));
        std::io::Result::Ok(())
    };
    section(&|w| man.render_title(w))?;
    section(&|w| man.render_name_section(w))?;
    section(&|w| man.render_synopsis_section(w))?;
    section(&|w| man.render_description_section(w))?;
    if command.get_arguments().any(|a| !a.is_hide_set()) {
        section(&|w| man.render_options_section(w))?;
    }
    if command.get_subcommands().any(|s| !s.is_hide_set()) {
        section(&|w| man.render_subcommands_section(w))?;
    }
    section(&|w| ours.to_writer(w))?;
    if command.get_version().is_some() {
        section(&|w| man.render_version_section(w))?;
    }
    Ok(out)
}

fn our_sections(command: &clap::Command, path: &str) -> Roff {
    let mut roff = Roff::new();
    if let Some(notes) = command.get_after_help() {
        // The help text's own layout (lists, aligned columns), kept as written.
        roff.control("SH", ["NOTES"]).control("nf", []);
        for line in notes.to_string().lines() {
            roff.text([roman(line)]);
        }
        roff.control("fi", []);
    }
    if let Some(page) = manual::page(path) {
        page_sections(&mut roff, page);
    }
    see_also(&mut roff, path);
    roff
}

fn page_sections(roff: &mut Roff, page: &Page) {
    roff.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in page.exit_status {
        roff.control("TP", [])
            .text([bold(code.to_string())])
            .text([roman(*meaning)]);
    }
    roff.control("SH", ["EXAMPLES"]);
    for (line, what) in page.examples {
        roff.control("TP", [])
            .text([bold(*line)])
            .text([roman(*what)]);
    }
}

/// A command's page points to mkplan(1) and to its parent's page.
fn see_also(roff: &mut Roff, path: &str) {
    let words: Vec<&str> = path.split_whitespace().collect();
    if words.is_empty() {
        return;
    }
    let mut pages = vec!["mkplan(1)".to_owned()];
    if words.len() > 1 {
        pages.push(format!("mkplan-{}(1)", words[..words.len() - 1].join("-")));
    }
    roff.control("SH", ["SEE ALSO"])
        .text([roman(pages.join(", "))]);
}
