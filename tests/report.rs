//! The signed run report through the real binary: real runs (plans of `command` and
//! `checkpoint` steps) signed with keys from `mkplan keygen` (P-256 and Ed25519), on a
//! SoftHSM2 token, and with an ephemeral key; independent verification with openssl and the
//! auditor's jq/base64/openssl DSSE recipe; `mkplan report verify` failing on every sampled
//! single-byte edit; headless Chromium rendering report.html; the terminal summary pinned by
//! a snapshot; and byte-identical reports from the same journal.
//!
//! openssl, jq, chromium, softhsm2-util and pkcs11-tool are installed by `scripts/test`; a
//! missing one is a failure, never a skip.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use assert_cmd::cargo::CommandCargoExt;
use mkplan_engine::journal::read_verified;
use mkplan_report::build::{Machine, build};
use mkplan_report::model::{RunReport, report_schema_text};
use softhsm::SoftHsmToken;
use tools::{ok, text, tool};

#[path = "support/softhsm.rs"]
mod softhsm;
#[path = "support/tools.rs"]
mod tools;

/// A scratch area: a host root, a state directory, a plan.
struct Bench {
    dir: tempfile::TempDir,
}

impl Bench {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("root/etc/mkplan")).unwrap();
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn mkplan(&self) -> Command {
        let mut c = Command::cargo_bin("mkplan").unwrap();
        c.arg("--state-dir")
            .arg(self.path("state"))
            .arg("--root")
            .arg(self.path("root"))
            .stdin(Stdio::null());
        c
    }

    /// `mkplan keygen` into the host root's `/etc/mkplan/NAME.pem`.
    fn keygen(&self, name: &str, algorithm: &str) -> PathBuf {
        let prefix = self.path("root/etc/mkplan").join(name);
        let out = self
            .mkplan()
            .args(["keygen", "--algorithm", algorithm, "--out"])
            .arg(&prefix)
            .output()
            .unwrap();
        ok(&out, "mkplan keygen");
        let private = prefix.with_extension("pem");
        let mode = std::fs::metadata(&private).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the private key is 0600");
        prefix.with_extension("pub.pem")
    }

    /// A plan: a command, a dual-control checkpoint, then `middle` steps; a rescue and an
    /// always step; `report` as given (YAML lines under `report:`).
    fn plan(&self, middle: &str, report: &str) -> PathBuf {
        let mut plan = String::from(
            "mkplan: 1\nname: report test <&> \"quoted\"\n\
             change: { ticket: CHG7, summary: Report test, approvers: [alice, bob] }\n\
             tokens:\n  ep11:\n    slot: 4\n    store: /var/lib/opencryptoki/ep11tok\n    apqns: [\"0a.0011\"]\n    pin: { env: MKPLAN_TEST_PIN }\n    wkvp: { current: \"0x00112233445566778899aabbccddeeff\", new: \"0xffeeddccbbaa99887766554433221100\" }\n\
             steps:\n  - name: Say hello\n    command: { argv: [\"echo hello\"], shell: true }\n\
             \x20 - name: Approve the change\n    id: gate\n    checkpoint: { say: Proceed?, approvals: 2 }\n",
        );
        plan.push_str(middle);
        plan.push_str(
            "rescue:\n  - name: Put it back\n    command: { argv: [\"echo rescue\"], shell: true }\n\
             always:\n  - name: Tidy up\n    command: { argv: [\"echo always\"], shell: true }\n",
        );
        if !report.is_empty() {
            plan.push_str("report:\n");
            plan.push_str(report);
        }
        let path = self.path("plan.yaml");
        std::fs::write(&path, plan).unwrap();
        path
    }

    fn run(&self, plan: &Path, env: &[(&str, &str)]) -> Output {
        let mut c = self.mkplan();
        c.args(["run", "--non-interactive", "--operator", "tester"])
            .args(["--approve", "gate=alice", "--approve", "gate=bob"])
            .arg(plan);
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        assert_ne!(out.status.code(), None, "mkplan was killed");
        out
    }

    /// The only run's directory.
    fn run_dir(&self) -> PathBuf {
        let runs: Vec<_> = std::fs::read_dir(self.path("state/runs"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(runs.len(), 1, "one run");
        runs[0].clone()
    }

    fn verify(&self, target: &Path, key: Option<&Path>) -> Output {
        let mut c = self.mkplan();
        c.args(["report", "verify"]).arg(target);
        if let Some(key) = key {
            c.arg("--key").arg(key);
        }
        c.output().unwrap()
    }
}

fn report_of(dir: &Path) -> RunReport {
    RunReport::from_bytes(&std::fs::read(dir.join("report.json")).unwrap()).unwrap()
}

/// `openssl` verifies `report.json.sig` with `public`: dgst for ECDSA, pkeyutl for Ed25519.
fn openssl_verifies(dir: &Path, public: &Path, ed25519: bool) {
    let mut c = tool("openssl");
    if ed25519 {
        c.args(["pkeyutl", "-verify", "-pubin", "-inkey"])
            .arg(public)
            .args([
                "-rawin",
                "-in",
                "report.json",
                "-sigfile",
                "report.json.sig",
            ]);
    } else {
        c.args(["dgst", "-sha256", "-verify"]).arg(public).args([
            "-signature",
            "report.json.sig",
            "report.json",
        ]);
    }
    let out = c.current_dir(dir).output().unwrap();
    ok(&out, "openssl verification of report.json.sig");
    assert!(
        text(&out.stdout).contains("Verified"),
        "{}",
        text(&out.stdout)
    );
}

/// The DSSE recipe of `reference/operator-expectations.md`, in bash with jq, base64, openssl.
fn dsse_recipe_verifies(dir: &Path, public: &Path, ed25519: bool) {
    tool("jq");
    let check = if ed25519 {
        format!(
            "openssl pkeyutl -verify -pubin -inkey '{}' -rawin -in pae.bin -sigfile sig.der",
            public.display()
        )
    } else {
        format!(
            "openssl dgst -sha256 -verify '{}' -signature sig.der pae.bin",
            public.display()
        )
    };
    let script = format!(
        "set -euo pipefail\n\
         jq -r .payload report.dsse.json | base64 -d > payload.json\n\
         jq -r '.signatures[0].sig' report.dsse.json | base64 -d > sig.der\n\
         PT=$(jq -r .payloadType report.dsse.json)\n\
         {{ printf 'DSSEv1 %d %s %d ' \"$(printf %s \"$PT\" | wc -c)\" \"$PT\" \"$(wc -c < payload.json)\"; cat payload.json; }} > pae.bin\n\
         {check}\n\
         a=$(sha256sum report.json | cut -d' ' -f1); b=$(jq -r '.subject[0].digest.sha256' payload.json)\n\
         [ \"$a\" = \"$b\" ] || {{ echo \"digest mismatch: $a vs $b\"; exit 1; }}\n\
         rm payload.json sig.der pae.bin\n"
    );
    let out = tool("bash")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap();
    ok(&out, "the DSSE jq/base64/openssl recipe");
}

/// First, last and ~30 evenly spread positions.
fn sample_positions(len: usize) -> Vec<usize> {
    let mut positions: Vec<usize> = (0..30).map(|i| i * len / 30).collect();
    positions.push(len - 1);
    positions.sort_unstable();
    positions.dedup();
    positions
}

/// Every sampled single-byte change of each artefact makes `mkplan report verify` fail;
/// each byte is restored after its check.
fn every_sampled_edit_fails(b: &Bench, dir: &Path) {
    let mut checked = 0;
    for name in [
        "report.json",
        "report.json.sig",
        "report.dsse.json",
        "journal.jsonl",
    ] {
        let path = dir.join(name);
        let original = std::fs::read(&path).unwrap();
        for at in sample_positions(original.len()) {
            for flip in [0x01u8, 0x20] {
                let mut edited = original.clone();
                edited[at] ^= flip;
                std::fs::write(&path, &edited).unwrap();
                let out = b.verify(dir, None);
                assert_eq!(
                    out.status.code(),
                    Some(1),
                    "flipping {flip:#04x} at byte {at} of {name} went unnoticed:\n{}",
                    text(&out.stdout)
                );
                assert!(
                    text(&out.stdout).contains("FAILED"),
                    "{}",
                    text(&out.stdout)
                );
                checked += 1;
            }
            std::fs::write(&path, &original).unwrap();
        }
    }
    let out = b.verify(dir, None);
    ok(&out, "verify after restoring every byte");
    assert!(checked > 200, "{checked} edits checked");
}

fn signed_run_verifies_everywhere(algorithm: &str) {
    let b = Bench::new();
    let public = b.keygen("signing", algorithm);
    let plan = b.plan("", "  sign: { key: /etc/mkplan/signing.pem }\n");
    let out = b.run(&plan, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("report: ") && stderr.contains("report verify"),
        "{stderr}"
    );
    let dir = b.run_dir();
    let report = report_of(&dir);
    assert_eq!(report.run.outcome, "succeeded");
    assert_eq!(report.signing.method, "key_file");
    // The host root has no sysfs and no PKCS#11 module: the end state says it could not
    // read them, and nothing else is wrong.
    let expected = [
        "token `ep11`: the keys were not probed at the end of the run",
        "token `ep11`: the WK state was not read at the end of the run",
    ];
    assert_eq!(report.warnings.len(), 2, "{:?}", report.warnings);
    for (warning, start) in report.warnings.iter().zip(expected) {
        assert!(warning.starts_with(start), "{warning}");
    }
    let ed25519 = algorithm == "ed25519";
    assert_eq!(
        report.signing.algorithm,
        if ed25519 {
            "ed25519"
        } else {
            "ecdsa-p256-sha256"
        }
    );
    // The key beside the report is the configured one.
    assert_eq!(
        std::fs::read_to_string(dir.join("signer.pub.pem")).unwrap(),
        std::fs::read_to_string(&public).unwrap()
    );
    openssl_verifies(&dir, &public, ed25519);
    dsse_recipe_verifies(&dir, &public, ed25519);
    let out = b.verify(&dir, Some(&public));
    ok(&out, "mkplan report verify --key");
    assert!(
        text(&out.stdout).contains("with --key"),
        "{}",
        text(&out.stdout)
    );
    let run_id = dir.file_name().unwrap().to_str().unwrap().to_owned();
    let out = b.verify(Path::new(&run_id), None);
    ok(&out, "mkplan report verify RUN");
    assert!(
        text(&out.stdout).contains("signer.pub.pem beside the report"),
        "{}",
        text(&out.stdout)
    );
    let out = b.verify(&dir.join("report.json"), None);
    ok(&out, "mkplan report verify report.json");
    every_sampled_edit_fails(&b, &dir);

    // Another key is not the signer.
    let other = b.keygen("other", algorithm);
    let out = b.verify(&dir, Some(&other));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("FAILED  signature"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn a_p256_signed_report_verifies_with_openssl_dsse_and_mkplan_and_no_edit_survives() {
    signed_run_verifies_everywhere("p256");
}

#[test]
fn an_ed25519_signed_report_verifies_with_openssl_dsse_and_mkplan_and_no_edit_survives() {
    signed_run_verifies_everywhere("ed25519");
}

#[test]
fn a_rescued_run_is_reported_and_signed_too() {
    let b = Bench::new();
    let public = b.keygen("signing", "p256");
    let plan = b.plan(
        "  - name: Break\n    command: { argv: [\"echo broken; exit 3\"], shell: true }\n",
        "  sign: { key: /etc/mkplan/signing.pem }\n",
    );
    let out = b.run(&plan, &[]);
    assert_eq!(out.status.code(), Some(1), "the run's own exit code");
    let dir = b.run_dir();
    let report = report_of(&dir);
    assert_eq!(report.run.outcome, "rescued");
    let failure = report.run.failure.as_ref().unwrap();
    assert_eq!(failure.step, "steps[2]");
    assert!(failure.reason.contains("exited 3"), "{}", failure.reason);
    let statuses: Vec<_> = report.steps.iter().map(|s| s.status.as_str()).collect();
    assert_eq!(
        statuses,
        ["succeeded", "succeeded", "failed", "succeeded", "succeeded"]
    );
    assert_eq!(report.approvals.len(), 2);
    assert_eq!(report.approvals[0].approver, "alice");
    assert_eq!(report.approvals[0].method, "flag");
    assert_eq!(report.approvals[0].shown_sha256.len(), 64);
    assert_eq!(report.plan.approvers, ["alice", "bob"]);
    assert_eq!(report.run.operator, "tester");
    openssl_verifies(&dir, &public, false);
    dsse_recipe_verifies(&dir, &public, false);
    ok(&b.verify(&dir, Some(&public)), "verify");
}

#[test]
fn without_a_key_the_report_is_signed_with_an_ephemeral_key_and_says_so() {
    let b = Bench::new();
    let plan = b.plan("", "");
    let out = b.run(&plan, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("EPHEMERAL"),
        "{}",
        text(&out.stderr)
    );
    let dir = b.run_dir();
    let report = report_of(&dir);
    assert_eq!(report.signing.method, "ephemeral");
    assert!(
        report.warnings.iter().any(|w| w.contains("ephemeral key")),
        "{:?}",
        report.warnings
    );
    let public = dir.join("signer.pub.pem");
    openssl_verifies(&dir, &public, false);
    dsse_recipe_verifies(&dir, &public, false);
    ok(&b.verify(&dir, None), "verify");
}

/// A signing key others can read is refused by the preflight (exit 3, no run recorded);
/// one that becomes readable after a run leaves that run without a report, loudly, until
/// it is fixed and the report generated with that key.
#[test]
fn a_key_file_readable_by_others_is_refused_before_the_run_starts() {
    let b = Bench::new();
    b.keygen("signing", "p256");
    let key = b.path("root/etc/mkplan/signing.pem");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let plan = b.plan("", "  sign: { key: /etc/mkplan/signing.pem }\n");
    let out = b.run(&plan, &[]);
    // The preflight: a run that could not be reported is not started (design rule 9).
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(3),
        "refused before the run: {stderr}"
    );
    assert!(
        stderr.contains("preflight: report-signing key:")
            && stderr.contains("has mode 0644")
            && stderr.contains(&format!("chmod 600 {}", key.display())),
        "{stderr}"
    );
    assert!(stderr.contains("no run was recorded"), "{stderr}");
    let runs = std::fs::read_dir(b.path("state/runs")).map_or(0, |d| d.count());
    assert_eq!(runs, 0, "a run was recorded");

    // Fine when the run starts, readable by others by the time of the report.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = b.run(&plan, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let dir = b.run_dir();
    let run_id = dir.file_name().unwrap().to_str().unwrap().to_owned();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = b
        .mkplan()
        .args(["report", "generate", "--force", &run_id])
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("NO RUN REPORT"), "{stderr}");
    assert!(stderr.contains("has mode 0644"), "{stderr}");
    assert!(stderr.contains("report generate"), "{stderr}");

    // Fixed, the report is made afterwards, with that key.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = b
        .mkplan()
        .args(["report", "generate", "--force", &run_id])
        .output()
        .unwrap();
    ok(&out, "mkplan report generate");
    ok(&b.verify(&dir, None), "verify");
    let report = report_of(&dir);
    assert_eq!(report.run.outcome, "succeeded");
    assert_eq!(report.signing.method, "key_file");
}

/// Who may write what the run trusts is part of the preflight: a state directory and a
/// signing key others could write (or read) are said together, one line each, with their
/// fixes, in one refusal (exit 3) that creates nothing in that state directory.
#[test]
fn the_preflight_says_every_trust_problem_at_once() {
    let b = Bench::new();
    b.keygen("signing", "p256");
    let key = b.path("root/etc/mkplan/signing.pem");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let state = b.path("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
    let plan = b.plan("", "  sign: { key: /etc/mkplan/signing.pem }\n");
    let out = b.run(&plan, &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let problems: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("mkplan: error: preflight: "))
        .collect();
    assert_eq!(problems.len(), 2, "{stderr}");
    assert!(
        problems[0].contains("state directory: the state directory")
            && problems[0].contains(&format!("chmod 755 {}", state.display())),
        "{stderr}"
    );
    assert!(
        problems[1].contains("report-signing key:")
            && problems[1].contains(&format!("chmod 600 {}", key.display())),
        "{stderr}"
    );
    assert!(stderr.contains("fix these, then run again"), "{stderr}");
    assert_eq!(
        std::fs::read_dir(&state).unwrap().count(),
        0,
        "created in it"
    );
}

#[test]
fn keygen_never_overwrites_a_key() {
    let b = Bench::new();
    b.keygen("signing", "p256");
    let before = std::fs::read(b.path("root/etc/mkplan/signing.pem")).unwrap();
    let out = b
        .mkplan()
        .args(["keygen", "--out"])
        .arg(b.path("root/etc/mkplan/signing"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("never overwrites"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read(b.path("root/etc/mkplan/signing.pem")).unwrap(),
        before
    );
}

#[test]
fn a_key_on_softhsm_signs_the_report_and_openssl_verifies_it_with_the_exported_key() {
    let b = Bench::new();
    let token = SoftHsmToken::new(b.dir.path(), "signer", "S3cr3t-PIN-4711", 7);
    let (conf, module, pin) = (&token.conf, &token.module, token.pin.as_str());
    token.p256_key_pair(b.dir.path(), "report-signer", "a1", "exported.der");
    let exported = b.path("exported.pem");
    let out = tool("openssl")
        .args(["pkey", "-pubin", "-inform", "DER", "-in"])
        .arg(b.path("exported.der"))
        .arg("-out")
        .arg(&exported)
        .output()
        .unwrap();
    ok(&out, "openssl pkey (DER to PEM)");
    // The module is a host path, found under the root like every other.
    let linked = b.path("root").join(module.trim_start_matches('/'));
    std::fs::create_dir_all(linked.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(module, &linked).unwrap();

    let plan = b.plan(
        "",
        &format!(
            "  sign: {{ pkcs11: {{ module: {module}, slot: 7, label: report-signer, pin: {{ env: MKPLAN_TEST_SIGN_PIN }} }} }}\n"
        ),
    );
    let conf_text = conf.display().to_string();
    let out = b.run(
        &plan,
        &[
            ("SOFTHSM2_CONF", conf_text.as_str()),
            ("MKPLAN_TEST_SIGN_PIN", pin),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("NO RUN REPORT"), "{stderr}");
    assert!(!stderr.contains(pin), "the PIN never shows");
    let dir = b.run_dir();
    let report = report_of(&dir);
    assert_eq!(report.signing.method, "pkcs11");
    assert!(
        report.signing.key.as_deref().unwrap().contains("slot 7"),
        "{:?}",
        report.signing.key
    );
    for name in [
        "report.json",
        "report.dsse.json",
        "report.html",
        "journal.jsonl",
    ] {
        let content = std::fs::read_to_string(dir.join(name)).unwrap();
        assert!(!content.contains(pin), "the PIN is not in {name}");
    }
    openssl_verifies(&dir, &exported, false);
    dsse_recipe_verifies(&dir, &exported, false);
    ok(
        &b.verify(&dir, Some(&exported)),
        "verify with the exported key",
    );
}

/// `(width, height, non-white pixels)` of an 8-bit RGB or RGBA PNG, decoded with flate2.
fn png_ink(png: &[u8]) -> (u32, u32, usize) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let (mut at, mut idat) = (8, Vec::new());
    let (mut width, mut height, mut channels) = (0u32, 0u32, 0usize);
    while at + 8 <= png.len() {
        let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
        let kind = &png[at + 4..at + 8];
        let data = &png[at + 8..at + 8 + len];
        match kind {
            b"IHDR" => {
                width = u32::from_be_bytes(data[0..4].try_into().unwrap());
                height = u32::from_be_bytes(data[4..8].try_into().unwrap());
                assert_eq!(data[8], 8, "8-bit samples");
                assert_eq!(data[12], 0, "not interlaced");
                channels = match data[9] {
                    2 => 3,
                    6 => 4,
                    other => panic!("PNG colour type {other}"),
                };
            }
            b"IDAT" => idat.extend_from_slice(data),
            _ => {}
        }
        at += 12 + len;
    }
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&idat[..])
        .read_to_end(&mut raw)
        .unwrap();
    let stride = width as usize * channels;
    let mut previous = vec![0u8; stride];
    let mut ink = 0;
    for row in raw.chunks(stride + 1) {
        let (filter, bytes) = (row[0], &row[1..]);
        let mut line = vec![0u8; stride];
        for i in 0..stride {
            let a = if i >= channels { line[i - channels] } else { 0 };
            let up = previous[i];
            let c = if i >= channels {
                previous[i - channels]
            } else {
                0
            };
            let predicted = match filter {
                0 => 0,
                1 => a,
                2 => up,
                3 => ((u16::from(a) + u16::from(up)) / 2) as u8,
                4 => {
                    let p = i16::from(a) + i16::from(up) - i16::from(c);
                    let (pa, pb, pc) = (
                        (p - i16::from(a)).abs(),
                        (p - i16::from(up)).abs(),
                        (p - i16::from(c)).abs(),
                    );
                    if pa <= pb && pa <= pc {
                        a
                    } else if pb <= pc {
                        up
                    } else {
                        c
                    }
                }
                other => panic!("PNG filter {other}"),
            };
            line[i] = bytes[i].wrapping_add(predicted);
        }
        ink += line
            .chunks(channels)
            .filter(|px| px[..3].iter().any(|v| *v < 0xf0))
            .count();
        previous = line;
    }
    (width, height, ink)
}

fn chromium(user_data: &Path) -> Command {
    let mut c = tool("chromium");
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ])
    .arg(format!("--user-data-dir={}", user_data.display()));
    c
}

#[test]
fn report_html_opens_in_headless_chromium_with_the_outcome_tables_and_a_visible_page() {
    let b = Bench::new();
    b.keygen("signing", "p256");
    let plan = b.plan(
        "  - name: Break\n    command: { argv: [\"echo broken; exit 3\"], shell: true }\n",
        "  sign: { key: /etc/mkplan/signing.pem }\n",
    );
    b.run(&plan, &[]);
    let html = b.run_dir().join("report.html");
    let source = std::fs::read_to_string(&html).unwrap();
    // Self-contained: nothing to fetch, nothing to run; every string escaped.
    for forbidden in ["<script", "<link", "src=", "http://", "@import", "url("] {
        assert!(
            !source.contains(forbidden),
            "report.html contains `{forbidden}`"
        );
    }
    assert!(source.contains("report test &lt;&amp;&gt; &quot;quoted&quot;"));
    let url = format!("file://{}", html.display());

    let out = chromium(&b.path("chromium-dom"))
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .unwrap();
    ok(&out, "chromium --dump-dom");
    let dom = text(&out.stdout);
    assert!(dom.contains("id=\"outcome\">rescued</span>"), "{dom}");
    assert!(
        dom.matches("<table").count() >= 4,
        "the recap, steps, approvals, token tables"
    );
    for heading in [
        "Change and run",
        "Approvals",
        "Downtime",
        "Signatures",
        "Appendix A — Step log",
        "Appendix E — How to verify this report",
        "Appendix G — Events (PCI DSS 10.2.2)",
    ] {
        assert!(
            dom.contains(&format!("<h2>{heading}</h2>")),
            "no {heading} section"
        );
    }
    assert!(dom.contains(
        "openssl dgst -sha256 -verify signer.pub.pem -signature report.json.sig report.json"
    ));

    let png = b.path("report.png");
    let out = chromium(&b.path("chromium-shot"))
        .arg(format!("--screenshot={}", png.display()))
        .arg("--window-size=1200,1600")
        .arg(&url)
        .output()
        .unwrap();
    ok(&out, "chromium --screenshot");
    let (width, height, ink) = png_ink(&std::fs::read(&png).unwrap());
    assert_eq!((width, height), (1200, 1600));
    let total = (width * height) as usize;
    assert!(
        ink > total / 50,
        "the screenshot is nearly blank: {ink} of {total} pixels are not white"
    );
    // The measure itself: an empty page has (almost) no ink.
    let blank = b.path("blank.html");
    std::fs::write(&blank, "<!DOCTYPE html><html><body></body></html>").unwrap();
    let blank_png = b.path("blank.png");
    let out = chromium(&b.path("chromium-blank"))
        .arg(format!("--screenshot={}", blank_png.display()))
        .arg("--window-size=1200,1600")
        .arg(format!("file://{}", blank.display()))
        .output()
        .unwrap();
    ok(&out, "chromium --screenshot of a blank page");
    let (_, _, blank_ink) = png_ink(&std::fs::read(&blank_png).unwrap());
    assert!(
        blank_ink < total / 1000,
        "a blank page has {blank_ink} inked pixels"
    );
}

/// Times, ids, digests, durations, paths and the machine's names, replaced.
fn redact(text: &str, replacements: &[(&str, &str)]) -> String {
    let mut text = text.to_owned();
    for (from, to) in replacements {
        text = text.replace(from, to);
    }
    let mut out = String::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let rest = &chars[i..];
        let run = |pred: fn(&char) -> bool, from: usize| {
            rest[from..].iter().take_while(|c| pred(c)).count()
        };
        let hex = run(|c| c.is_ascii_hexdigit(), 0);
        let digits = run(|c| c.is_ascii_digit(), 0);
        let boundary = i == 0 || !chars[i - 1].is_ascii_alphanumeric();
        if boundary && hex >= 32 {
            out.push_str("[HEX]");
            i += hex;
        } else if boundary && digits == 4 && rest.get(4) == Some(&'-') {
            // 2026-11-29T16:05:09.385Z
            let len = rest
                .iter()
                .take_while(|c| c.is_ascii_digit() || "-T:.".contains(**c))
                .count();
            out.push_str("[TIME]");
            i += len + usize::from(rest.get(len) == Some(&'Z'));
        } else if boundary
            && digits > 0
            && rest.get(digits) == Some(&'.')
            && run(|c| c.is_ascii_digit(), digits + 1) == 3
            && rest.get(digits + 4) == Some(&'s')
        {
            out.push_str("[DUR]");
            i += digits + 5;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

#[test]
fn report_show_summarises_the_run() {
    let b = Bench::new();
    b.keygen("signing", "p256");
    let plan = b.plan(
        "  - name: Break\n    command: { argv: [\"echo broken; exit 3\"], shell: true }\n",
        "  sign: { key: /etc/mkplan/signing.pem }\n",
    );
    b.run(&plan, &[]);
    let dir = b.run_dir();
    let run_id = dir.file_name().unwrap().to_str().unwrap().to_owned();
    let out = b
        .mkplan()
        .args(["report", "show", &run_id])
        .output()
        .unwrap();
    ok(&out, "mkplan report show");
    let machine = Machine::current();
    let tmp = b.dir.path().display().to_string();
    let shown = redact(
        &text(&out.stdout),
        &[
            (&run_id, "[RUN]"),
            (&tmp, "[TMP]"),
            (
                &format!(
                    "host      {} (kernel {})",
                    machine.hostname, machine.kernel_release
                ),
                "host      [HOST] (kernel [KERNEL])",
            ),
            (
                &format!("version {}", env!("CARGO_PKG_VERSION")),
                "version [V]",
            ),
        ],
    );
    insta::assert_snapshot!("report-show", shown);
}

#[test]
fn the_same_journal_gives_the_same_report_bytes() {
    let b = Bench::new();
    b.keygen("signing", "p256");
    let plan = b.plan("", "  sign: { key: /etc/mkplan/signing.pem }\n");
    b.run(&plan, &[]);
    let dir = b.run_dir();
    let loaded = mkplan_plan::load_file(&dir.join("plan.yaml"));
    let plan = loaded.plan.expect("the plan copy validates");
    let journal = read_verified(&dir.join("journal.jsonl")).unwrap();
    let on_disk = std::fs::read(dir.join("report.json")).unwrap();
    let signing = report_of(&dir).signing;
    let machine = Machine::current();
    let first = build(&dir, &plan, &journal, &machine, &signing).to_bytes();
    let second = build(&dir, &plan, &journal, &machine, &signing).to_bytes();
    assert_eq!(first, second, "two builds in one process");
    assert!(
        first == on_disk,
        "the library rebuilds the binary's report.json byte for byte"
    );
    // And the report validates against the published schema.
    let schema: serde_json::Value = serde_json::from_str(&report_schema_text()).unwrap();
    let instance: serde_json::Value = serde_json::from_slice(&on_disk).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    // And by an independent validator, against the checked-in file.
    let check_jsonschema = std::env::var_os("MKPLAN_CHECK_JSONSCHEMA").unwrap_or_else(|| {
        panic!("MKPLAN_CHECK_JSONSCHEMA is not set: run the tests with scripts/test, which installs check-jsonschema")
    });
    let out = Command::new(check_jsonschema)
        .arg("--schemafile")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/report.schema.json"))
        .arg(dir.join("report.json"))
        .output()
        .unwrap();
    ok(&out, "check-jsonschema on report.json");
    // And by ajv in its default strict mode, as an editor or CI job would run it.
    let ajv = std::env::var_os("MKPLAN_AJV").unwrap_or_else(|| {
        panic!("MKPLAN_AJV is not set: run the tests with scripts/test, which installs ajv-cli")
    });
    let out = Command::new(ajv)
        .args(["validate", "--spec=draft2020", "-s"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/report.schema.json"))
        .arg("-d")
        .arg(dir.join("report.json"))
        .output()
        .unwrap();
    ok(&out, "ajv on report.json");
}

#[test]
fn the_checked_in_report_schema_equals_the_generated_one() {
    let out = Command::cargo_bin("mkplan")
        .unwrap()
        .args(["report", "schema"])
        .output()
        .unwrap();
    ok(&out, "mkplan report schema");
    let checked_in = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/report.schema.json"),
    )
    .unwrap();
    assert!(
        checked_in == text(&out.stdout),
        "schemas/report.schema.json is stale: run `cargo run -- report schema > schemas/report.schema.json`"
    );
    let schema: serde_json::Value = serde_json::from_str(&checked_in).unwrap();
    jsonschema::meta::validate(&schema).expect("a valid draft 2020-12 schema");
}
