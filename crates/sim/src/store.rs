//! A simulated EP11 token store, laid out like openCryptoki's (opencryptoki-ep11.md 3.3):
//! `NVTOK.DAT`, `MK_SO`, `MK_USER`, `TOK_OBJ/OBJ.IDX` (one object file name per line) and one
//! file per object named `OB` + 6 characters of `[A-Z0-9]` (the 3.18+ mkstemp naming). The
//! **contents are the simulator's own formats**, documented here:
//!
//! * Object file: line 1 is a JSON object
//!   `{"mkplan_sim_object":1,"class":"CKO_SECRET_KEY","key_type":"CKK_AES","label":"…",
//!   "id":"<hex>","private":true,"blob":"<hex>"|null}`, then a line of `#` padding so the
//!   file is 1–3 KiB like a real one. `blob` is the `CKA_IBM_OPAQUE` secure key (see
//!   `sim::crypto`); certificates and data objects have none.
//! * `NVTOK.DAT`: JSON `{"mkplan_sim_nvtok":1,"label","user_pin":{"salt","sha256"},
//!   "so_pin":{…},"user_login_failures":n}`: the PINs as salted SHA-256, and the failed-login
//!   counter a wrong PIN increments (reference 1.2 step 8).
//! * `MK_SO`, `MK_USER`: JSON `{"mkplan_sim_mk":1,"salt","wrapped"}`: a random data-store
//!   master key sealed under a key derived from the PIN (not used further by the simulator).
//!
//! Object files are written like the token's save path: `<name>.TMP`, then a rename.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::SimError;
use crate::crypto::{self, BlobKind};
use crate::state::write_atomic;

/// The openCryptoki default SO PIN: the simulated tokens' SO PIN unless `init` is given one
/// (`pkcscca` asks for it).
const SO_PIN: &str = "87654321";

/// One token object as stored in its file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SimObject {
    pub mkplan_sim_object: u32,
    /// `CKO_…`, as cryptoki prints it.
    pub class: String,
    /// `CKK_…` for keys.
    pub key_type: Option<String>,
    pub label: String,
    /// `CKA_ID`, lowercase hex.
    pub id: String,
    pub private: bool,
    /// `CKA_IBM_OPAQUE`, hex.
    pub blob: Option<String>,
    /// `CKA_IBM_OPAQUE_REENC`, hex: the blob re-enciphered under the new WK/MK while a
    /// concurrent MK change operation is active (opencryptoki-ep11.md 2.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob_reenc: Option<String>,
    /// `CKA_IBM_OPAQUE_OLD`, hex: the blob under the previous WK/MK, kept by finalize.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob_old: Option<String>,
}

impl SimObject {
    pub fn blob_bytes(&self) -> Option<Vec<u8>> {
        self.blob.as_ref().and_then(|b| hex::decode(b).ok())
    }

    pub fn reenc_bytes(&self) -> Option<Vec<u8>> {
        self.blob_reenc.as_ref().and_then(|b| hex::decode(b).ok())
    }
}

/// An object with the name of its file in `TOK_OBJ`.
#[derive(Debug, Clone)]
pub(crate) struct StoredObject {
    pub file: String,
    pub object: SimObject,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PinRecord {
    pub salt: String,
    pub sha256: String,
}

impl PinRecord {
    fn new(pin: &str) -> Result<Self, SimError> {
        let salt =
            crypto::random_bytes(16).map_err(|e| SimError::io(Path::new("/dev/urandom"), e))?;
        Ok(Self {
            sha256: crypto::pin_digest(&salt, pin),
            salt: hex::encode(salt),
        })
    }

    pub fn matches(&self, pin: &str) -> bool {
        let salt = hex::decode(&self.salt).unwrap_or_default();
        crypto::same(
            crypto::pin_digest(&salt, pin).as_bytes(),
            self.sha256.as_bytes(),
        )
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct NvToken {
    pub mkplan_sim_nvtok: u32,
    pub label: String,
    pub user_pin: PinRecord,
    pub so_pin: PinRecord,
    pub user_login_failures: u32,
}

fn urandom_error(e: std::io::Error) -> SimError {
    SimError::io(Path::new("/dev/urandom"), e)
}

/// The kinds of key `init` creates, in this repeating order: an AES key, an EC key pair, an
/// RSA key pair (each public key has a blob too: EP11 keeps a MACed SPKI, reference 1.5).
const PATTERN: [(BlobKind, &str, &str, usize); 5] = [
    (BlobKind::Aes, "CKO_SECRET_KEY", "CKK_AES", 256),
    (BlobKind::EcPrivate, "CKO_PRIVATE_KEY", "CKK_EC", 400),
    (BlobKind::EcPublic, "CKO_PUBLIC_KEY", "CKK_EC", 120),
    (BlobKind::RsaPrivate, "CKO_PRIVATE_KEY", "CKK_RSA", 1120),
    (BlobKind::RsaPublic, "CKO_PUBLIC_KEY", "CKK_RSA", 300),
];

/// The objects of a new token: `keys` key objects with blobs sealed under the WK with VP
/// `vp`, plus one certificate and one data object without a blob, placed among the keys (the
/// tool's per-key index counts them, reference 1.2 step 12).
#[cfg(test)]
pub(crate) fn new_objects(keys: usize, vp: &[u8; 32]) -> Result<Vec<SimObject>, SimError> {
    new_objects_lazily(keys, *vp).collect()
}

/// [`new_objects`], made one at a time as they are written (a 100,000-key host is laid out
/// without holding its keys).
pub(crate) fn new_objects_lazily(
    keys: usize,
    vp: [u8; 32],
) -> impl Iterator<Item = Result<SimObject, SimError>> {
    let plain = |class: &str, label: &str, id: &str| SimObject {
        mkplan_sim_object: 1,
        class: class.to_owned(),
        key_type: None,
        label: label.to_owned(),
        id: id.to_owned(),
        private: false,
        blob: None,
        blob_reenc: None,
        blob_old: None,
    };
    // Where the two keyless objects sit among the keys.
    let (cert_at, data_at) = (keys.min(2), (keys + 1).min(6));
    let (mut emitted, mut n) = (0, 0);
    let mut id = Vec::new();
    std::iter::from_fn(move || {
        let position = emitted;
        emitted += 1;
        if position == cert_at {
            return Some(Ok(plain("CKO_CERTIFICATE", "app-cert-0001", "c0de0001")));
        }
        if position == data_at {
            return Some(Ok(plain("CKO_DATA", "app-config", "")));
        }
        if n == keys {
            return None;
        }
        n += 1;
        Some(new_key(n - 1, &vp, &mut id))
    })
}

/// Key `n` of a new token; `id` is the CKA_ID its key pair shares.
fn new_key(n: usize, vp: &[u8; 32], id: &mut Vec<u8>) -> Result<SimObject, SimError> {
    let (kind, class, key_type, payload_len) = PATTERN[n % PATTERN.len()];
    // A key pair shares its CKA_ID and label; the private half comes first.
    if !matches!(kind, BlobKind::EcPublic | BlobKind::RsaPublic) {
        *id = crypto::random_bytes(8).map_err(urandom_error)?;
    }
    let mut material = crypto::random_bytes(payload_len).map_err(urandom_error)?;
    let blob = crypto::seal(kind, vp, &material).map_err(urandom_error);
    zeroize::Zeroize::zeroize(&mut material);
    let pair = n - n % PATTERN.len();
    let label = match kind {
        BlobKind::Aes => format!("app-aes-{:04}", n + 1),
        BlobKind::EcPrivate | BlobKind::EcPublic => format!("app-ec-{:04}", pair + 2),
        // RSA: `PATTERN` holds EP11 kinds only.
        _ => format!("app-rsa-{:04}", pair + 4),
    };
    Ok(SimObject {
        mkplan_sim_object: 1,
        class: class.to_owned(),
        key_type: Some(key_type.to_owned()),
        label,
        id: hex::encode(&*id),
        private: class != "CKO_PUBLIC_KEY",
        blob: Some(hex::encode(blob?)),
        blob_reenc: None,
        blob_old: None,
    })
}

/// `OB` + 6 random `[A-Z0-9]`, not yet in `dir`.
fn new_object_name(dir: &Path) -> Result<String, SimError> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    loop {
        let bytes = crypto::random_bytes(6).map_err(urandom_error)?;
        let name: String = std::iter::once("OB".to_owned())
            .chain(
                bytes
                    .iter()
                    .map(|b| (ALPHABET[usize::from(*b) % ALPHABET.len()] as char).to_string()),
            )
            .collect();
        if !dir.join(&name).exists() {
            return Ok(name);
        }
    }
}

/// Lays out a new token store at `store` (the path under the root) with `objects`.
#[cfg(test)]
pub(crate) fn create(
    store: &Path,
    label: &str,
    pin: &str,
    objects: &[SimObject],
) -> Result<(), SimError> {
    create_with_pins(store, label, pin, SO_PIN, objects.iter().cloned().map(Ok))
}

/// The SO PIN `init` gives the tokens when none is given: openCryptoki's default.
pub const DEFAULT_SO_PIN: &str = SO_PIN;

/// Lays out a new token store at `store` (the path under the root) with `objects`, the
/// USER PIN `pin` and the SO PIN `so_pin`.
pub(crate) fn create_with_pins(
    store: &Path,
    label: &str,
    pin: &str,
    so_pin: &str,
    objects: impl IntoIterator<Item = Result<SimObject, SimError>>,
) -> Result<(), SimError> {
    let tok_obj = store.join("TOK_OBJ");
    fs::create_dir_all(&tok_obj).map_err(|e| SimError::io(&tok_obj, e))?;
    let nv = NvToken {
        mkplan_sim_nvtok: 1,
        label: label.to_owned(),
        user_pin: PinRecord::new(pin)?,
        so_pin: PinRecord::new(so_pin)?,
        user_login_failures: 0,
    };
    write_nvtok(store, &nv)?;
    for (file, pin) in [("MK_SO", so_pin), ("MK_USER", pin)] {
        let salt = crypto::random_bytes(16).map_err(urandom_error)?;
        let mut key = zeroize::Zeroizing::new(crypto::random_bytes(32).map_err(urandom_error)?);
        let wrapping = crypto::hmac_sha256(pin.as_bytes(), &[b"mkplan-sim MK wrap", &salt]);
        for (byte, k) in key.iter_mut().zip(wrapping) {
            *byte ^= k;
        }
        let body = serde_json::json!({ "mkplan_sim_mk": 1, "salt": hex::encode(&salt), "wrapped": hex::encode(&*key) });
        write_atomic(&store.join(file), format!("{body}\n").as_bytes())?;
    }
    let mut index = String::new();
    let mut progress = LayoutProgress::new(label);
    for object in objects {
        progress.tick();
        let name = new_object_name(&tok_obj)?;
        let pad = 1024 + usize::from(crypto::random_bytes(2).map_err(urandom_error)?[0]) * 8;
        write_object(store, &name, &object?, pad)?;
        index.push_str(&name);
        index.push('\n');
    }
    write_atomic(&tok_obj.join("OBJ.IDX"), index.as_bytes())
}

/// A line on stderr at most every 1.5 s while a large store is laid out (a 50,000-key
/// rehearsal's lay-out took 9 s in silence); a small one prints nothing.
struct LayoutProgress<'a> {
    label: &'a str,
    started: std::time::Instant,
    last: std::time::Instant,
    written: u64,
}

impl<'a> LayoutProgress<'a> {
    const EVERY: std::time::Duration = std::time::Duration::from_millis(1500);

    fn new(label: &'a str) -> Self {
        let now = std::time::Instant::now();
        Self {
            label,
            started: now,
            last: now,
            written: 0,
        }
    }

    fn tick(&mut self) {
        self.written += 1;
        if !self.written.is_multiple_of(64) || self.last.elapsed() < Self::EVERY {
            return;
        }
        self.last = std::time::Instant::now();
        let rate = self.written as f64 / self.started.elapsed().as_secs_f64();
        eprintln!(
            "simulated host: laying out token `{}`: {} objects written ({rate:.0}/s)",
            self.label, self.written
        );
    }
}

/// Writes one object file atomically (`<name>.TMP`, rename), padded to at least `size`.
pub(crate) fn write_object(
    store: &Path,
    name: &str,
    object: &SimObject,
    size: usize,
) -> Result<(), SimError> {
    let mut text = serde_json::to_string(object).expect("object serializes");
    text.push('\n');
    let pad = size.saturating_sub(text.len() + 1).max(1);
    text.push_str(&"#".repeat(pad));
    text.push('\n');
    let path = store.join("TOK_OBJ").join(name);
    let tmp = store.join("TOK_OBJ").join(format!("{name}.TMP"));
    fs::write(&tmp, &text)
        .and_then(|()| fs::rename(&tmp, &path))
        .map_err(|e| SimError::io(&path, e))
}

/// Rewrites one object's blob, keeping the file's size (the token's save path, at once).
pub(crate) fn rewrite_blob(
    store: &Path,
    stored: &StoredObject,
    blob: &[u8],
) -> Result<(), SimError> {
    let path = store.join("TOK_OBJ").join(&stored.file);
    let size = fs::metadata(&path)
        .map_err(|e| SimError::io(&path, e))?
        .len();
    let mut object = stored.object.clone();
    object.blob = Some(hex::encode(blob));
    write_object(
        store,
        &stored.file,
        &object,
        usize::try_from(size).unwrap_or(usize::MAX),
    )
}

/// Every object listed in `TOK_OBJ/OBJ.IDX`, in its order.
pub(crate) fn read_objects(store: &Path) -> Result<Vec<StoredObject>, SimError> {
    objects(store)?.collect()
}

/// Every object listed in `TOK_OBJ/OBJ.IDX`, in its order, read one at a time (a probe of a
/// large store holds one object, not the store).
pub(crate) fn objects(
    store: &Path,
) -> Result<impl Iterator<Item = Result<StoredObject, SimError>> + use<>, SimError> {
    let index_path = store.join("TOK_OBJ/OBJ.IDX");
    let index = mkplan_plan::input::read_to_string(&index_path, mkplan_plan::input::STORE_FILE)
        .map_err(|e| SimError::io(&index_path, e))?;
    let dir = store.join("TOK_OBJ");
    let names: Vec<String> = index
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    Ok(names.into_iter().map(move |name| {
        let path = dir.join(&name);
        let text = mkplan_plan::input::read_to_string(&path, mkplan_plan::input::STORE_FILE)
            .map_err(|e| SimError::io(&path, e))?;
        let first = text.lines().next().unwrap_or_default();
        let object: SimObject = serde_json::from_str(first)
            .map_err(|e| SimError::Format(format!("object file `{}`: {e}", path.display())))?;
        Ok(StoredObject { file: name, object })
    }))
}

fn nvtok_path(store: &Path) -> PathBuf {
    store.join("NVTOK.DAT")
}

pub(crate) fn read_nvtok(store: &Path) -> Result<NvToken, SimError> {
    let path = nvtok_path(store);
    let text = mkplan_plan::input::read_to_string(&path, mkplan_plan::input::STORE_FILE)
        .map_err(|e| SimError::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| SimError::Format(format!("`{}`: {e}", path.display())))
}

fn write_nvtok(store: &Path, nv: &NvToken) -> Result<(), SimError> {
    let text = serde_json::to_string_pretty(nv).expect("nvtok serializes");
    write_atomic(&nvtok_path(store), text.as_bytes())
}

/// The outcome of a USER login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Login {
    Ok,
    /// `CKR_PIN_INCORRECT`; the failed-login counter is now this.
    Incorrect(u32),
}

/// `C_Login(CKU_USER)`: checks `pin` against NVTOK.DAT. A wrong PIN increments the counter
/// in NVTOK.DAT, a right one resets it (written only when it changes). Serialised on the
/// token's lock file, `var/lock/opencryptoki/<tok>/LCK..<tok>` (reference 3.3).
pub(crate) fn login(root: &Path, store: &Path, pin: &str) -> Result<Login, SimError> {
    let _lock = token_lock(root, store)?;
    let mut nv = read_nvtok(store)?;
    if nv.user_pin.matches(pin) {
        if nv.user_login_failures != 0 {
            nv.user_login_failures = 0;
            write_nvtok(store, &nv)?;
        }
        return Ok(Login::Ok);
    }
    nv.user_login_failures += 1;
    write_nvtok(store, &nv)?;
    Ok(Login::Incorrect(nv.user_login_failures))
}

/// `<root>/var/lock/opencryptoki/<tok>/LCK..<tok>` (reference 3.3).
pub(crate) fn lock_file(root: &Path, store: &Path) -> PathBuf {
    let name = store
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    root.join("var/lock/opencryptoki")
        .join(&name)
        .join(format!("LCK..{name}"))
}

fn token_lock(root: &Path, store: &Path) -> Result<fs::File, SimError> {
    let path = lock_file(root, store);
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| SimError::io(dir, e))?;
    }
    crate::state::lock_file_exclusive(&path)
}

/// `ep11tok.conf` for a token (reference 3.2): its APQNs as decimal `<adapter> <domain>`
/// pairs without leading zeros (3.19+ reads no octal), and `EXPECTED_WKVP`.
pub(crate) fn ep11tok_conf(token: &str, apqns: &[mkplan_plan::model::Apqn], wkvp: &str) -> String {
    let mut text = format!(
        "# ep11tok.conf for token `{token}`, written by mkplan-sim (simulated host)\n\nAPQN_ALLOWLIST\n"
    );
    for apqn in apqns {
        text.push_str(&format!("{} {}\n", apqn.adapter(), apqn.domain()));
    }
    text.push_str(&format!("END\n\nEXPECTED_WKVP \"{wkvp}\"\n"));
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use mkplan_plan::model::{Apqn, Wkvp};

    #[test]
    fn a_new_store_round_trips_and_checks_the_pin() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("var/lib/opencryptoki/ep11tok");
        let vp = crypto::extend_vp(&Wkvp::parse(&"11".repeat(16)).unwrap().0);
        let objects = new_objects(7, &vp).unwrap();
        assert_eq!(objects.iter().filter(|o| o.blob.is_some()).count(), 7);
        assert_eq!(objects[2].class, "CKO_CERTIFICATE");
        create(&store, "ep11", "S3cr3t", &objects).unwrap();
        let read = read_objects(&store).unwrap();
        assert_eq!(
            read.iter().map(|s| s.object.clone()).collect::<Vec<_>>(),
            objects
        );
        for stored in &read {
            assert!(stored.file.starts_with("OB") && stored.file.len() == 8);
            let size = fs::metadata(store.join("TOK_OBJ").join(&stored.file))
                .unwrap()
                .len();
            assert!((1024..=3072).contains(&size), "{size}");
        }
        assert_eq!(
            login(dir.path(), &store, "wrong").unwrap(),
            Login::Incorrect(1)
        );
        assert_eq!(
            login(dir.path(), &store, "wrong").unwrap(),
            Login::Incorrect(2)
        );
        assert_eq!(login(dir.path(), &store, "S3cr3t").unwrap(), Login::Ok);
        assert_eq!(read_nvtok(&store).unwrap().user_login_failures, 0);
        let everything = fs::read_to_string(store.join("NVTOK.DAT")).unwrap();
        assert!(!everything.contains("S3cr3t"));
    }

    #[test]
    fn the_config_parses_with_the_hosts_parser() {
        let text = ep11tok_conf(
            "ep11",
            &[Apqn::new(10, 17), Apqn::new(0, 1)],
            "0x6f1e1b26c2c5a2b4f1ea3fa7c1c9d3e5",
        );
        let config = mkplan_plan::ep11conf::parse(&text).unwrap();
        assert_eq!(
            config.apqns,
            mkplan_plan::ep11conf::ApqnMode::Allowlist(vec![Apqn::new(10, 17), Apqn::new(0, 1)])
        );
        assert!(config.expected_wkvp.is_some());
    }
}
