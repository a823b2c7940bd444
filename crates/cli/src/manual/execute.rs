//! The exit status and examples of `run`, `resume` and `rehearse`.

use crate::exit_code::{ABORTED, FAILURE, INVALID, NEEDS_DECISION, PRECONDITION, SUCCESS};
use crate::manual::Page;

pub(super) const PAGES: &[Page] = &[
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
];
