//! The exit status and examples of `report` and its subcommands.

use crate::exit_code::{FAILURE, INCOMPLETE, INVALID, PRECONDITION, SUCCESS};
use crate::manual::Page;
use crate::manual::USAGE;

pub(super) const PAGES: &[Page] = &[
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
                "signature, DSSE envelope, journal chain, plan digest and key lists",
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
            (
                INCOMPLETE,
                "every signature verifies, but co-signatures the plan requires (report.cosign) are missing",
            ),
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
        path: "report cosign",
        exit_status: &[
            (SUCCESS, "co-signed, or co-signed by this key already"),
            (
                FAILURE,
                "the report does not verify (nothing is vouched for), or cannot be written",
            ),
            (
                INVALID,
                "wrong command line, a key the plan lists for no approver, or no terminal and no --yes",
            ),
            (
                PRECONDITION,
                "the key cannot be used (a key file others can read, a PIN the token refuses)",
            ),
        ],
        examples: &[
            (
                "mkplan report cosign 20261129T153000Z-3fa9c1 --key ~/.mkplan/alice.pem",
                "alice co-signs after reading the summary and typing the end of the run id",
            ),
            (
                "mkplan report cosign RUN --key \"pkcs11:slot-id=0;object=alice?module-path=$MODULE\"",
                "with a key on a token (the PIN is asked)",
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
];
