//! The exit status and examples of mkplan itself, `init`, `validate` and `check`.

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
                "a precondition does not hold (`check`; `run`'s preflight, which includes a state directory, migration tool or signing key others could write; `run`/`resume` refused to start; `init`: the host cannot be planned for as it is, or `init --check` found drift); nothing was changed",
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
        path: "init",
        exit_status: &[
            (
                SUCCESS,
                "the plan was written, or (--check) the plan matches the host",
            ),
            (FAILURE, "the plan could not be written"),
            (
                INVALID,
                "wrong command line: an existing -o file, several EP11 tokens and no --token/--slot, a token that is not there or not EP11 (init does not write CCA plans yet), or an invalid --check plan",
            ),
            (
                PRECONDITION,
                "the host cannot be planned for as it is (the APQNs of a token disagree on the current WK, a queue is offline, a token's config is missing or invalid, a backup directory is not writable, openCryptoki is older than 3.12.1, --procedure concurrent where pkcshsm_mk_change cannot run), or (--check) the plan and the host disagree",
            ),
        ],
        examples: &[
            (
                "mkplan init --ticket CHG0042 --approver alice --approver bob -o zlx01.yaml",
                "a plan for the host's one EP11 token, to review and fill in",
            ),
            (
                "mkplan init --slot 5 --slot 6 --backup-dir /srv/backup/mkplan -o two.yaml",
                "one plan for two tokens, backed up where you say",
            ),
            (
                "mkplan init --check zlx01.yaml",
                "where a written plan and the host disagree now (an APQN added, a new service)",
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
