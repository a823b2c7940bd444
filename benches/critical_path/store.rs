//! Token stores shaped like openCryptoki's EP11 store (`crates/sim/src/store.rs`): `NVTOK.DAT`,
//! `MK_SO`, `MK_USER`, `TOK_OBJ/OBJ.IDX` and one `OB??????` file per object, 1–3 KiB of
//! random (incompressible) bytes each, like the secure-key blobs of a real store.

use std::collections::HashSet;
use std::fs::{self, File, Permissions};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;

/// The store directory's name, as on a real host.
pub const STORE_NAME: &str = "ep11tok";

/// What [`generate`] made.
#[derive(Debug, Clone, Serialize)]
pub struct Generated {
    pub store: PathBuf,
    pub objects: usize,
    /// Regular files (objects + `OBJ.IDX`, `NVTOK.DAT`, `MK_SO`, `MK_USER`).
    pub files: usize,
    pub bytes: u64,
    pub seconds: f64,
}

/// xoshiro256**: fast, reproducible, and gzip finds nothing to compress in its output.
pub struct Rng([u64; 4]);

impl Rng {
    pub fn new(seed: u64) -> Self {
        // splitmix64 spreads the seed over the state.
        let mut z = seed;
        let mut next = || {
            z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            x ^ (x >> 31)
        };
        Self([next(), next(), next(), next()])
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

/// `OB` + 6 of `[A-Z0-9]`, openCryptoki's 3.18+ object file names.
fn object_name(rng: &mut Rng) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut name = String::from("OB");
    for _ in 0..6 {
        name.push(ALPHABET[rng.range(0, ALPHABET.len() - 1)] as char);
    }
    name
}

fn write(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    fs::write(path, data).with_context(|| format!("write `{}`", path.display()))?;
    fs::set_permissions(path, Permissions::from_mode(mode))
        .with_context(|| format!("chmod `{}`", path.display()))
}

/// Makes `<parent>/ep11tok` with `objects` object files (replacing whatever was there), then
/// flushes the file system so that write-back does not run into the first timed run.
pub fn generate(parent: &Path, objects: usize, seed: u64) -> Result<Generated> {
    let started = std::time::Instant::now();
    let store = parent.join(STORE_NAME);
    if store.exists() {
        fs::remove_dir_all(&store).with_context(|| format!("remove `{}`", store.display()))?;
    }
    let tok_obj = store.join("TOK_OBJ");
    fs::create_dir_all(&tok_obj).with_context(|| format!("create `{}`", tok_obj.display()))?;
    let mut rng = Rng::new(seed);
    let mut buf = vec![0u8; 4096];
    let mut bytes = 0u64;
    let mut put = |rng: &mut Rng, path: &Path, len: usize, mode: u32| -> Result<()> {
        rng.fill(&mut buf[..len]);
        bytes += len as u64;
        write(path, &buf[..len], mode)
    };
    put(&mut rng, &store.join("NVTOK.DAT"), 1240, 0o660)?;
    put(&mut rng, &store.join("MK_SO"), 64, 0o660)?;
    put(&mut rng, &store.join("MK_USER"), 64, 0o660)?;
    let mut names = HashSet::with_capacity(objects);
    let mut index = String::with_capacity(objects * 9);
    while names.len() < objects {
        let name = object_name(&mut rng);
        if !names.insert(name.clone()) {
            continue;
        }
        let len = rng.range(1024, 3072);
        put(&mut rng, &tok_obj.join(&name), len, 0o660)?;
        index.push_str(&name);
        index.push('\n');
    }
    bytes += index.len() as u64;
    write(&tok_obj.join("OBJ.IDX"), index.as_bytes(), 0o660)?;
    for dir in [&tok_obj, &store] {
        fs::set_permissions(dir, Permissions::from_mode(0o770))
            .with_context(|| format!("chmod `{}`", dir.display()))?;
    }
    sync_fs(parent)?;
    Ok(Generated {
        store,
        objects,
        files: objects + 4,
        bytes,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// `syncfs` of the file system holding `dir`: writes of one run must not be flushed during
/// the next.
pub fn sync_fs(dir: &Path) -> Result<()> {
    let d = File::open(dir).with_context(|| format!("open `{}`", dir.display()))?;
    rustix::fs::syncfs(&d).with_context(|| format!("syncfs `{}`", dir.display()))
}

/// Removes `path` (file or tree) if it exists.
pub fn remove(path: &Path) -> Result<()> {
    let result = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => Err(e),
    };
    result.with_context(|| format!("remove `{}`", path.display()))
}

/// Fails unless `path` is absolute: the manifest records the store path as given, and a
/// restore is refused for any other spelling of it.
pub fn absolute(path: &Path) -> Result<PathBuf> {
    if !path.is_absolute() {
        bail!("`{}` must be an absolute path", path.display());
    }
    Ok(path.to_path_buf())
}
