//! What the numbers were measured on: cores, memory, kernel, file system, tool versions and
//! the load other users put on the (shared) machine while the benchmark ran.

use std::fs;
use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu: String,
    pub memory_mib: u64,
    pub kernel: String,
    pub os: String,
    /// File system type of the work directory (stores, archives and restores all live there).
    pub work_fs: String,
    /// `/proc/loadavg` when the benchmark started and when it ended.
    pub load_start: String,
    pub load_end: String,
    /// `name: version` of every tool that was timed.
    pub tools: Vec<(String, String)>,
    pub shared: bool,
}

fn first_line(argv: &[&str]) -> String {
    Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .ok()
        .map(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned()
        })
        .unwrap_or_else(|| "(not found)".to_owned())
}

/// `ext4 on /dev/vda (rw,relatime,…)`: the mount holding `path`, from `/proc/self/mounts`.
fn mount_of(path: &Path) -> String {
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 4 && path.starts_with(f[1])).then(|| (f[1].len(), f[0], f[2], f[3]))
        })
        .max_by_key(|m| m.0)
        .map_or_else(
            || "(unknown)".to_owned(),
            |(_, dev, fstype, opts)| {
                let note = if fstype == "ext4" {
                    jbd2_note(dev)
                } else {
                    String::new()
                };
                format!("{fstype} on {dev} ({opts}){note}")
            },
        )
}

/// Whether an ext4 file system has a journal: jbd2 lists each journal it runs as
/// `/proc/fs/jbd2/<dev>-8`. Without one, an fsync writes the inode directly instead of
/// committing a journal transaction.
fn jbd2_note(dev: &str) -> String {
    let name = dev.rsplit('/').next().unwrap_or(dev);
    let journaled = fs::read_dir("/proc/fs/jbd2").map(|entries| {
        entries.flatten().any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("{name}-"))
        })
    });
    match journaled {
        Ok(true) => ", with a journal".to_owned(),
        Ok(false) => ", **without a journal** (no `/proc/fs/jbd2` entry)".to_owned(),
        Err(_) => String::new(),
    }
}

pub fn load() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

pub fn describe(work: &Path, mkplan: &Path, check_jsonschema: &Path) -> Machine {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default();
    let memory_mib = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024);
    let os = fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .unwrap_or_default()
        .trim_matches('"')
        .to_owned();
    let work = work.display().to_string();
    let mkplan = mkplan.display().to_string();
    let cjs = check_jsonschema.display().to_string();
    let tools = [
        ("mkplan", vec![mkplan.as_str(), "--version"]),
        ("tar", vec!["tar", "--version"]),
        ("gzip", vec!["gzip", "--version"]),
        ("sha256sum", vec!["sha256sum", "--version"]),
        ("check-jsonschema", vec![cjs.as_str(), "--version"]),
        ("python3", vec!["python3", "--version"]),
        (
            "GNU time",
            vec!["dpkg-query", "-W", "-f=${Package} ${Version}", "time"],
        ),
    ]
    .into_iter()
    .map(|(name, argv)| (name.to_owned(), first_line(&argv)))
    .collect();
    Machine {
        cores: std::thread::available_parallelism().map_or(0, usize::from),
        cpu,
        memory_mib,
        kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_owned(),
        os,
        work_fs: mount_of(Path::new(&work)),
        load_start: load(),
        load_end: String::new(),
        tools,
        shared: true,
    }
}
