//! The raw results (`target/bench/results.json`): every sample of every series, with the
//! statistics computed from them, so BENCHMARKS.md can be re-rendered without re-running.

use serde::{Deserialize, Serialize};

use crate::machine::Machine;
use crate::measure::{Stats, Timed};

/// Bumped when the shape of [`Results`] changes.
pub const RESULTS_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    pub version: u32,
    /// `full` or `quick`.
    pub mode: String,
    pub started: String,
    pub finished: String,
    pub total_seconds: f64,
    pub machine: Machine,
    pub settings: Settings,
    pub archive: Vec<ArchiveSize>,
    pub validate: Option<Pair>,
    pub rehearse: Option<Rehearse>,
    /// `scripts/bench-scale`'s samples (issue 13), added by `render --scale`.
    #[serde(default)]
    pub scale: Vec<crate::scale::Sample>,
}

/// Benchmark 5.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rehearse {
    pub variants: Vec<RehearseVariant>,
    /// Latency of appending one small line to a file in the work directory and
    /// `fdatasync`ing it, as the journal does for every event (ms per append).
    pub fdatasync_ms: Vec<f64>,
    pub fdatasync: Option<Stats>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    pub sizes: Vec<usize>,
    /// Rounds of backup and restore for a large store; small ones get more
    /// (`archive_suite::rounds_for`).
    pub archive_runs: usize,
    pub validate_runs: usize,
    pub rehearse_runs: usize,
    pub rehearse_keys: usize,
    pub seed: u64,
    /// `git describe --always --dirty` of the tree the binaries were built from.
    pub commit: String,
    /// The last commit that changed `crates/` (`-dirty` if `crates/` has changes on top): what
    /// the findings' explanations must match.
    #[serde(default)]
    pub src_commit: String,
    pub work_dir: String,
    pub plan: String,
}

/// One command, run several times.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Series {
    pub name: String,
    /// Exactly what was run (paths as on this machine).
    pub command: String,
    pub wall_ms: Vec<f64>,
    /// GNU time's peak RSS (KiB) per run, when it was measured.
    pub peak_rss_kib: Vec<u64>,
    /// GNU time's user + system CPU time per run, when it was measured.
    pub cpu_ms: Vec<f64>,
    /// Its user and system parts.
    pub cpu_user_ms: Vec<f64>,
    pub cpu_sys_ms: Vec<f64>,
    /// The 1-minute load average just before each run.
    pub load_1m: Vec<f64>,
    /// For mkplan's workers: the operation's own wall time, without process start and exit.
    pub in_process_ms: Vec<f64>,
    /// For mkplan's workers: `VmHWM` read by the process itself at the end (KiB).
    pub vm_hwm_kib: Vec<u64>,
    pub wall: Option<Stats>,
    pub cpu: Option<Stats>,
    pub peak_rss_mib: Option<Stats>,
}

impl Series {
    pub fn new(name: &str, command: String) -> Self {
        Self {
            name: name.to_owned(),
            command,
            ..Self::default()
        }
    }

    /// Adds one run's wall time, CPU time, peak RSS and load.
    pub fn add(&mut self, t: &Timed) {
        self.wall_ms.push(t.wall_ms);
        self.cpu_ms.extend(t.cpu_ms);
        self.cpu_user_ms.extend(t.cpu_user_ms);
        self.cpu_sys_ms.extend(t.cpu_sys_ms);
        self.peak_rss_kib.extend(t.peak_rss_kib);
        self.load_1m.extend(t.load_1m);
    }

    /// Fills in the statistics.
    pub fn finish(&mut self) {
        self.wall = Stats::of(&self.wall_ms);
        self.cpu = Stats::of(&self.cpu_ms);
        let mib: Vec<f64> = self
            .peak_rss_kib
            .iter()
            .map(|k| *k as f64 / 1024.0)
            .collect();
        self.peak_rss_mib = Stats::of(&mib);
    }
}

/// mkplan against the command an operator would otherwise use, run interleaved.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pair {
    pub mkplan: Series,
    pub baseline: Series,
    /// Further commands run in the same rounds to explain a difference (not the target).
    pub context: Vec<Series>,
    /// median(mkplan) / median(baseline).
    pub ratio: Option<f64>,
    /// mkplan / baseline within each round (the two ran back to back).
    pub round_ratios: Vec<f64>,
    pub round_ratio: Option<Stats>,
    /// min(mkplan) / min(baseline): each side's least disturbed run.
    #[serde(default)]
    pub fastest_ratio: Option<f64>,
}

impl Pair {
    pub fn new(mkplan: Series, baseline: Series, context: Vec<Series>) -> Self {
        let mut pair = Self {
            mkplan,
            baseline,
            context,
            ratio: None,
            round_ratios: Vec::new(),
            round_ratio: None,
            fastest_ratio: None,
        };
        pair.mkplan.finish();
        pair.baseline.finish();
        for c in &mut pair.context {
            c.finish();
        }
        if let (Some(m), Some(b)) = (pair.mkplan.wall, pair.baseline.wall) {
            pair.ratio = Some(m.median / b.median);
            pair.fastest_ratio = Some(m.min / b.min);
        }
        pair.round_ratios = (pair.mkplan.wall_ms.iter())
            .zip(&pair.baseline.wall_ms)
            .map(|(m, b)| m / b)
            .collect();
        pair.round_ratio = Stats::of(&pair.round_ratios);
        pair
    }
}

/// Backup and restore of one store size.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArchiveSize {
    pub objects: usize,
    /// Rounds of backup and of restore.
    #[serde(default)]
    pub rounds: usize,
    pub files: usize,
    pub bytes: u64,
    pub generate_seconds: f64,
    /// mkplan's archive (gzip level 1).
    pub archive_bytes: u64,
    /// The shell's archive (`tar -z`: gzip level 6).
    pub shell_archive_bytes: u64,
    pub backup: Pair,
    pub restore: Pair,
}

/// Rehearsals of one kind (a successful run, or one whose migration fails and is rescued).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RehearseVariant {
    pub name: String,
    pub command: String,
    pub keys: usize,
    pub runs: Vec<RehearsalRun>,
    /// Per part of the window (see [`RehearsalRun::parts`]), over the runs, in ms.
    pub parts: Vec<(String, Stats)>,
    pub window_ms: Option<Stats>,
    pub overhead_pct: Option<Stats>,
    pub between_steps_pct: Option<Stats>,
    pub process_ms: Option<Stats>,
}

/// One rehearsal, its downtime window taken apart.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RehearsalRun {
    pub run_id: String,
    pub outcome: String,
    /// Wall time of the whole `mkplan rehearse` process.
    pub process_ms: f64,
    /// The 1-minute load average just before the run.
    pub load_1m: Option<f64>,
    /// `report.json` `downtime.duration_ms`: first unit stopped → last unit started.
    pub window_ms: f64,
    /// Where the window went, in ms; the parts add up to the window.
    pub parts: Vec<(String, f64)>,
    /// Window − tool − archive I/O − unit stop/start − the simulated TKE operator.
    pub overhead_ms: f64,
    pub overhead_pct: f64,
    pub between_steps_pct: f64,
    /// Every step's `duration_ms`, labelled `steps[7] set_expected_wkvp`.
    pub steps: Vec<(String, f64)>,
    /// The stretches between two steps inside the window, longest first.
    pub gaps: Vec<Gap>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Gap {
    /// The step before the gap (`steps[3] probe_keys`).
    pub after: String,
    pub ms: f64,
    /// Size of the journal line that step's outcome was written as.
    pub journal_line_bytes: usize,
}
