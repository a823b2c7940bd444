//! Issue 13's scale measurements: `scripts/bench-scale`'s raw samples (JSON Lines, one
//! measurement a line), kept in `results.json` beside the critical-path suites so the page
//! can be re-rendered without re-running.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::measure::Stats;

/// What GNU time said about one command (`%M %e %U %S`), and the load before it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Measured {
    pub rss_kib: u64,
    pub wall_s: f64,
    pub user_s: f64,
    pub sys_s: f64,
    pub load_1m: f64,
}

impl Measured {
    pub fn rss_mib(&self) -> f64 {
        self.rss_kib as f64 / 1024.0
    }
}

/// One line of `scripts/bench-scale`'s output.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Sample {
    /// `op`: `backup`, `restore` (the bench binary's, as `mkplan run` calls them) or `tar`
    /// (`tar -xzf` of the same archive).
    Archive {
        objects: usize,
        op: String,
        #[serde(flatten)]
        m: Measured,
    },
    /// The restore taken apart: `restore on disk` (with its `syncfs` timed), and `restore
    /// on tmpfs` / `tar on tmpfs` rounds.
    Phase {
        objects: usize,
        op: String,
        #[serde(default)]
        syncfs_s: Option<f64>,
        #[serde(flatten)]
        m: Measured,
    },
    /// A whole `mkplan rehearse --keys N`, its output a pipe, stamped line by line.
    Rehearse {
        keys: usize,
        /// The longest stretch without output that did not end in a progress line.
        longest_silence_s: f64,
        /// The longest stretch that ended in a progress line (the cadence of progress).
        #[serde(default)]
        longest_progress_gap_s: f64,
        silence_after: String,
        #[serde(flatten)]
        m: Measured,
    },
    /// `mkplan runs` with `stored` runs of 10,000 keys in the state directory.
    Runs {
        stored: usize,
        #[serde(flatten)]
        m: Measured,
    },
    /// A 1,000-key rehearsal beside `stored` runs.
    Beside {
        stored: usize,
        #[serde(flatten)]
        m: Measured,
    },
}

/// Reads JSON Lines files of samples, in order.
pub fn read(paths: &[impl AsRef<Path>]) -> Result<Vec<Sample>> {
    let mut out = Vec::new();
    for path in paths {
        let path = path.as_ref();
        let text =
            fs::read_to_string(path).with_context(|| format!("read `{}`", path.display()))?;
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            out.push(
                serde_json::from_str(line)
                    .with_context(|| format!("`{}` line {}", path.display(), i + 1))?,
            );
        }
    }
    Ok(out)
}

/// The samples of one kind, picked by `f`.
pub fn pick<T>(samples: &[Sample], f: impl Fn(&Sample) -> Option<T>) -> Vec<T> {
    samples.iter().filter_map(f).collect()
}

/// The archive samples of `op` at `objects`.
pub fn archive(samples: &[Sample], objects: usize, op: &str) -> Vec<Measured> {
    pick(samples, |s| match s {
        Sample::Archive {
            objects: n,
            op: o,
            m,
        } if *n == objects && o == op => Some(*m),
        _ => None,
    })
}

/// The phase samples of `op`.
pub fn phase(samples: &[Sample], op: &str) -> Vec<(Measured, Option<f64>)> {
    pick(samples, |s| match s {
        Sample::Phase {
            op: o, m, syncfs_s, ..
        } if o == op => Some((*m, *syncfs_s)),
        _ => None,
    })
}

/// Statistics of one field over some samples.
pub fn stats(ms: &[Measured], f: impl Fn(&Measured) -> f64) -> Option<Stats> {
    Stats::of(&ms.iter().map(f).collect::<Vec<_>>())
}

/// The sizes the archive samples are of, ascending.
pub fn archive_sizes(samples: &[Sample]) -> Vec<usize> {
    let mut sizes = pick(samples, |s| match s {
        Sample::Archive { objects, .. } => Some(*objects),
        _ => None,
    });
    sizes.sort_unstable();
    sizes.dedup();
    sizes
}
