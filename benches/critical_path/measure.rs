//! Timing child processes: wall time from a monotonic clock around spawn and wait, peak RSS
//! from GNU `time` (`/usr/bin/time -f %M`, its `-v` "Maximum resident set size"), and the
//! statistics the report shows (median, min, max).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// GNU time; `scripts/bench` installs it (Debian package `time`).
pub const GNU_TIME: &str = "/usr/bin/time";

/// One timed run of a command.
#[derive(Debug, Clone)]
pub struct Timed {
    pub wall_ms: f64,
    /// Peak RSS of the command and its descendants that it waited for, in KiB.
    pub peak_rss_kib: Option<u64>,
    /// User + system CPU time of the command and its descendants (10 ms resolution).
    pub cpu_ms: Option<f64>,
    /// The user and the system part of it.
    pub cpu_user_ms: Option<f64>,
    pub cpu_sys_ms: Option<f64>,
    /// The 1-minute load average just before the run (what the other users were doing).
    pub load_1m: Option<f64>,
    pub stdout: String,
}

/// The 1-minute load average.
pub fn load_1m() -> Option<f64> {
    fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Runs `argv` under `/usr/bin/time -f '%M %U %S' -o <scratch>`; fails when it fails.
pub fn timed(argv: &[String], scratch: &Path) -> Result<Timed> {
    let load_1m = load_1m();
    let mut cmd = Command::new(GNU_TIME);
    cmd.arg("-f")
        .arg("%M %U %S")
        .arg("-o")
        .arg(scratch)
        .args(argv);
    let (wall_ms, stdout) = run(&mut cmd, argv, &[0])?;
    let text = fs::read_to_string(scratch)
        .with_context(|| format!("read GNU time's output `{}`", scratch.display()))?;
    let fields: Vec<&str> = text
        .lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let num = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    Ok(Timed {
        wall_ms,
        peak_rss_kib: num(0).map(|k| k as u64),
        cpu_ms: num(1).zip(num(2)).map(|(u, s)| (u + s) * 1e3),
        cpu_user_ms: num(1).map(|u| u * 1e3),
        cpu_sys_ms: num(2).map(|s| s * 1e3),
        load_1m,
        stdout,
    })
}

/// Runs `argv` directly (for commands of a few milliseconds, where even GNU time's own
/// fork would show).
pub fn timed_direct(argv: &[String]) -> Result<Timed> {
    timed_direct_codes(argv, &[0])
}

/// [`timed_direct`] for a command whose expected exit codes are `codes`.
pub fn timed_direct_codes(argv: &[String], codes: &[i32]) -> Result<Timed> {
    let load_1m = load_1m();
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    let (wall_ms, stdout) = run(&mut cmd, argv, codes)?;
    Ok(Timed {
        wall_ms,
        peak_rss_kib: None,
        cpu_ms: None,
        cpu_user_ms: None,
        cpu_sys_ms: None,
        load_1m,
        stdout,
    })
}

fn run(cmd: &mut Command, argv: &[String], codes: &[i32]) -> Result<(f64, String)> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let out = cmd
        .output()
        .with_context(|| format!("run `{}`", shown(argv)))?;
    let wall_ms = started.elapsed().as_secs_f64() * 1e3;
    if !out.status.code().is_some_and(|c| codes.contains(&c)) {
        bail!(
            "`{}` failed ({}): {}",
            shown(argv),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok((wall_ms, String::from_utf8_lossy(&out.stdout).into_owned()))
}

/// A command line as a person would type it (arguments with spaces quoted).
pub fn shown(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if a.is_empty() || a.contains([' ', '&', '>', '|', '$', '"']) {
                format!("'{a}'")
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `path` as a `String` argument.
pub fn arg(path: &Path) -> String {
    path.display().to_string()
}

/// A scratch file for GNU time's output.
pub fn scratch(work: &Path) -> PathBuf {
    work.join("time.out")
}

/// Median, minimum and maximum of some samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub n: usize,
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Stats {
    pub fn of(samples: &[f64]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let n = s.len();
        let median = if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) / 2.0
        };
        Some(Self {
            n,
            median,
            min: s[0],
            max: s[n - 1],
        })
    }
}

/// Runs every command of `cmds` once per round for `runs` rounds, rotating which goes first
/// (A B, B A for two; A B C, B C A, C A B for three) so that a slow patch of the shared
/// machine hits every side alike.
pub fn rounds(runs: usize, cmds: &mut [&mut dyn FnMut(usize) -> Result<()>]) -> Result<()> {
    rounds_in(0..runs, cmds)
}

/// [`rounds`] numbered from `range.start`, so a second batch of rounds with fewer commands
/// continues the rotation.
pub fn rounds_in(
    range: std::ops::Range<usize>,
    cmds: &mut [&mut dyn FnMut(usize) -> Result<()>],
) -> Result<()> {
    let n = cmds.len();
    for round in range {
        for k in 0..n {
            (cmds[(k + round) % n])(round)?;
        }
    }
    Ok(())
}
