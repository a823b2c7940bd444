//! The exit status and examples of every command, in one table: `--help` shows them after
//! the options, and the man pages (`mkplan man`) as their EXIT STATUS and EXAMPLES sections.

use crate::exit_code::{ABORTED, FAILURE, INVALID, NEEDS_DECISION, PRECONDITION, SUCCESS};

/// What one command's page says beyond its options.
pub(crate) struct Page {
    /// The words after `mkplan` (`""` for mkplan itself, `"report verify"`).
    pub path: &'static str,
    pub exit_status: &'static [(i32, &'static str)],
    /// (command line, what it does).
    pub examples: &'static [(&'static str, &'static str)],
}

const USAGE: (i32, &str) = (INVALID, "wrong command line");

pub(crate) const PAGES: &[Page] = &[
    Page {
        path: "",
        exit_status: &[
            (
                SUCCESS,
                "success: the plan is valid, the check found every precondition holding, the run succeeded",
            ),
            (
                FAILURE,
                "the run failed, was rescued or was interrupted (also at the preflight's PIN prompt, before the run was recorded); or a failure not caused by the plan (I/O, internal error)",
            ),
            (
                INVALID,
                "invalid plan, unreadable (or too large) plan file, a plan or approvals file others could write, or wrong command line",
            ),
            (
                PRECONDITION,
                "a precondition does not hold (`check`; `run`'s preflight, which includes a state directory, migration tool or signing key others could write; `run`/`resume` refused to start); nothing was changed",
            ),
            (
                ABORTED,
                "aborted: a checkpoint was denied (its rescue and always steps ran)",
            ),
            (
                NEEDS_DECISION,
                "`resume`: a step was interrupted half-way and needs --retry-step or --accept-step",
            ),
        ],
        examples: &[
            (
                "mkplan validate plans/ep11-offline.yaml",
                "check a plan against the schema and safety rules",
            ),
            (
                "mkplan rehearse plans/ep11-offline.yaml",
                "the whole plan on a simulated EP11 host",
            ),
            (
                "mkplan check plans/ep11-offline.yaml",
                "dry run against the live system",
            ),
            (
                "mkplan run --approve tke-commit=alice --approve tke-commit=bob --approve tke-activate=alice plans/ep11-offline.yaml",
                "run the change with its approvals given ahead of time",
            ),
            (
                "mkplan resume 20261129T153000Z-3fa9c1 --accept-step",
                "continue an interrupted run",
            ),
            (
                "mkplan man --all /usr/local/share/man/man1",
                "install this page and one per command",
            ),
        ],
    },
    Page {
        path: "validate",
        exit_status: &[
            (
                SUCCESS,
                "every plan is valid (with --strict: and has no warning)",
            ),
            (
                INVALID,
                "a plan is invalid, cannot be read or is too large, or wrong command line",
            ),
        ],
        examples: &[
            (
                "mkplan validate plans/ep11-offline.yaml",
                "check a plan against the schema and the safety rules",
            ),
            (
                "mkplan validate --format json --strict plans/*.yaml",
                "every plan, as JSON for editors and CI, failing on warnings too",
            ),
        ],
    },
    Page {
        path: "check",
        exit_status: &[
            (SUCCESS, "every precondition holds"),
            (FAILURE, "a failure not caused by the plan (I/O)"),
            (
                INVALID,
                "invalid plan, a plan others could write, or wrong command line",
            ),
            (
                PRECONDITION,
                "a precondition does not hold (each problem of the preflight is listed, a state directory, migration tool or signing key others could write among them)",
            ),
        ],
        examples: &[
            (
                "mkplan check plans/ep11-offline.yaml",
                "dry run against the live host",
            ),
            (
                "mkplan --root /tmp/sim check plans/ep11-offline.yaml",
                "dry run against a simulated host kept by `mkplan rehearse --keep --root /tmp/sim`",
            ),
        ],
    },
    Page {
        path: "run",
        exit_status: &[
            (SUCCESS, "the run succeeded"),
            (
                FAILURE,
                "the run failed, was rescued or was interrupted (Ctrl-C at the preflight's PIN prompt: before the run was recorded)",
            ),
            (
                INVALID,
                "invalid plan, a plan or approvals file others could write, an approval for no checkpoint of the plan, or wrong command line",
            ),
            (
                PRECONDITION,
                "the preflight found a problem (the host, a PIN its one login refused, a state directory, migration tool or signing key others could write), another run holds the state directory, or an earlier run did not finish; nothing was changed",
            ),
            (ABORTED, "aborted: a checkpoint was denied"),
        ],
        examples: &[
            (
                "mkplan run plans/ep11-offline.yaml",
                "on a terminal: each checkpoint asks its approvers",
            ),
            (
                "mkplan run --non-interactive --approve tke-commit=alice --approve tke-commit=bob --approve tke-activate=alice plans/ep11-offline.yaml",
                "without a terminal: approvals given ahead of time",
            ),
            (
                "mkplan run --approvals approvals.yaml plans/ep11-offline.yaml",
                "approvals from a file: `approvals: [{checkpoint: tke-commit, approver: alice}]`",
            ),
            (
                "mkplan run --list-steps plans/ep11-offline.yaml",
                "the steps, their ids and positions, without running anything",
            ),
        ],
    },
    Page {
        path: "resume",
        exit_status: &[
            (SUCCESS, "the run succeeded"),
            (
                FAILURE,
                "the run failed, was rescued or was interrupted again",
            ),
            (
                INVALID,
                "no such run, a finished run, an invalid plan, an approvals file others could write, or wrong command line",
            ),
            (
                PRECONDITION,
                "the plan changed, the journal is broken, another run holds the state directory, a migration tool runs against the token, or the state directory or signing key could be written by others; nothing was changed",
            ),
            (ABORTED, "aborted: a checkpoint was denied"),
            (
                NEEDS_DECISION,
                "a step was interrupted half-way: decide with --retry-step or --accept-step",
            ),
        ],
        examples: &[
            (
                "mkplan resume 20261129T153000Z-3fa9c1",
                "continue a run; says what is known when a step was interrupted half-way",
            ),
            (
                "mkplan resume 20261129T153000Z-3fa9c1 --retry-step",
                "run the interrupted step again (a migration from the restored backup)",
            ),
            (
                "mkplan resume 20261129T153000Z-3fa9c1 --accept-step",
                "take the interrupted step as done; the decision is journaled with your name",
            ),
        ],
    },
    Page {
        path: "rehearse",
        exit_status: &[
            (SUCCESS, "the rehearsed run succeeded"),
            (
                FAILURE,
                "the rehearsed run failed, was rescued or was interrupted",
            ),
            (
                INVALID,
                "invalid plan, unknown fault, a --root that is not empty, or wrong command line",
            ),
            (
                PRECONDITION,
                "a precondition does not hold on the simulated host",
            ),
            (
                ABORTED,
                "aborted: the simulated operator denied a checkpoint (--fault deny=…)",
            ),
        ],
        examples: &[
            (
                "mkplan rehearse plans/ep11-offline.yaml",
                "the plan end to end on a fresh simulated host, removed afterwards",
            ),
            (
                "mkplan rehearse --fault fail-at-key=500 plans/ep11-offline.yaml",
                "the tool fails half-way: watch the rescue restore the backup",
            ),
            (
                "mkplan rehearse --keep plans/ep11-offline.yaml",
                "keep the simulated host for `mkplan-sim verify` or `mkplan check --root`",
            ),
        ],
    },
    Page {
        path: "runs",
        exit_status: &[
            (SUCCESS, "the runs are listed"),
            (FAILURE, "the state directory cannot be read"),
            USAGE,
        ],
        examples: &[
            ("mkplan runs", "every run of /var/lib/mkplan and its state"),
            (
                "mkplan runs --state-dir ~/.local/state/mkplan/rehearsals",
                "the runs of `mkplan rehearse`",
            ),
        ],
    },
    Page {
        path: "report",
        exit_status: &[
            (SUCCESS, "shown, verified or written"),
            (
                FAILURE,
                "a check failed, or the report is missing, unreadable or not written",
            ),
            USAGE,
        ],
        examples: &[
            (
                "mkplan report verify 20261129T153000Z-3fa9c1",
                "signature, DSSE envelope, journal chain and plan digest",
            ),
            (
                "mkplan report show /var/lib/mkplan/reports/20261129T153000Z-3fa9c1",
                "the summary of a report copied to the plan's `report.dir`",
            ),
        ],
    },
    Page {
        path: "report show",
        exit_status: &[
            (SUCCESS, "shown"),
            (FAILURE, "the report is missing or unreadable"),
            USAGE,
        ],
        examples: &[(
            "mkplan report show 20261129T153000Z-3fa9c1",
            "outcome, approvals, tokens, steps and warnings of a run",
        )],
    },
    Page {
        path: "report verify",
        exit_status: &[
            (SUCCESS, "every check passed"),
            (
                FAILURE,
                "a check failed, or the report is missing or unreadable",
            ),
            USAGE,
        ],
        examples: &[
            (
                "mkplan report verify 20261129T153000Z-3fa9c1",
                "against signer.pub.pem beside the report (integrity)",
            ),
            (
                "mkplan report verify --key signing.pub.pem ./evidence/20261129T153000Z-3fa9c1",
                "against the key you trust (who signed it)",
            ),
        ],
    },
    Page {
        path: "report generate",
        exit_status: &[
            (SUCCESS, "the report was written and signed"),
            (
                FAILURE,
                "no report was written (the reason is printed); the run's outcome stands",
            ),
            USAGE,
        ],
        examples: &[(
            "mkplan report generate 20261129T153000Z-3fa9c1",
            "the report of a finished run whose report could not be written",
        )],
    },
    Page {
        path: "report schema",
        exit_status: &[(SUCCESS, "printed"), USAGE],
        examples: &[(
            "mkplan report schema > report.schema.json",
            "the report JSON Schema (draft 2020-12)",
        )],
    },
    Page {
        path: "report fleet",
        exit_status: &[
            (
                SUCCESS,
                "the fleet report was written and signed, and every host report given verifies",
            ),
            (
                FAILURE,
                "written, but a host report does not verify (it is listed as such); or nothing could be written",
            ),
            USAGE,
        ],
        examples: &[
            (
                "mkplan report fleet --out fleet --key fleet.pem --host zlx01 --host zlx02 reports/zlx01 reports/zlx02",
                "one signed fleet report from the reports the Ansible role fetched",
            ),
            (
                "mkplan report verify --key fleet.pub.pem fleet",
                "its signature and envelope, and every host report still where it was read",
            ),
        ],
    },
    Page {
        path: "keygen",
        exit_status: &[
            (SUCCESS, "the key pair was written"),
            (
                FAILURE,
                "a key file exists already (never overwritten) or cannot be written",
            ),
            USAGE,
        ],
        examples: &[
            (
                "mkplan keygen --out /etc/mkplan/signing",
                "/etc/mkplan/signing.pem (mode 0600) and signing.pub.pem, ECDSA P-256",
            ),
            (
                "mkplan keygen --algorithm ed25519 --out /etc/mkplan/signing",
                "the same with Ed25519",
            ),
        ],
    },
    Page {
        path: "schema",
        exit_status: &[(SUCCESS, "printed"), USAGE],
        examples: &[(
            "mkplan schema > schemas/plan.schema.json",
            "the plan JSON Schema (draft 2020-12) for editors and CI",
        )],
    },
    Page {
        path: "completions",
        exit_status: &[(SUCCESS, "printed"), USAGE],
        examples: &[(
            "mkplan completions bash > /etc/bash_completion.d/mkplan",
            "bash completion for every command and option",
        )],
    },
    Page {
        path: "man",
        exit_status: &[
            (SUCCESS, "printed or written"),
            (FAILURE, "a page cannot be written"),
            (INVALID, "no such command, or wrong command line"),
        ],
        examples: &[
            ("mkplan man | man -l -", "read mkplan(1)"),
            (
                "mkplan man report verify | man -l -",
                "read mkplan-report-verify(1)",
            ),
            (
                "mkplan man --all /usr/local/share/man/man1",
                "write mkplan(1) and the page of every command",
            ),
        ],
    },
];

/// The page of the command `path` (words after `mkplan`).
pub(crate) fn page(path: &str) -> Option<&'static Page> {
    PAGES.iter().find(|p| p.path == path)
}

/// Appends each command's exit status and examples to its `--help`, from [`PAGES`].
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
        paths(&crate::cli::command(), "", &mut all);
        all.retain(|p| p != "help" && !p.ends_with(" help"));
        let missing: Vec<&String> = all.iter().filter(|p| page(p).is_none()).collect();
        assert!(missing.is_empty(), "commands without a page: {missing:?}");
        for page in PAGES {
            assert!(all.iter().any(|p| p == page.path), "`{}`", page.path);
            assert_eq!(PAGES.iter().filter(|p| p.path == page.path).count(), 1);
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
