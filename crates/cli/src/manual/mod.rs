//! The exit status and examples of every command, in one table: `--help` shows them after
//! the options, and the man pages (`mkplan man`) as their EXIT STATUS and EXAMPLES sections.

mod execute;
mod other;
mod plan;
mod report;
pub(crate) mod roff;

use crate::exit_code::INVALID;

/// What one command's page says beyond its options.
pub(crate) struct Page {
    /// The words after `mkplan` (`""` for mkplan itself, `"report verify"`).
    pub path: &'static str,
    pub exit_status: &'static [(i32, &'static str)],
    /// (command line, what it does).
    pub examples: &'static [(&'static str, &'static str)],
}

const USAGE: (i32, &str) = (INVALID, "wrong command line");

/// Every command's page, mkplan's own first.
pub(crate) fn pages() -> impl Iterator<Item = &'static Page> {
    plan::PAGES
        .iter()
        .chain(execute::PAGES)
        .chain(report::PAGES)
        .chain(other::PAGES)
        // A build without the simulator has no `rehearse` command.
        .filter(|p| cfg!(feature = "rehearse") || p.path != "rehearse")
}

/// The page of the command `path` (words after `mkplan`).
pub(crate) fn page(path: &str) -> Option<&'static Page> {
    pages().find(|p| p.path == path)
}

/// Appends each command's exit status and examples to its `--help`, from [`pages`].
pub(crate) fn decorate(command: clap::Command) -> clap::Command {
    decorate_at(command, "")
}

fn decorate_at(mut command: clap::Command, path: &str) -> clap::Command {
    let names: Vec<String> = command
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    for name in names {
        let sub_path = if path.is_empty() {
            name.clone()
        } else {
            format!("{path} {name}")
        };
        command = command.mut_subcommand(name, |sub| decorate_at(sub, &sub_path));
    }
    let Some(page) = page(path) else {
        return command;
    };
    let mut text = command
        .get_after_help()
        .map(|h| format!("{h}\n\n"))
        .unwrap_or_default();
    text.push_str("Exit status:\n");
    for (code, meaning) in page.exit_status {
        text.push_str(&wrap(meaning, &format!("  {code}  "), "     ", " "));
    }
    text.push_str("\nExamples:\n");
    for (line, what) in page.examples {
        text.push_str(&wrap(line, "  ", "        ", " \\"));
        text.push_str(&wrap(what, "      ", "      ", " "));
    }
    command.after_help(text.trim_end().to_owned())
}

/// Help text is read on 80-column terminals: `text` broken at spaces, its first line after
/// `first`, the others after `rest`; `join` ends a broken line (` \` continues a command).
fn wrap(text: &str, first: &str, rest: &str, join: &str) -> String {
    const WIDTH: usize = 80;
    let mut out = first.to_owned();
    let mut line_len = first.len();
    for (i, word) in text.split(' ').enumerate() {
        let fits = line_len + 1 + word.len() + join.trim().len() <= WIDTH;
        if i > 0 && !fits {
            out.push_str(join.trim_end());
            out.push('\n');
            out.push_str(rest);
            line_len = rest.len();
        } else if i > 0 {
            out.push(' ');
            line_len += 1;
        }
        out.push_str(word);
        line_len += word.chars().count();
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit_code::SUCCESS;

    /// Every command path of the clap definitions, `""` first.
    fn paths(command: &clap::Command, prefix: &str, out: &mut Vec<String>) {
        out.push(prefix.to_owned());
        for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
            let path = format!("{prefix} {}", sub.get_name());
            paths(sub, path.trim_start(), out);
        }
    }

    #[test]
    fn every_command_has_exactly_one_page_and_every_page_a_command() {
        let mut all = Vec::new();
        paths(&crate::args::command(), "", &mut all);
        all.retain(|p| p != "help" && !p.ends_with(" help"));
        let missing: Vec<&String> = all.iter().filter(|p| page(p).is_none()).collect();
        assert!(missing.is_empty(), "commands without a page: {missing:?}");
        for page in pages() {
            assert!(all.iter().any(|p| p == page.path), "`{}`", page.path);
            assert_eq!(pages().filter(|p| p.path == page.path).count(), 1);
            assert!(!page.exit_status.is_empty() && !page.examples.is_empty());
            let codes: Vec<i32> = page.exit_status.iter().map(|(c, _)| *c).collect();
            assert!(codes.is_sorted() && codes.contains(&SUCCESS), "{codes:?}");
            assert!(codes.contains(&INVALID), "`{}` has no exit 2", page.path);
            for (line, _) in page.examples {
                assert!(line.starts_with("mkplan "), "{line}");
            }
        }
    }
}
