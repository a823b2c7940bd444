//! A simulated host laid out from a host description (`mkplan-sim init --host`), with the
//! PINs on stdin, driven only through `mkplan-sim` and the stand-ins at their paths.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{PIN, SIM_EXE, text};

pub const OLD_WK: &str = "0x6f1e1b26c2c5a2b4f1ea3fa7c1c9d3e5";
pub const NEW_WK: &str = "0x9b7d4e0a11f35c8822d0b6e4a7f1c3d9";
/// The tokens' SO PIN (not openCryptoki's default, so a test that passes with the default
/// would fail).
pub const SO_PIN: &str = "S0-PIN-9182";
pub const AES_OLD: &str = "0x1111111111111111";
pub const AES_NEW: &str = "0x2222222222222222";
pub const APKA_OLD: &str = "0x3333333333333333";
pub const APKA_NEW: &str = "0x4444444444444444";

/// An EP11 token of the description.
pub fn ep11_token(name: &str, slot: u64, apqns: &[&str]) -> Value {
    json!({
        "name": name, "slot": slot,
        "store": format!("/var/lib/opencryptoki/{name}tok"),
        "config": format!("/etc/opencryptoki/{name}tok.conf"),
        "apqns": apqns,
        "ep11": {"wkvp_current": OLD_WK, "wkvp_new": NEW_WK}
    })
}

/// A CCA token with AES and APKA master keys (old → new).
pub fn cca_token(name: &str, slot: u64, apqns: &[&str]) -> Value {
    json!({
        "name": name, "slot": slot,
        "store": format!("/var/lib/opencryptoki/{name}tok"),
        "config": format!("/etc/opencryptoki/{name}tok.conf"),
        "apqns": apqns,
        "cca": {"mks": {
            "aes": {"current": AES_OLD, "new": AES_NEW},
            "apka": {"current": APKA_OLD, "new": APKA_NEW}
        }}
    })
}

/// `Master key change operation '<ID>' created.`, parsed with the reference's regex
/// (opencryptoki-ep11.md 2.3 step 9).
pub fn created_id(stdout: &str) -> String {
    let re =
        regex::Regex::new(r"Master key change operation '([A-Za-z0-9]{6})' created\.").unwrap();
    let captures = re
        .captures(stdout)
        .unwrap_or_else(|| panic!("no ID line in {stdout:?}"));
    captures[1].to_owned()
}

pub struct Host {
    pub root: PathBuf,
    _dir: tempfile::TempDir,
}

impl Host {
    /// `mkplan-sim init --host` with `spec`, the USER and SO PINs on a pipe.
    pub fn new(spec: Value, keys: usize) -> Host {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap().join("host");
        let spec_file = dir.path().join("host.json");
        std::fs::write(&spec_file, serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
        let host = Host { root, _dir: dir };
        let mut init = Command::new(SIM_EXE)
            .args(["init", "--pin-stdin", "--so-pin-stdin", "--keys"])
            .arg(keys.to_string())
            .arg("--root")
            .arg(&host.root)
            .arg("--host")
            .arg(&spec_file)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        write!(init.stdin.take().unwrap(), "{PIN}\n{SO_PIN}\n").unwrap();
        let out = init.wait_with_output().unwrap();
        assert!(out.status.success(), "init: {}", text(&out.stderr));
        host
    }

    /// `mkplan-sim <args> --root <root>`.
    pub fn sim(&self, args: &[&str]) -> Output {
        Command::new(SIM_EXE)
            .args(args)
            .arg("--root")
            .arg(&self.root)
            .output()
            .unwrap()
    }

    /// A TKE action that must succeed.
    pub fn tke(&self, args: &[&str]) {
        let mut all = vec!["tke"];
        all.extend_from_slice(args);
        let out = self.sim(&all);
        assert!(out.status.success(), "tke {args:?}: {}", text(&out.stderr));
    }

    /// A stand-in at its path under the root, `stdin` written to a pipe.
    pub fn tool(&self, path: &str, args: &[&str], stdin: &str) -> Output {
        let mut child = Command::new(self.root.join(path))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
        child.wait_with_output().unwrap()
    }

    pub fn mk_change(&self, args: &[&str], stdin: &str) -> Output {
        self.tool("usr/sbin/pkcshsm_mk_change", args, stdin)
    }

    pub fn pkcscca(&self, args: &[&str], stdin: &str) -> Output {
        self.tool("usr/sbin/pkcscca", args, stdin)
    }

    /// `mkplan-sim verify --json`.
    pub fn verify(&self) -> Value {
        serde_json::from_slice(&self.sim(&["verify", "--json"]).stdout).unwrap()
    }

    /// `mkplan-sim apps --json`.
    pub fn apps(&self) -> Value {
        serde_json::from_slice(&self.sim(&["apps", "--json"]).stdout).unwrap()
    }

    pub fn mkvps(&self, apqn: &str) -> String {
        std::fs::read_to_string(
            self.root
                .join("sys/bus/ap/devices")
                .join(apqn)
                .join("mkvps"),
        )
        .unwrap()
    }

    pub fn ops_dir(&self) -> PathBuf {
        self.root.join("var/lib/opencryptoki/HSM_MK_CHANGE")
    }

    /// The files in the operations directory.
    pub fn op_files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.ops_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    pub fn syslog(&self) -> String {
        std::fs::read_to_string(self.root.join("var/log/mkplan-sim/syslog")).unwrap_or_default()
    }

    pub fn path(&self, absolute: &str) -> PathBuf {
        self.root.join(absolute.trim_start_matches('/'))
    }

    /// Sets `EXPECTED_WKVP` of an EP11 token's config file.
    pub fn expect_wkvp(&self, config: &str, wkvp: &str) {
        let path = self.path(config);
        let text = std::fs::read_to_string(&path).unwrap();
        let new = mkplan_plan::ep11conf::rewrite_expected_wkvp(
            &text,
            &mkplan_plan::model::Wkvp::parse(wkvp).unwrap().0,
        )
        .unwrap()
        .unwrap();
        std::fs::write(path, new).unwrap();
    }

    /// Sets `EXPECTED_MKVPS` of a CCA token's config file.
    pub fn expect_mkvps(&self, config: &str, mkvps: &[(&str, &str)]) {
        let path = self.path(config);
        let text = std::fs::read_to_string(&path).unwrap();
        let new = mkvps
            .iter()
            .map(|(mk, vp)| {
                (
                    mkplan_sim::MkType::parse(mk).unwrap(),
                    mkplan_sim::Mkvp::parse(vp).unwrap(),
                )
            })
            .collect();
        std::fs::write(
            path,
            mkplan_sim::rewrite_expected_mkvps(&text, &new).unwrap(),
        )
        .unwrap();
    }

    /// The app's counts.
    pub fn app(&self, name: &str) -> Value {
        self.apps()["apps"][name].clone()
    }

    /// Waits until the app has done `more` operations beyond `since` (it runs in its own
    /// process: this is progress, not timing), and returns its counts.
    pub fn wait_for_ops(&self, name: &str, since: u64, more: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let app = self.app(name);
            let done = app["ok"].as_u64().unwrap_or(0) + app["failed"].as_u64().unwrap_or(0);
            if done >= since + more {
                return app;
            }
            assert!(
                Instant::now() < deadline,
                "app {name} made no progress: {app:#}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Operations the app has done so far.
    pub fn ops_done(&self, name: &str) -> u64 {
        let app = self.app(name);
        app["ok"].as_u64().unwrap_or(0) + app["failed"].as_u64().unwrap_or(0)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = Command::new(SIM_EXE)
            .args(["shutdown", "--root"])
            .arg(&self.root)
            .output();
    }
}

/// `path`'s lines.
pub fn lines_of(bytes: &[u8]) -> Vec<String> {
    text(bytes).lines().map(str::to_owned).collect()
}

/// Every key object file of a store, parsed.
pub fn objects(store: &Path) -> Vec<Value> {
    let index = std::fs::read_to_string(store.join("TOK_OBJ/OBJ.IDX")).unwrap();
    index
        .lines()
        .map(|name| {
            let text = std::fs::read_to_string(store.join("TOK_OBJ").join(name)).unwrap();
            serde_json::from_str(text.lines().next().unwrap()).unwrap()
        })
        .collect()
}
