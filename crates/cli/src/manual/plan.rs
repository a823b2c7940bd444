//! The exit status and examples of mkplan itself, `validate` and `check`.

use crate::exit_code::{ABORTED, FAILURE, INVALID, NEEDS_DECISION, PRECONDITION, SUCCESS};
use crate::manual::Page;

pub(super) const PAGES: &[Page] = &[
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
];
