//! The measured operations, one per process: `backup` and `restore` call the library
//! functions that `mkplan run`'s `backup` and `restore` steps call (`crates/steps/src/backup.rs`),
//! so the numbers are of that code path. Each prints one JSON line with its own wall time
//! and peak RSS (`VmHWM`, the same figure `getrusage`'s `ru_maxrss` reports).

use std::fs;
use std::io::Read;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use mkplan_host::archive;
use serde_json::json;
use sha2::{Digest, Sha256};

/// Peak resident set size of this process so far, in KiB.
pub fn vm_hwm_kib() -> Result<u64> {
    let status = fs::read_to_string("/proc/self/status").context("read /proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM in /proc/self/status")
}

pub fn backup(store: &Path, dir: &Path, stem: &str) -> Result<()> {
    let started = Instant::now();
    let record = archive::backup(store, dir, stem).context("mkplan backup")?;
    let wall_ms = started.elapsed().as_secs_f64() * 1e3;
    if !record.verified {
        bail!("the backup was not verified");
    }
    let line = json!({
        "op": "backup",
        "in_process_ms": wall_ms,
        "vm_hwm_kib": vm_hwm_kib()?,
        "record": record,
    });
    println!("{line}");
    Ok(())
}

pub fn restore(archive_path: &Path, manifest: &Path, store: &Path, run_id: &str) -> Result<()> {
    // What `mkplan run` would have journaled when it made the backup (read before the clock
    // starts: the run knows them already).
    // Streamed, so the peak RSS measured is the restore's alone.
    let (_, end, manifest_sha256) =
        archive::with_manifest(manifest, |_| ()).context("read the manifest")?;
    let archive_sha256 = end
        .context("the manifest has no `end` line")?
        .archive_sha256;
    let journaled = archive::Journaled {
        archive_sha256: &archive_sha256,
        manifest_sha256: &manifest_sha256,
        file_bytes: None,
    };
    let started = Instant::now();
    let record = archive::restore(archive_path, manifest, store, run_id, journaled)
        .context("mkplan restore")?;
    let wall_ms = started.elapsed().as_secs_f64() * 1e3;
    let line = json!({
        "op": "restore",
        "in_process_ms": wall_ms,
        "vm_hwm_kib": vm_hwm_kib()?,
        "record": record,
    });
    println!("{line}");
    Ok(())
}

/// SHA-256 of a file with the `sha2` crate and 256 KiB reads, as mkplan's restore hashes
/// the archive before it extracts anything (`fsio::hash_file`).
pub fn hash(path: &Path) -> Result<()> {
    let started = Instant::now();
    let mut file = fs::File::open(path).with_context(|| format!("open `{}`", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut bytes = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("read `{}`", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bytes += n as u64;
    }
    let line = json!({
        "op": "hash",
        "in_process_ms": started.elapsed().as_secs_f64() * 1e3,
        "vm_hwm_kib": vm_hwm_kib()?,
        "bytes": bytes,
        "sha256": hex::encode(hasher.finalize()),
    });
    println!("{line}");
    Ok(())
}
