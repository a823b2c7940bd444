//! Signed approvals through the real binary: `mkplan approve` writes a DSSE-signed
//! statement; `run --approvals` accepts it only when it verifies with the key the plan lists
//! and matches this run; asserted names of approvers with a key are refused (or accepted
//! with a report warning when the plan allows it); a statement counts once; the report
//! carries the statements and the README recipe verifies them with openssl. The refused
//! statements are made with openssl, not with mkplan.
//!
//! openssl and jq are installed by `scripts/test`; a missing one is a failure, never a skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use assert_cmd::cargo::CommandCargoExt;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use tools::{both, ok, text, tool};

#[path = "support/tools.rs"]
mod tools;

const PAYLOAD_TYPE: &str = "application/vnd.mkplan.approval+json";

/// A plan with approvers alice (P-256) and bob (Ed25519), a checkpoint `gate` needing both.
struct Bench {
    dir: tempfile::TempDir,
}

impl Bench {
    fn new(asserted: &str) -> Self {
        let b = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(b.path("root/etc/mkplan")).unwrap();
        b.keygen("root/etc/mkplan/signing", "p256");
        let alice = b.keygen("alice", "p256");
        let bob = b.keygen("bob", "ed25519");
        b.keygen("eve", "p256");
        let key = |path: &Path| {
            std::fs::read_to_string(path)
                .unwrap()
                .lines()
                .map(|l| format!("        {l}\n"))
                .collect::<String>()
        };
        let plan = format!(
            "mkplan: 1\nname: signed approvals test\n\
             change:\n  ticket: CHG11\n  summary: Signed approvals test\n{asserted}  approvers:\n\
             \x20   - name: alice\n      key: |\n{}    - name: bob\n      key: |\n{}    - carol\n\
             tokens:\n  ep11:\n    slot: 4\n    store: /var/lib/opencryptoki/ep11tok\n    apqns: [\"0a.0011\"]\n    pin: {{ env: MKPLAN_TEST_PIN }}\n    wkvp: {{ current: \"0x00112233445566778899aabbccddeeff\", new: \"0xffeeddccbbaa99887766554433221100\" }}\n\
             steps:\n  - name: Say hello\n    command: {{ argv: [\"echo hello\"], shell: true }}\n\
             \x20 - name: Commit on the TKE\n    id: gate\n    checkpoint: {{ say: Commit the new WK., tke: commit, approvals: 2 }}\n\
             \x20 - name: Later\n    id: later\n    checkpoint: {{ say: Go on?, approvals: 1 }}\n\
             report:\n  sign: {{ key: /etc/mkplan/signing.pem }}\n",
            key(&alice),
            key(&bob)
        );
        std::fs::write(b.path("plan.yaml"), plan).unwrap();
        b
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

    fn keygen(&self, prefix: &str, algorithm: &str) -> PathBuf {
        let out = self
            .mkplan()
            .args(["keygen", "--algorithm", algorithm, "--out"])
            .arg(self.path(prefix))
            .output()
            .unwrap();
        ok(&out, "mkplan keygen");
        self.path(&format!("{prefix}.pub.pem"))
    }

    fn approve(&self, who: &str, checkpoint: &str, out: &str, extra: &[&str]) -> Output {
        self.mkplan()
            .arg("approve")
            .arg(self.path("plan.yaml"))
            .arg(checkpoint)
            .arg("--key")
            .arg(self.path(&format!("{who}.pem")))
            .args(["--yes", "-o"])
            .arg(self.path(out))
            .args(extra)
            .output()
            .unwrap()
    }

    /// `run` with approvals files (and `--approve` flags); never a terminal.
    fn run(&self, files: &[&str], flags: &[&str]) -> Output {
        let mut c = self.mkplan();
        c.args(["run", "--non-interactive", "--operator", "tester"]);
        for file in files {
            c.arg("--approvals").arg(self.path(file));
        }
        for flag in flags {
            c.args(["--approve", flag]);
        }
        c.arg(self.path("plan.yaml")).output().unwrap()
    }

    fn runs(&self) -> Vec<PathBuf> {
        match std::fs::read_dir(self.path("state/runs")) {
            Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// alice's approval of `gate`, by mkplan, as a JSON value of its statement.
    fn statement(&self) -> Value {
        let out = self.approve("alice", "gate", "alice-template.approval", &[]);
        ok(&out, "mkplan approve (alice)");
        let file: Value =
            serde_json::from_slice(&std::fs::read(self.path("alice-template.approval")).unwrap())
                .unwrap();
        let payload = STANDARD
            .decode(file["approvals"][0]["signed"]["payload"].as_str().unwrap())
            .unwrap();
        serde_json::from_slice(&payload).unwrap()
    }

    /// An approvals file holding `payload` signed by `signer`'s P-256 key with openssl.
    fn forge(&self, name: &str, payload: &[u8], signer: &str) {
        let keyid = tool("sh")
            .arg("-c")
            .arg(format!(
                "openssl pkey -pubin -in '{}' -outform DER | sha256sum | cut -c1-64",
                self.path(&format!("{signer}.pub.pem")).display()
            ))
            .output()
            .unwrap();
        let keyid = text(&keyid.stdout).trim().to_owned();
        let mut pae = format!(
            "DSSEv1 {} {PAYLOAD_TYPE} {} ",
            PAYLOAD_TYPE.len(),
            payload.len()
        )
        .into_bytes();
        pae.extend_from_slice(payload);
        std::fs::write(self.path("pae.bin"), &pae).unwrap();
        let out = tool("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(self.path(&format!("{signer}.pem")))
            .arg("-out")
            .arg(self.path("sig.der"))
            .arg(self.path("pae.bin"))
            .output()
            .unwrap();
        ok(&out, "openssl dgst -sign");
        let sig = std::fs::read(self.path("sig.der")).unwrap();
        let envelope = json!({
            "payloadType": PAYLOAD_TYPE,
            "payload": STANDARD.encode(payload),
            "signatures": [{ "keyid": keyid, "sig": STANDARD.encode(sig) }],
        });
        let file = json!({ "approvals": [{ "signed": envelope }] });
        std::fs::write(self.path(name), format!("{file}\n")).unwrap();
    }
}

fn compact(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}

fn time(offset_seconds: i64) -> String {
    let t = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(offset_seconds))
        .unwrap();
    t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

#[test]
fn approve_then_run_passes_the_checkpoint_and_the_report_carries_the_statements() {
    let b = Bench::new("");
    ok(
        &b.approve("alice", "gate", "alice.approval", &[]),
        "approve (alice)",
    );
    ok(
        &b.approve("bob", "gate", "bob.approval", &["--expires", "2h"]),
        "approve (bob)",
    );
    ok(
        &b.approve("alice", "later", "alice-later.approval", &[]),
        "approve later",
    );
    let out = b.run(
        &["alice.approval", "bob.approval", "alice-later.approval"],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let runs = b.runs();
    let dir = &runs[0];
    let report: Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    let approvals = report["approvals"].as_array().unwrap();
    assert_eq!(approvals.len(), 3, "{approvals:?}");
    for a in approvals {
        assert!(a["signed"]["envelope"]["payload"].is_string(), "{a}");
    }
    let verify = b
        .mkplan()
        .args(["report", "verify", "--key"])
        .arg(b.path("root/etc/mkplan/signing.pub.pem"))
        .arg(dir)
        .output()
        .unwrap();
    ok(&verify, "report verify");
    assert!(
        text(&verify.stdout).contains("ok      approvals 3 signed approval(s) verify"),
        "{}",
        both(&verify)
    );
    let show = b
        .mkplan()
        .args(["report", "show"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        text(&show.stdout).contains("alice (file, signed (key "),
        "{}",
        both(&show)
    );

    // The README recipe verifies every statement with openssl and prints what it approved.
    let trusted = dir.join("trusted");
    std::fs::create_dir(&trusted).unwrap();
    for name in [
        "root/etc/mkplan/signing.pub.pem",
        "alice.pub.pem",
        "bob.pub.pem",
    ] {
        let to = trusted.join(Path::new(name).file_name().unwrap());
        std::fs::copy(b.path(name), to).unwrap();
    }
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let block = &readme[readme.find("<!-- recipe:dsse -->").unwrap()
        ..readme.find("<!-- /recipe:dsse -->").unwrap()];
    let recipe = block
        .split_once("```sh\n")
        .unwrap()
        .1
        .rsplit_once("```")
        .unwrap()
        .0;
    tool("jq");
    let out = tool("bash")
        .arg("-c")
        .arg(recipe)
        .current_dir(dir)
        .output()
        .unwrap();
    ok(&out, "the README recipe");
    let said = text(&out.stdout);
    assert_eq!(
        said.matches("signature 0: Verified OK").count(),
        4,
        "{said}"
    );
    assert!(said.contains("\"approver\":\"bob\""), "{said}");
    assert!(said.contains("\"checkpoint\":\"steps[2]\""), "{said}");

    // A second run refuses the same statements: each counts once.
    let out = b.run(
        &["alice.approval", "bob.approval", "alice-later.approval"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert!(
        text(&out.stderr).contains("was already used by run "),
        "{}",
        both(&out)
    );
    assert_eq!(b.runs().len(), 1, "nothing was started");
}

#[test]
fn an_asserted_name_is_refused_when_the_plan_lists_keys() {
    let b = Bench::new("");
    ok(
        &b.approve("bob", "gate", "bob.approval", &[]),
        "approve (bob)",
    );
    let out = b.run(&["bob.approval"], &["gate=alice", "later=carol"]);
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    let said = text(&out.stderr);
    assert!(
        said.contains("`alice`'s approval is an asserted name")
            && said.contains("change.asserted_approvals: refuse")
            && said.contains("mkplan approve PLAN gate --key KEY"),
        "{said}"
    );
    assert!(b.runs().is_empty(), "nothing was started");
}

#[test]
fn an_asserted_name_is_accepted_with_a_warning_when_the_plan_allows_it() {
    let b = Bench::new("  asserted_approvals: warn\n");
    ok(
        &b.approve("bob", "gate", "bob.approval", &[]),
        "approve (bob)",
    );
    let out = b.run(&["bob.approval"], &["gate=alice", "later=carol"]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let report: Value =
        serde_json::from_slice(&std::fs::read(b.runs()[0].join("report.json")).unwrap()).unwrap();
    let warnings = report["warnings"].to_string();
    assert!(
        warnings.contains(
            "checkpoint `gate`: alice's approval is an asserted name (given by flag), not signed"
        ),
        "{warnings}"
    );
    assert!(!warnings.contains("carol"), "carol has no key: {warnings}");
}

#[test]
fn refusals_name_what_is_wrong() {
    let b = Bench::new("");
    ok(
        &b.approve("bob", "gate", "bob.approval", &[]),
        "approve (bob)",
    );
    let good = b.statement();
    let with = |field: &str, value: Value| {
        let mut s = good.clone();
        s[field] = value;
        compact(&s)
    };
    let mut pretty = serde_json::to_vec_pretty(&good).unwrap();
    pretty.push(b'\n');
    let eve_id = {
        let out = tool("sh")
            .arg("-c")
            .arg(format!(
                "openssl pkey -pubin -in '{}' -outform DER | sha256sum | cut -c1-64",
                b.path("eve.pub.pem").display()
            ))
            .output()
            .unwrap();
        text(&out.stdout).trim().to_owned()
    };
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        (
            "plan",
            with("plan_sha256", json!("ab".repeat(32))),
            "alice",
            "approves plan sha256 abab",
        ),
        (
            "checkpoint",
            with("checkpoint", json!("steps[2]")),
            "alice",
            "approves checkpoint `gate` (steps[2]), not `later` (steps[2])",
        ),
        (
            "text",
            with("shown_sha256", json!("cd".repeat(32))),
            "alice",
            "was made for another checkpoint text",
        ),
        (
            "wkvp",
            with(
                "tokens",
                json!([{"token": "ep11", "wkvp_new": "0x00000000000000000000000000000000"}]),
            ),
            "alice",
            "approves new WKVPs ep11 0x0000",
        ),
        (
            "name",
            with("approver", json!("bob")),
            "alice",
            "names `bob` but is signed with alice's key",
        ),
        (
            "expired",
            {
                let mut s = good.clone();
                s["issued"] = json!(time(-7200));
                s["expires"] = json!(time(-3600));
                compact(&s)
            },
            "alice",
            "expired at ",
        ),
        (
            "future",
            {
                let mut s = good.clone();
                s["issued"] = json!(time(3600));
                s["expires"] = json!(time(7200));
                compact(&s)
            },
            "alice",
            "was issued in the future",
        ),
        (
            "long",
            {
                let mut s = good.clone();
                s["expires"] = json!(time(40 * 86400));
                compact(&s)
            },
            "alice",
            "at most 30 days",
        ),
        ("canonical", pretty, "alice", "is not in canonical form"),
        (
            "unknown-key",
            {
                let mut s = good.clone();
                s["keyid"] = json!(eve_id);
                compact(&s)
            },
            "eve",
            "which is no approver key of this plan (alice ",
        ),
    ];
    for (name, payload, signer, expected) in cases {
        let file = format!("{name}.approval");
        b.forge(&file, &payload, signer);
        let out = b.run(&[&file, "bob.approval"], &["later=carol"]);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", both(&out));
        assert!(
            text(&out.stderr).contains(expected),
            "{name}: `{expected}` in:\n{}",
            both(&out)
        );
        assert!(b.runs().is_empty(), "{name}: nothing was started");
    }
    // Signed, then edited: the signature catches it before anything in it is read.
    b.forge("edited.approval", &compact(&good), "alice");
    let edited = std::fs::read_to_string(b.path("edited.approval")).unwrap();
    let payload = STANDARD.encode(compact(&good));
    let altered = STANDARD.encode(with("checkpoint_id", json!("later")));
    std::fs::write(
        b.path("edited.approval"),
        edited.replace(&payload, &altered),
    )
    .unwrap();
    let out = b.run(&["edited.approval", "bob.approval"], &["later=carol"]);
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert!(
        text(&out.stderr).contains("does not verify with alice's key"),
        "{}",
        both(&out)
    );
    // The unedited openssl-made statement is accepted: the refusals above are about content.
    b.forge("good.approval", &compact(&good), "alice");
    let out = b.run(&["good.approval", "bob.approval"], &["later=carol"]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
}

#[test]
fn one_statement_counts_once_in_a_run() {
    let b = Bench::new("");
    ok(
        &b.approve("alice", "gate", "alice.approval", &[]),
        "approve (alice)",
    );
    std::fs::copy(b.path("alice.approval"), b.path("again.approval")).unwrap();
    let out = b.run(&["alice.approval", "again.approval"], &["later=carol"]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "a checkpoint short of one approval denies: {}",
        both(&out)
    );
    let journal = std::fs::read_to_string(b.runs()[0].join("journal.jsonl")).unwrap();
    assert!(
        journal.contains("has already approved: dual control needs distinct people"),
        "{journal}"
    );
}

#[test]
fn approve_refuses_an_unlisted_key_a_long_expiry_and_an_existing_output() {
    let b = Bench::new("");
    let out = b.approve("eve", "gate", "eve.approval", &[]);
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert!(
        text(&out.stderr).contains("is not an approver key of plan `signed approvals test`; its approvers with a key: alice "),
        "{}",
        both(&out)
    );
    assert!(!b.path("eve.approval").exists());
    let out = b.approve("alice", "gate", "a.approval", &["--expires", "90d"]);
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert!(
        text(&out.stderr).contains("more than 30 days"),
        "{}",
        both(&out)
    );
    let out = b.approve("alice", "gat", "a.approval", &[]);
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert!(
        text(&out.stderr).contains("did you mean `gate`?"),
        "{}",
        both(&out)
    );
    ok(&b.approve("alice", "gate", "a.approval", &[]), "approve");
    let first = std::fs::read(b.path("a.approval")).unwrap();
    let out = b.approve("alice", "gate", "a.approval", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    assert_eq!(
        std::fs::read(b.path("a.approval")).unwrap(),
        first,
        "never overwritten"
    );
}

#[test]
fn at_a_terminal_the_typed_name_of_an_approver_with_a_key_is_refused() {
    let b = Bench::new("");
    let mut command = Command::cargo_bin("mkplan").unwrap();
    command
        .arg("--state-dir")
        .arg(b.path("state"))
        .arg("--root")
        .arg(b.path("root"))
        .args(["run", "--operator", "tester"])
        .arg(b.path("plan.yaml"));
    let mut p = rexpect::session::spawn_command(command, Some(30_000)).unwrap();
    for _ in 0..3 {
        p.exp_string("your name: ").unwrap();
        p.send_line("alice").unwrap();
    }
    p.exp_eof().unwrap();
    let journal = std::fs::read_to_string(b.runs()[0].join("journal.jsonl")).unwrap();
    assert_eq!(
        journal
            .matches("alice`'s approval is an asserted name")
            .count(),
        3,
        "{journal}"
    );
    assert!(
        journal.contains("too many refused approver names"),
        "{journal}"
    );
    assert!(!journal.contains("checkpoint_approved"), "{journal}");
}

#[test]
fn a_run_whose_journal_does_not_verify_stops_signed_approvals_instead_of_hiding_a_replay() {
    let b = Bench::new("");
    for (who, file) in [("alice", "alice.approval"), ("bob", "bob.approval")] {
        ok(&b.approve(who, "gate", file, &[]), "approve");
    }
    ok(
        &b.approve("alice", "later", "alice-later.approval", &[]),
        "approve",
    );
    let first = b.run(
        &["alice.approval", "bob.approval", "alice-later.approval"],
        &[],
    );
    assert_eq!(first.status.code(), Some(0), "{}", both(&first));
    // Someone edits the first run's journal: the line that recorded a use no longer verifies.
    let journal = b.runs()[0].join("journal.jsonl");
    let edited = std::fs::read_to_string(&journal).unwrap().replacen(
        "\"approver\":\"alice\"",
        "\"approver\":\"alicf\"",
        1,
    );
    std::fs::write(&journal, edited).unwrap();

    let out = b.run(
        &["alice.approval", "bob.approval", "alice-later.approval"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    let said = text(&out.stderr);
    assert!(
        said.contains("cannot prove the signed approvals were not used before"),
        "{}",
        both(&out)
    );
    assert_eq!(b.runs().len(), 1, "nothing was started");
}
