//! The exit status and examples of `runs`, `report`, `keygen`, `schema`, `completions` and `man`.

use crate::exit_code::{FAILURE, INVALID, SUCCESS};
use crate::manual::Page;
use crate::manual::USAGE;

pub(super) const PAGES: &[Page] = &[
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
