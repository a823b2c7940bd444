//! `mkplan rehearse`'s command line.

use std::path::PathBuf;

use mkplan_engine::retention::DEFAULT_REHEARSALS_KEPT;

/// Rehearse a plan on a simulated EP11 host, with optional faults.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Faults (repeatable --fault):
  fail-at-key=K         pkcsep11_migrate fails on the K-th key (the store is left partly migrated)
  slow-keys=MS          pkcsep11_migrate takes MS milliseconds per key
  require-tty | pin-read-exit-zero | lib-load-failure | env-pin
                        pkcsep11_migrate behaviours of older openCryptoki releases
  unit-wont-stop=UNIT   systemctl cannot stop UNIT
  stray                 a process outside every service keeps the token open
  commit-only-on=APQN   the TKE commits the new WK on that APQN only (the others stay uncommitted)
  wrong-new-wkvp        the TKE loads a different new WK than the plan names
  activate-only-on=APQN the TKE activates the new WK on that APQN only
  deny=CHECKPOINT       the simulated operator does not approve that checkpoint (id, name or steps[N])
  wrong-pin             the plan's PIN source gives a wrong PIN (found by one login before any step)
  wrong-so-pin          a CCA token's SO PIN source gives a wrong SO PIN (pkcscca refuses it)
  cca-partial-new       the TKE loads only a first key part of each new CCA MK (NEW partial)
  cca-fail-at-key=K     pkcscca fails on the K-th key of an MK type and still exits 0
  mk-change-refuse-initiate=SLOT  pkcshsm_mk_change: that token refuses the INITIATE query
  mk-change-fail-reencipher=K     pkcshsm_mk_change reencipher fails at the K-th key object (the
                        tool cancels by itself)
  mk-change-fail-finalize=K | mk-change-fail-cancel=K
                        finalize or cancel fails at the K-th key object (the operation is in ERROR)
  mk-change-slow=MS     pkcshsm_mk_change takes MS milliseconds per key object
  disable-event-support pkcsslotd runs without event support (no admin socket)

A concurrent change parks at its activation checkpoint: the rehearsal then lets --park-days
simulated days pass (the simulated applications keep working), resumes, and the simulated TKE
activates; any failed application operation fails the rehearsal.

The simulated host is a temporary directory, removed afterwards unless --keep or --root is
given; runs and reports go to --state-dir (default: $XDG_STATE_HOME/mkplan/rehearsals, where
`mkplan resume` and `mkplan report` also look for a run id).")]
pub struct Args {
    /// The plan to rehearse.
    #[arg(value_name = "PLAN")]
    pub(super) plan: PathBuf,
    /// Key objects per token in the simulated stores.
    #[arg(long, default_value_t = 1000)]
    pub(super) keys: usize,
    /// Inject a fault (see below).
    #[arg(long = "fault", value_name = "NAME[=ARG]")]
    pub(super) faults: Vec<String>,
    /// Keep the simulated host's files afterwards.
    #[arg(long)]
    pub(super) keep: bool,
    /// Finished rehearsals kept in the state directory; older ones are removed.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_REHEARSALS_KEPT)]
    pub(super) keep_rehearsals: usize,
    /// Days that pass (simulated, not waited) while a concurrent change is parked.
    #[arg(long, default_value_t = 3, value_name = "DAYS")]
    pub(super) park_days: u32,
    /// Leave a run that parks parked (exit 6), for a hand-run `mkplan resume`.
    #[arg(long)]
    pub(super) stop_at_park: bool,
}
