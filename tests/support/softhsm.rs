//! A SoftHSM2 token for tests that sign with a key on PKCS#11: made with `softhsm2-util`,
//! moved into a chosen slot, with a P-256 key pair made and its public key exported by
//! `pkcs11-tool` — independently of mkplan.

use std::path::{Path, PathBuf};

use crate::tools::{ok, tool};

/// One initialised token in its own token directory under a test's scratch directory.
pub struct SoftHsmToken {
    /// The `SOFTHSM2_CONF` file that points at the token directory.
    pub conf: PathBuf,
    /// The SoftHSM2 module, from `MKPLAN_TEST_SOFTHSM_MODULE` (set by scripts/test).
    pub module: String,
    pub slot: u32,
    pub pin: String,
}

impl SoftHsmToken {
    /// A token labelled `label` with USER PIN `pin`, in slot `slot`, under `dir`.
    pub fn new(dir: &Path, label: &str, pin: &str, slot: u32) -> Self {
        let module = std::env::var("MKPLAN_TEST_SOFTHSM_MODULE").unwrap_or_else(|_| {
            panic!("MKPLAN_TEST_SOFTHSM_MODULE is not set: run the tests through scripts/test")
        });
        let tokens = dir.join("tokens");
        std::fs::create_dir(&tokens).unwrap();
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .unwrap();
        let out = tool("softhsm2-util")
            .env("SOFTHSM2_CONF", &conf)
            .args(["--init-token", "--free", "--label", label])
            .args(["--so-pin", "so-12345678", "--pin", pin])
            .output()
            .unwrap();
        ok(&out, "softhsm2-util --init-token");
        let out = tool("softhsm2-util")
            .env("SOFTHSM2_CONF", &conf)
            .arg("--show-slots")
            .output()
            .unwrap();
        let serial = crate::tools::text(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().strip_prefix("Serial number:"))
            .map(str::trim)
            .find(|s| s.len() == 16)
            .expect("the token's serial")
            .to_owned();
        move_to_slot(&tokens, &serial, slot);
        Self {
            conf,
            module,
            slot,
            pin: pin.to_owned(),
        }
    }

    /// `pkcs11-tool` logged in to the token, run in `cwd`; it must succeed.
    pub fn pkcs11_tool(&self, cwd: &Path, args: &[&str]) {
        let slot = self.slot.to_string();
        let out = tool("pkcs11-tool")
            .env("SOFTHSM2_CONF", &self.conf)
            .args(["--module", &self.module, "--slot", &slot, "--login"])
            .args(["--pin", &self.pin])
            .args(args)
            .current_dir(cwd)
            .output()
            .unwrap();
        ok(&out, "pkcs11-tool");
    }

    /// A P-256 key pair labelled `label` with CKA_ID `id` (hex), its public key exported
    /// to `cwd/<der_file>` (DER).
    pub fn p256_key_pair(&self, cwd: &Path, label: &str, id: &str, der_file: &str) {
        let key_type = ["--keypairgen", "--key-type", "EC:prime256v1"];
        self.pkcs11_tool(
            cwd,
            &[&key_type[..], &["--label", label, "--id", id]].concat(),
        );
        let export = ["--read-object", "--type", "pubkey", "--id", id];
        self.pkcs11_tool(cwd, &[&export[..], &["--output-file", der_file]].concat());
    }
}

/// SoftHSM names a token's slot by the last 8 hex digits of its serial (SlotManager.cpp),
/// which it draws at random — far beyond the plan's slot range 0..1023. The serial lives
/// as 16 ASCII hex digits in `token.object`; rewriting its last 8 digits (same length, so
/// the file's layout is unchanged) puts the token in `slot`.
fn move_to_slot(tokens: &Path, serial: &str, slot: u32) {
    let dir = std::fs::read_dir(tokens).unwrap().next().unwrap().unwrap();
    let path = dir.path().join("token.object");
    let bytes = std::fs::read(&path).unwrap();
    let serial = serial.as_bytes();
    let at = bytes
        .windows(serial.len())
        .position(|w| w == serial)
        .expect("the serial is in token.object");
    let mut edited = bytes.clone();
    edited[at + 8..at + 16].copy_from_slice(format!("{slot:08x}").as_bytes());
    std::fs::write(&path, edited).unwrap();
}
