//! The exit status and examples of `runs`, `keygen`, `schema`, `completions` and `man`.

use crate::exit_code::{FAILURE, INVALID, PRECONDITION, SUCCESS};
use crate::manual::Page;
use crate::manual::USAGE;

pub(super) const PAGES: &[Page] = &[
    Page {
        path: "runs",
        exit_status: &[
            (SUCCESS, "the runs are listed (or, with --prune, pruned)"),
            (
                FAILURE,
                "the state directory cannot be read, or (--prune) a run holds its lock or a run directory cannot be removed",
            ),
            USAGE,
        ],
        examples: &[
            ("mkplan runs", "every run of /var/lib/mkplan and its state"),
            (
                "mkplan runs --state-dir ~/.local/state/mkplan/rehearsals",
                "the runs of `mkplan rehearse`",
            ),
            (
                "mkplan runs --prune",
                "remove the runs that finished more than 366 days ago (PCI DSS 10.5.1 keeps audit trails a year): never an unfinished run (running, interrupted, needing a decision) or one without a readable summary",
            ),
            (
                "mkplan runs --prune --retention-days 2557",
                "keep seven years instead",
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
        path: "approve",
        exit_status: &[
            (SUCCESS, "the signed approval was written"),
            (
                FAILURE,
                "the output file exists already (never overwritten) or cannot be written",
            ),
            (
                INVALID,
                "an invalid plan, an unknown checkpoint, a key the plan lists for no approver, a wrong --expires, or no terminal and no --yes",
            ),
            (
                PRECONDITION,
                "the key cannot be used (a key file others can read, a PIN the token refuses)",
            ),
        ],
        examples: &[(
            "mkplan approve zlx01.yaml tke-commit --key ~/.mkplan/alice.pem -o alice.approval",
            "alice signs her approval of `tke-commit`; the operator runs with --approvals alice.approval",
        )],
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
