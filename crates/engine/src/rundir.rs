//! The state directory and its runs: `<state>/runs/<run-id>/` with a copy of the plan, its
//! SHA-256 and the journal. Run ids sort by start time. Everything is created readable by
//! its owner only, or also by the state directory's group ([`Access`]).

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::access::{Access, create_private_dirs};
use crate::digest::sha256_hex;

/// Where mkplan keeps runs unless `--state-dir` says otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/mkplan";

pub const PLAN_COPY: &str = "plan.yaml";
pub const PLAN_DIGEST: &str = "plan.sha256";
pub const JOURNAL: &str = "journal.jsonl";

#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    #[error("cannot prepare `{path}`: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no run `{id}` in `{runs}`")]
    NoSuchRun { id: String, runs: PathBuf },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RunDirError + '_ {
    move |source| RunDirError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A state directory: runs, the lock.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn runs(&self) -> PathBuf {
        self.dir.join("runs")
    }

    pub fn lock_path(&self) -> PathBuf {
        self.dir.join("lock")
    }

    /// Creates the state directory (0700) and its `runs` directory if they are missing.
    pub fn ensure(&self) -> Result<(), RunDirError> {
        create_private_dirs(&self.dir).map_err(io(&self.dir))?;
        let runs = self.runs();
        match Access::inside(&self.dir).and_then(|access| access.create_dir(&runs)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(io(&runs)(e)),
        }
    }

    /// The access of what is created directly in the state directory (the lock file).
    pub fn access(&self) -> Result<Access, RunDirError> {
        Access::inside(&self.dir).map_err(io(&self.dir))
    }

    /// Creates a new run directory holding an exact copy of the plan and its digest.
    pub fn create_run(&self, plan_text: &str) -> Result<RunDir, RunDirError> {
        self.create_run_as(&new_run_id(), plan_text)
    }

    /// As [`StateDir::create_run`], for the id [`new_run_id`] gave (the lock names it before
    /// the run directory exists).
    pub fn create_run_as(&self, id: &str, plan_text: &str) -> Result<RunDir, RunDirError> {
        self.ensure()?;
        let runs = self.runs();
        let id = id.to_owned();
        let dir = runs.join(&id);
        let access = Access::inside(&self.dir).map_err(io(&self.dir))?;
        access.create_dir(&dir).map_err(io(&dir))?;
        let digest = sha256_hex(plan_text.as_bytes());
        write_synced(&dir.join(PLAN_COPY), plan_text.as_bytes(), access)?;
        write_synced(
            &dir.join(PLAN_DIGEST),
            format!("{digest}  {PLAN_COPY}\n").as_bytes(),
            access,
        )?;
        sync_dir(&runs)?;
        Ok(RunDir { id, dir })
    }

    pub fn open_run(&self, id: &str) -> Result<RunDir, RunDirError> {
        let dir = self.runs().join(id);
        if id.contains('/') || !dir.join(JOURNAL).is_file() {
            return Err(RunDirError::NoSuchRun {
                id: id.to_owned(),
                runs: self.runs(),
            });
        }
        Ok(RunDir {
            id: id.to_owned(),
            dir,
        })
    }

    /// Every run, oldest first.
    pub fn list_runs(&self) -> Result<Vec<RunDir>, RunDirError> {
        let runs = self.runs();
        let entries = match fs::read_dir(&runs) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&runs)(e)),
        };
        let mut out: Vec<RunDir> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().join(JOURNAL).is_file())
            .map(|e| RunDir {
                id: e.file_name().to_string_lossy().into_owned(),
                dir: e.path(),
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }
}

/// One run's directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub id: String,
    pub dir: PathBuf,
}

impl RunDir {
    pub fn journal(&self) -> PathBuf {
        self.dir.join(JOURNAL)
    }

    pub fn plan_copy(&self) -> PathBuf {
        self.dir.join(PLAN_COPY)
    }

    /// The plan digest recorded when the run was created.
    pub fn recorded_digest(&self) -> Result<String, RunDirError> {
        let path = self.dir.join(PLAN_DIGEST);
        let text = mkplan_plan::input::read_to_string(&path, mkplan_plan::input::SMALL)
            .map_err(io(&path))?;
        Ok(text
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned())
    }
}

/// `20261129T153000Z-3fa9c1`: UTC start time to the second, then randomness so two runs in
/// one second never collide.
pub fn new_run_id() -> String {
    let now = jiff::Timestamp::now();
    let stamp = now.strftime("%Y%m%dT%H%M%SZ").to_string();
    let mut random = [0u8; 3];
    if fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut random))
        .is_err()
    {
        let nanos = now.subsec_nanosecond().unsigned_abs();
        random = [(nanos >> 16) as u8, (nanos >> 8) as u8, nanos as u8];
    }
    format!("{stamp}-{}", hex::encode(random))
}

/// Writes a new file with `access` and fsyncs it.
pub fn write_synced(path: &Path, bytes: &[u8], access: Access) -> Result<(), RunDirError> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(access.file_mode())
        .open(path)
        .map_err(io(path))?;
    access.apply(&file).map_err(io(path))?;
    file.write_all(bytes).map_err(io(path))?;
    file.sync_all().map_err(io(path))
}

pub fn sync_dir(dir: &Path) -> Result<(), RunDirError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_created_with_the_plan_and_listed_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let a = state.create_run("mkplan: 1\n").unwrap();
        fs::write(a.journal(), "").unwrap();
        let b = state.create_run("mkplan: 1\n").unwrap();
        fs::write(b.journal(), "").unwrap();
        assert!(a.id < b.id || a.id[..16] == b.id[..16]);
        assert_eq!(state.list_runs().unwrap().len(), 2);
        assert_eq!(a.recorded_digest().unwrap(), sha256_hex(b"mkplan: 1\n"));
        assert!(state.open_run("nope").is_err());
        assert!(state.open_run("../x").is_err());
    }
}
