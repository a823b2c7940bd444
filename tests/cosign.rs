//! Co-signing the run report through the real binary: approvers listed with public keys in
//! the plan (`change.approvers: [{name, key}]`, `report.cosign`), `mkplan report cosign`
//! with key files (P-256, Ed25519) and with a key on a SoftHSM2 token through a PKCS#11 URI,
//! `mkplan report verify` naming every signer and exiting 7 while required co-signatures
//! are missing, and the README's jq/base64/openssl recipe, run exactly as printed, checking
//! every signature — and both catching a change of any byte of any signature.
//!
//! openssl, jq, softhsm2-util and pkcs11-tool are installed by `scripts/test`; a missing one
//! is a failure, never a skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use assert_cmd::cargo::CommandCargoExt;
use softhsm::SoftHsmToken;
use tools::{both, ok, text, tool};

#[path = "support/softhsm.rs"]
mod softhsm;
#[path = "support/tools.rs"]
mod tools;

/// A scratch area: a host root with mkplan's signing key, approvers' keys beside it.
struct Bench {
    dir: tempfile::TempDir,
}

impl Bench {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("root/etc/mkplan")).unwrap();
        std::fs::create_dir_all(dir.path().join("keys")).unwrap();
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

    /// `mkplan keygen --out PREFIX`; returns the public key's path.
    fn keygen(&self, prefix: &Path, algorithm: &str) -> PathBuf {
        let out = self
            .mkplan()
            .args(["keygen", "--algorithm", algorithm, "--out"])
            .arg(prefix)
            .output()
            .unwrap();
        ok(&out, "mkplan keygen");
        prefix.with_extension("pub.pem")
    }

    /// A plan whose `change.approvers` lists `approvers` (`name: public key path`, or a name
    /// alone), signed with `/etc/mkplan/signing.pem`, with `cosign` under `report:`.
    fn plan(&self, approvers: &[(&str, Option<&Path>)], cosign: &str) -> PathBuf {
        let mut list = String::new();
        for (name, key) in approvers {
            match key {
                Some(key) => {
                    list.push_str(&format!("    - name: {name}\n      key: |\n"));
                    for line in std::fs::read_to_string(key).unwrap().lines() {
                        list.push_str(&format!("        {line}\n"));
                    }
                }
                None => list.push_str(&format!("    - {name}\n")),
            }
        }
        let plan = format!(
            "mkplan: 1\nname: co-signing test\n\
             change:\n  ticket: CHG9\n  summary: Co-signing test\n  asserted_approvals: warn\n  approvers:\n{list}\
             tokens:\n  ep11:\n    slot: 4\n    store: /var/lib/opencryptoki/ep11tok\n    apqns: [\"0a.0011\"]\n    pin: {{ env: MKPLAN_TEST_PIN }}\n    wkvp: {{ current: \"0x00112233445566778899aabbccddeeff\", new: \"0xffeeddccbbaa99887766554433221100\" }}\n\
             steps:\n  - name: Say hello\n    command: {{ argv: [\"echo hello\"], shell: true }}\n\
             \x20 - name: Approve the change\n    id: gate\n    checkpoint: {{ say: Proceed?, approvals: 2 }}\n\
             report:\n  sign: {{ key: /etc/mkplan/signing.pem }}\n{cosign}"
        );
        let path = self.path("plan.yaml");
        std::fs::write(&path, plan).unwrap();
        path
    }

    /// Runs `plan` to success and returns its run directory.
    fn run(&self, plan: &Path) -> PathBuf {
        let out = self
            .mkplan()
            .args(["run", "--non-interactive", "--operator", "tester"])
            .args(["--approve", "gate=alice", "--approve", "gate=bob"])
            .arg(plan)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", both(&out));
        let runs: Vec<_> = std::fs::read_dir(self.path("state/runs"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(runs.len(), 1, "one run");
        runs[0].clone()
    }

    fn verify(&self, dir: &Path, key: Option<&Path>) -> Output {
        let mut c = self.mkplan();
        c.args(["report", "verify"]).arg(dir);
        if let Some(key) = key {
            c.arg("--key").arg(key);
        }
        c.output().unwrap()
    }

    fn cosign(&self, dir: &Path, key: &str, env: &[(&str, &str)]) -> Output {
        let mut c = self.mkplan();
        c.args(["report", "cosign"])
            .arg(dir)
            .args(["--key", key, "--yes"]);
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    }
}

/// The README's recipe, exactly as printed between its `recipe:dsse` markers.
fn readme_recipe() -> String {
    readme_block("dsse")
}

/// The README's shell block between its `recipe:NAME` markers.
fn readme_block(name: &str) -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme
        .find(&format!("<!-- recipe:{name} -->"))
        .expect("the recipe's start marker");
    let end = readme
        .find(&format!("<!-- /recipe:{name} -->"))
        .expect("the recipe's end marker");
    let block = &readme[start..end];
    let body = block
        .split_once("```sh\n")
        .and_then(|(_, rest)| rest.rsplit_once("```"))
        .expect("a ```sh block")
        .0;
    body.to_owned()
}

/// Runs the README recipe with `shell` in `dir`, `trusted/` holding the keys to trust.
fn run_recipe(shell: &str, dir: &Path) -> Output {
    tool("jq");
    tool("openssl");
    tool(shell)
        .arg("-c")
        .arg(readme_recipe())
        .current_dir(dir)
        .output()
        .unwrap()
}

/// mkplan signer (P-256), alice (P-256), bob (Ed25519); two co-signatures required.
fn cosigned_report(b: &Bench) -> (PathBuf, PathBuf) {
    let signer = b.keygen(&b.path("root/etc/mkplan/signing"), "p256");
    let alice = b.keygen(&b.path("keys/alice"), "p256");
    let bob = b.keygen(&b.path("keys/bob"), "ed25519");
    let plan = b.plan(
        &[("alice", Some(&alice)), ("bob", Some(&bob))],
        "  cosign: { required: 2 }\n",
    );
    let dir = b.run(&plan);
    (dir, signer)
}

#[test]
fn a_cosigned_report_verifies_with_mkplan_and_the_readme_recipe_per_signature() {
    let b = Bench::new();
    let (dir, signer) = cosigned_report(&b);

    let out = b.verify(&dir, Some(&signer));
    assert_eq!(out.status.code(), Some(7), "{}", both(&out));
    let said = text(&out.stdout);
    assert!(said.contains("MISSING cosigners 0 of 2 required"), "{said}");
    assert!(
        said.contains("still needed: 2 more of alice, bob"),
        "{said}"
    );
    assert!(said.contains("INCOMPLETE:"), "{said}");

    let alice = b.path("keys/alice.pem");
    let out = b.cosign(&dir, alice.to_str().unwrap(), &[]);
    ok(&out, "report cosign (alice)");
    assert!(
        text(&out.stdout).contains("co-signed by alice"),
        "{}",
        both(&out)
    );
    let out = b.verify(&dir, Some(&signer));
    assert_eq!(out.status.code(), Some(7), "{}", both(&out));
    assert!(
        text(&out.stdout).contains("still needed: 1 more of bob"),
        "{}",
        both(&out)
    );

    // Co-signing twice with one key changes nothing.
    let envelope = std::fs::read(dir.join("report.dsse.json")).unwrap();
    let out = b.cosign(&dir, alice.to_str().unwrap(), &[]);
    ok(&out, "report cosign (alice again)");
    assert!(
        text(&out.stdout).contains("already co-signed by alice"),
        "{}",
        both(&out)
    );
    assert_eq!(
        std::fs::read(dir.join("report.dsse.json")).unwrap(),
        envelope
    );

    ok(
        &b.cosign(&dir, b.path("keys/bob.pem").to_str().unwrap(), &[]),
        "report cosign (bob)",
    );
    let out = b.verify(&dir, Some(&signer));
    ok(&out, "report verify of the co-signed report");
    let said = text(&out.stdout);
    for line in [
        "ok        sig[0]  mkplan's report signer (key_file /etc/mkplan/signing.pem), ECDSA P-256",
        "ok        sig[1]  alice: approver key",
        "ok        sig[2]  bob: approver key",
        "ok      cosigners 2 of 2 required co-signatures",
        "verified:",
    ] {
        assert!(said.contains(line), "`{line}` in:\n{said}");
    }
    assert!(
        said.contains(", Ed25519\n"),
        "bob's key is named Ed25519:\n{said}"
    );

    // The README recipe, with the keys an auditor trusts.
    let trusted = dir.join("trusted");
    std::fs::create_dir(&trusted).unwrap();
    for (key, name) in [
        (signer.clone(), "mkplan.pem"),
        (b.path("keys/alice.pub.pem"), "alice.pem"),
        (b.path("keys/bob.pub.pem"), "bob.pem"),
    ] {
        std::fs::copy(key, trusted.join(name)).unwrap();
    }
    for shell in ["bash", "dash"] {
        let out = run_recipe(shell, &dir);
        ok(&out, &format!("the README recipe ({shell})"));
        let said = text(&out.stdout);
        for i in 0..3 {
            assert!(
                said.contains(&format!("signature {i}: Verified OK")),
                "{shell}:\n{said}"
            );
        }
        assert!(
            said.contains("report.dsse.json: every signature verifies"),
            "{said}"
        );
        assert!(said.contains("report.json: OK"), "{said}");
    }

    // A changed byte of any signature (the first, the last, the padding and ~10 between;
    // each by two bit masks): mkplan names that signature (or the envelope), and the recipe
    // never says every signature verifies. Sampled, as a debug mkplan takes ~0.3 s a check.
    let original = String::from_utf8(envelope_after(&dir)).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&original).unwrap();
    let signatures = parsed["signatures"].as_array().unwrap().clone();
    assert_eq!(signatures.len(), 3);
    for (index, signature) in signatures.iter().enumerate() {
        let sig = signature["sig"].as_str().unwrap();
        let at = original.find(sig).unwrap();
        for position in sampled_positions(sig.len()) {
            for mask in [0x01u8, 0x20] {
                let mut bytes = original.clone().into_bytes();
                bytes[at + position] ^= mask;
                std::fs::write(dir.join("report.dsse.json"), &bytes).unwrap();
                let out = b.verify(&dir, Some(&signer));
                let said = text(&out.stdout);
                assert_eq!(
                    out.status.code(),
                    Some(1),
                    "signature {index}, byte {position} ^ {mask:#04x} was not caught:\n{said}"
                );
                let named = said.lines().any(|l| {
                    l.starts_with("FAILED")
                        && (l.contains(&format!("sig[{index}]")) || l.contains("envelope"))
                });
                assert!(
                    named,
                    "signature {index}, byte {position}: not named:\n{said}"
                );
                if mask != 0x01 {
                    continue;
                }
                let recipe = run_recipe("bash", &dir);
                let said = text(&recipe.stdout);
                let flipped = &bytes[at..at + sig.len()];
                if gnu_base64_decodes_differently(sig.as_bytes(), flipped) {
                    assert!(
                        !said.contains("every signature verifies")
                            && said.contains(&format!("signature {index}: DOES NOT VERIFY")),
                        "recipe, signature {index}, byte {position} ^ {mask:#04x}:\n{said}"
                    );
                } else {
                    // A byte that is not base64, or padding bits GNU base64 ignores: the
                    // recipe stops or passes, mkplan (above) refused it either way.
                    assert!(
                        !said.contains(&format!("signature {index}: DOES NOT VERIFY"))
                            || !said.contains("every signature verifies"),
                        "{said}"
                    );
                }
            }
        }
    }
    std::fs::write(dir.join("report.dsse.json"), original).unwrap();
    ok(
        &b.verify(&dir, Some(&signer)),
        "verify after restoring the envelope",
    );
}

/// The first and last positions, the last four (padding and its bits), ~10 spread between.
fn sampled_positions(len: usize) -> Vec<usize> {
    let mut positions: Vec<usize> = (0..10).map(|i| i * len / 10).collect();
    positions.extend(len.saturating_sub(4)..len);
    positions.sort_unstable();
    positions.dedup();
    positions
}

fn envelope_after(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("report.dsse.json")).unwrap()
}

/// Whether GNU `base64 -d` reads `flipped` as valid base64 with other bytes than `original`.
fn gnu_base64_decodes_differently(original: &[u8], flipped: &[u8]) -> bool {
    let decode = |input: &[u8]| {
        let mut child = tool("base64")
            .arg("-d")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    };
    let (a, b) = (decode(original), decode(flipped));
    b.status.success() && a.stdout != b.stdout
}

#[test]
fn cosign_refuses_an_unlisted_key_a_report_that_does_not_verify_and_no_terminal() {
    let b = Bench::new();
    let (dir, _) = cosigned_report(&b);
    let eve = b.keygen(&b.path("keys/eve"), "p256");
    let _ = eve;
    let envelope = envelope_after(&dir);

    let out = b.cosign(&dir, b.path("keys/eve.pem").to_str().unwrap(), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    let said = text(&out.stderr);
    assert!(
        said.contains("is not an approver key of this report's plan (alice "),
        "{said}"
    );
    assert!(said.contains("bob "), "{said}");

    // Without a terminal, --yes is needed.
    let out = b
        .mkplan()
        .args(["report", "cosign"])
        .arg(&dir)
        .args(["--key", b.path("keys/alice.pem").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert!(text(&out.stderr).contains("--yes"), "{}", both(&out));

    // A report that does not verify is not vouched for.
    let report = std::fs::read(dir.join("report.json")).unwrap();
    let mut edited = report.clone();
    let at = edited.len() / 2;
    edited[at] ^= 0x01;
    std::fs::write(dir.join("report.json"), &edited).unwrap();
    let out = b.cosign(&dir, b.path("keys/alice.pem").to_str().unwrap(), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    assert!(
        text(&out.stderr).contains("will not co-sign: the report"),
        "{}",
        both(&out)
    );
    assert_eq!(envelope_after(&dir), envelope, "nothing was added");
    std::fs::write(dir.join("report.json"), &report).unwrap();

    // A key file others can read is refused before anything is signed.
    let alice = b.path("keys/alice.pem");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&alice, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = b.cosign(&dir, alice.to_str().unwrap(), &[]);
    assert_eq!(out.status.code(), Some(3), "{}", both(&out));
    assert_eq!(envelope_after(&dir), envelope, "nothing was added");
}

#[test]
fn without_required_cosigners_verify_names_who_signed_and_succeeds() {
    let b = Bench::new();
    let signer = b.keygen(&b.path("root/etc/mkplan/signing"), "ed25519");
    let alice = b.keygen(&b.path("keys/alice"), "ed25519");
    let plan = b.plan(&[("alice", Some(&alice)), ("bob", None)], "");
    let dir = b.run(&plan);
    let out = b.verify(&dir, Some(&signer));
    ok(&out, "verify without co-signatures");
    assert!(
        text(&out.stdout).contains("the plan requires no co-signatures; 0 verified"),
        "{}",
        both(&out)
    );
    ok(
        &b.cosign(&dir, b.path("keys/alice.pem").to_str().unwrap(), &[]),
        "cosign",
    );
    let out = b.verify(&dir, Some(&signer));
    ok(&out, "verify with alice's co-signature");
    assert!(
        text(&out.stdout).contains("sig[1]  alice"),
        "{}",
        both(&out)
    );
    assert!(
        text(&out.stdout).contains("1 verified (alice)"),
        "{}",
        both(&out)
    );
}

#[test]
fn a_key_on_softhsm_cosigns_through_a_pkcs11_uri_and_the_pin_never_shows() {
    let b = Bench::new();
    let token = SoftHsmToken::new(b.dir.path(), "alice", "Al1ce-PIN-90210", 9);
    let (conf, module, pin) = (&token.conf, &token.module, token.pin.as_str());
    token.p256_key_pair(b.dir.path(), "alice-approver", "b2", "alice.der");
    let alice = b.path("keys/alice.pub.pem");
    let out = tool("openssl")
        .args(["pkey", "-pubin", "-inform", "DER", "-in"])
        .arg(b.path("alice.der"))
        .arg("-out")
        .arg(&alice)
        .output()
        .unwrap();
    ok(&out, "openssl pkey (DER to PEM)");

    let signer = b.keygen(&b.path("root/etc/mkplan/signing"), "p256");
    let bob = b.keygen(&b.path("keys/bob"), "p256");
    let plan = b.plan(
        &[("alice", Some(&alice)), ("bob", Some(&bob))],
        "  cosign: { required: 1, by: [alice] }\n",
    );
    let dir = b.run(&plan);
    let pin_file = b.path("keys/alice.pin");
    std::fs::write(&pin_file, pin).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pin_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let conf_text = conf.display().to_string();

    // A PIN on the command line is refused before anything is opened.
    let uri =
        format!("pkcs11:slot-id=9;object=alice-approver?module-path={module}&pin-value={pin}");
    let out = b.cosign(&dir, &uri, &[("SOFTHSM2_CONF", &conf_text)]);
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert!(
        !both(&out).contains(pin),
        "the refusal does not repeat the PIN"
    );

    let uri = format!(
        "pkcs11:slot-id=9;object=alice-approver?module-path={module}&pin-source=file:{}",
        pin_file.display()
    );
    let out = b.cosign(&dir, &uri, &[("SOFTHSM2_CONF", &conf_text)]);
    ok(&out, "report cosign with a PKCS#11 key");
    assert!(!both(&out).contains(pin), "the PIN never shows");
    let out = b.verify(&dir, Some(&signer));
    ok(&out, "verify with alice's token co-signature");
    assert!(
        text(&out.stdout).contains("sig[1]  alice"),
        "{}",
        both(&out)
    );
    assert!(!both(&out).contains(pin));
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let content = std::fs::read(&path).unwrap();
            assert!(
                !content.windows(pin.len()).any(|w| w == pin.as_bytes()),
                "the PIN is in {}",
                path.display()
            );
        }
    }
    // And the recipe checks the token's signature with the exported key.
    let trusted = dir.join("trusted");
    std::fs::create_dir(&trusted).unwrap();
    std::fs::copy(&signer, trusted.join("mkplan.pem")).unwrap();
    std::fs::copy(&alice, trusted.join("alice.pem")).unwrap();
    let out = run_recipe("bash", &dir);
    ok(&out, "the README recipe");
    assert!(
        text(&out.stdout).contains("signature 1: Verified OK"),
        "{}",
        both(&out)
    );
}

#[test]
fn at_a_terminal_cosign_shows_the_summary_and_asks_for_the_run_id() {
    let b = Bench::new();
    let (dir, signer) = cosigned_report(&b);
    let id = dir.file_name().unwrap().to_string_lossy().into_owned();
    let tail = &id[id.len() - 6..];
    let mut command = Command::cargo_bin("mkplan").unwrap();
    command
        .args(["report", "cosign"])
        .arg(&dir)
        .arg("--key")
        .arg(b.path("keys/alice.pem"));
    let mut p = rexpect::session::spawn_command(command, Some(30_000)).unwrap();
    p.exp_string("CHG9").unwrap();
    // rexpect reads bytes as Latin-1: the ellipsis before the id's tail is left out.
    p.exp_string("alice, type the last 6 characters of the run id (")
        .unwrap();
    p.exp_string(&format!("{tail}) to co-sign: ")).unwrap();
    p.send_line("000000").unwrap();
    p.exp_eof().unwrap();
    let envelope = std::fs::read(dir.join("report.dsse.json")).unwrap();
    assert!(
        text(&b.verify(&dir, Some(&signer)).stdout).contains("0 of 2 required"),
        "a wrong run id signs nothing"
    );
    let mut command = Command::cargo_bin("mkplan").unwrap();
    command
        .args(["report", "cosign"])
        .arg(&dir)
        .arg("--key")
        .arg(b.path("keys/alice.pem"));
    let mut p = rexpect::session::spawn_command(command, Some(30_000)).unwrap();
    p.exp_string("to co-sign: ").unwrap();
    p.send_line(tail).unwrap();
    p.exp_string("co-signed by alice").unwrap();
    p.exp_eof().unwrap();
    assert_ne!(
        std::fs::read(dir.join("report.dsse.json")).unwrap(),
        envelope
    );
}

/// The README's offline flow: the approvers sign the PAE with openssl on their own machine
/// (P-256 DER, Ed25519 raw; one handed over as base64), `report cosign --from` adds each only
/// once it verifies with a listed approver key, and the result verifies with mkplan and the
/// recipe; `report.html` is rendered again naming the co-signers, and nothing signed changes.
#[test]
fn signatures_made_offline_with_the_readme_recipe_are_added_with_from() {
    let b = Bench::new();
    let (dir, signer) = cosigned_report(&b);
    let signed_files = |dir: &Path| {
        ["report.json", "report.json.sig", "signer.pub.pem"]
            .map(|f| std::fs::read(dir.join(f)).unwrap())
    };
    let before = signed_files(&dir);
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(
        html.contains("Co-signed by: nothing") || html.contains("Co-signed by: nobody yet"),
        "the page says nobody co-signed yet"
    );

    // On the approvers' machine: the report, its envelope and their own keys.
    let away = b.path("approvers");
    std::fs::create_dir(&away).unwrap();
    for f in ["report.json", "report.dsse.json"] {
        std::fs::copy(dir.join(f), away.join(f)).unwrap();
    }
    for k in ["alice", "bob"] {
        std::fs::copy(
            b.path(&format!("keys/{k}.pem")),
            away.join(format!("{k}.pem")),
        )
        .unwrap();
    }
    tool("jq");
    let out = tool("bash")
        .args(["-euc", &readme_block("cosign-offline")])
        .current_dir(&away)
        .output()
        .unwrap();
    ok(&out, "the README's offline co-signing recipe");
    assert!(
        text(&out.stdout).contains("report.json: OK"),
        "{}",
        both(&out)
    );
    let pae = std::fs::read(away.join("report.pae")).unwrap();
    assert!(pae.starts_with(b"DSSEv1 28 application/vnd.in-toto+json "));

    let envelope = envelope_after(&dir);
    let from = |file: &Path| {
        b.mkplan()
            .args(["report", "cosign"])
            .arg(&dir)
            .arg("--from")
            .arg(file)
            .output()
            .unwrap()
    };
    // A signature over something else than the PAE, or by a key the report does not list,
    // is refused and nothing is written.
    let wrong = away.join("wrong.sig");
    let out = tool("openssl")
        .args([
            "dgst",
            "-sha256",
            "-sign",
            "alice.pem",
            "-out",
            "wrong.sig",
            "report.json",
        ])
        .current_dir(&away)
        .output()
        .unwrap();
    ok(&out, "openssl signs report.json");
    let out = from(&wrong);
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert!(
        text(&out.stderr).contains(
            "does not verify over this report's PAE with any approver key it lists (alice "
        ),
        "{}",
        both(&out)
    );
    let out = tool("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(b.path("root/etc/mkplan/signing.pem"))
        .args(["-out", "mkplan.sig", "report.pae"])
        .current_dir(&away)
        .output()
        .unwrap();
    ok(&out, "openssl signs the PAE with mkplan's key");
    let out = from(&away.join("mkplan.sig"));
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert_eq!(envelope_after(&dir), envelope, "nothing was added");

    let out = from(&away.join("alice.sig"));
    ok(&out, "report cosign --from alice.sig");
    assert!(
        text(&out.stdout).contains("co-signed by alice"),
        "{}",
        both(&out)
    );
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(
        html.contains("Co-signed by: <b>alice</b>"),
        "the page names alice"
    );
    assert!(
        html.contains("INCOMPLETE: 1 more needed"),
        "and that one is missing"
    );
    // Bob hands over base64 text.
    let raw = std::fs::read(away.join("bob.sig")).unwrap();
    assert_eq!(raw.len(), 64, "a raw Ed25519 signature");
    let b64 = away.join("bob.sig.b64");
    std::fs::write(&b64, format!("{}\n", base64_encode(&raw))).unwrap();
    let out = from(&b64);
    ok(&out, "report cosign --from bob.sig.b64");
    assert!(
        text(&out.stdout).contains("co-signed by bob"),
        "{}",
        both(&out)
    );
    assert!(
        text(&out.stdout).contains("2 of 2 required"),
        "{}",
        both(&out)
    );

    let out = b.verify(&dir, Some(&signer));
    ok(&out, "report verify after the offline co-signatures");
    let said = text(&out.stdout);
    assert!(
        said.contains("ok        sig[1]  alice: approver key"),
        "{said}"
    );
    assert!(
        said.contains("ok        sig[2]  bob: approver key"),
        "{said}"
    );
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(
        html.contains("<b>alice</b>") && html.contains("<b>bob</b>"),
        "both named"
    );
    assert!(
        html.contains("— <span class=\"ok\">complete</span>"),
        "complete"
    );
    assert_eq!(
        signed_files(&dir),
        before,
        "co-signing changes no signed file"
    );

    let trusted = dir.join("trusted");
    std::fs::create_dir(&trusted).unwrap();
    for (key, name) in [
        (signer, "mkplan.pem"),
        (b.path("keys/alice.pub.pem"), "alice.pem"),
        (b.path("keys/bob.pub.pem"), "bob.pem"),
    ] {
        std::fs::copy(key, trusted.join(name)).unwrap();
    }
    let out = run_recipe("bash", &dir);
    ok(&out, "the README recipe");
    assert!(
        text(&out.stdout).contains("report.dsse.json: every signature verifies"),
        "{}",
        both(&out)
    );
}

fn base64_encode(bytes: &[u8]) -> String {
    let mut child = tool("base64")
        .arg("-w0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
}

/// `report generate --force` over a co-signed report keeps the co-signatures when the
/// statement they sign is rebuilt byte for byte; when it would differ it refuses, writes
/// nothing and says how to proceed; with the envelope moved aside it rebuilds without them.
#[test]
fn generate_force_keeps_cosignatures_or_refuses_to_drop_them() {
    let b = Bench::new();
    let (dir, signer) = cosigned_report(&b);
    let id = dir.file_name().unwrap().to_str().unwrap().to_owned();
    ok(
        &b.cosign(&dir, b.path("keys/alice.pem").to_str().unwrap(), &[]),
        "report cosign (alice)",
    );
    let cosigned: serde_json::Value = serde_json::from_slice(&envelope_after(&dir)).unwrap();
    let alice_sig = cosigned["signatures"][1].clone();
    let generate = || {
        b.mkplan()
            .args(["report", "generate", &id, "--force"])
            .output()
            .unwrap()
    };

    let out = generate();
    ok(&out, "report generate --force of a co-signed report");
    let rebuilt: serde_json::Value = serde_json::from_slice(&envelope_after(&dir)).unwrap();
    assert_eq!(
        rebuilt["payload"], cosigned["payload"],
        "the same statement"
    );
    assert_eq!(rebuilt["signatures"].as_array().unwrap().len(), 2);
    assert_eq!(
        rebuilt["signatures"][1], alice_sig,
        "alice's co-signature kept"
    );
    let out = b.verify(&dir, Some(&signer));
    assert_eq!(out.status.code(), Some(7), "{}", both(&out));
    assert!(
        text(&out.stdout).contains("ok        sig[1]  alice"),
        "{}",
        both(&out)
    );
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(
        html.contains("Co-signed by: <b>alice</b>"),
        "the rebuilt page names alice"
    );

    // The co-signed statement is not the one a rebuild gives (as when another mkplan or
    // another host rebuilds it): nothing may be written.
    let mut statement: serde_json::Value =
        serde_json::from_slice(&base64_decode(rebuilt["payload"].as_str().unwrap())).unwrap();
    statement["predicate"]["outcome"] = "something else".into();
    let mut other = rebuilt.clone();
    other["payload"] = base64_encode(&serde_json::to_vec(&statement).unwrap()).into();
    std::fs::write(
        dir.join("report.dsse.json"),
        serde_json::to_vec(&other).unwrap(),
    )
    .unwrap();
    let files = [
        "report.json",
        "report.json.sig",
        "report.dsse.json",
        "report.html",
        "signer.pub.pem",
    ];
    let snapshot = || files.map(|f| std::fs::read(dir.join(f)).unwrap());
    let before = snapshot();
    let out = generate();
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    let said = text(&out.stderr);
    for part in [
        "carries 1 co-signature(s) (alice) over the report as it stands",
        "writing it would drop them, so nothing was written",
        "move `report.dsse.json` aside",
        "mkplan report cosign RUN --key KEY",
    ] {
        assert!(said.contains(part), "`{part}` in:\n{said}");
    }
    assert_eq!(snapshot(), before, "nothing was written");

    // An envelope that cannot be read may hold co-signatures: refused as well.
    std::fs::write(dir.join("report.dsse.json"), b"{not json").unwrap();
    let out = generate();
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    assert!(
        text(&out.stderr).contains("to keep the co-signatures it may carry"),
        "{}",
        both(&out)
    );

    // Moved aside, as the message says: rebuilt without co-signatures, and verify says so.
    std::fs::rename(dir.join("report.dsse.json"), b.path("old.dsse.json")).unwrap();
    ok(
        &generate(),
        "report generate --force after moving the envelope aside",
    );
    let out = b.verify(&dir, Some(&signer));
    assert_eq!(out.status.code(), Some(7), "{}", both(&out));
    assert!(
        text(&out.stdout).contains("0 of 2 required"),
        "{}",
        both(&out)
    );
}

fn base64_decode(text: &str) -> Vec<u8> {
    let mut child = tool("base64")
        .arg("-d")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap().stdout
}

/// Every byte of every signature of a co-signed report, changed: each flip of each byte of
/// the signature itself (re-encoded as valid base64, so it reaches the signature check),
/// and each character of its base64 text, is refused by mkplan's verification naming that
/// signature or the envelope; each flip of the signature bytes fails the README recipe's
/// `dsse_verify` naming that signature. (The CLI's exit code and message for a sample are
/// in `a_cosigned_report_verifies_with_mkplan_and_the_readme_recipe_per_signature`.)
#[test]
fn any_changed_byte_of_any_signature_is_caught_by_mkplan_and_the_recipe() {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use mkplan_report::verify::verify;

    let b = Bench::new();
    let (dir, signer) = cosigned_report(&b);
    for key in ["keys/alice.pem", "keys/bob.pem"] {
        ok(&b.cosign(&dir, b.path(key).to_str().unwrap(), &[]), key);
    }
    assert!(verify(&dir, Some(&signer)).ok());
    let original = String::from_utf8(envelope_after(&dir)).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&original).unwrap();
    let signatures: Vec<String> = parsed["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["sig"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(signatures.len(), 3);

    let flips = dir.join("flips");
    std::fs::create_dir(&flips).unwrap();
    let caught = |index: usize, what: &str, envelope: &str| {
        std::fs::write(dir.join("report.dsse.json"), envelope).unwrap();
        let checked = verify(&dir, Some(&signer));
        let named = checked.checks.iter().any(|c| {
            !c.ok && (c.name.trim() == format!("sig[{index}]") || c.name.contains("envelope"))
        });
        assert!(
            !checked.authentic() && named,
            "signature {index}, {what}: not caught or not named:\n{}",
            checked.render()
        );
    };
    let mut cases = 0;
    for (index, sig) in signatures.iter().enumerate() {
        // The signature's bytes: every byte, by its lowest and its highest bit.
        let raw = STANDARD.decode(sig).unwrap();
        for position in 0..raw.len() {
            for bit in [0, 7] {
                let mut changed = raw.clone();
                changed[position] ^= 1 << bit;
                let envelope = original.replacen(sig.as_str(), &STANDARD.encode(&changed), 1);
                caught(index, &format!("byte {position} bit {bit}"), &envelope);
                cases += 1;
                if bit == 0 {
                    std::fs::write(flips.join(format!("{index}-{position}.json")), &envelope)
                        .unwrap();
                }
            }
        }
        // The base64 text: every character, by its lowest bit (another base64 character,
        // or one outside the alphabet).
        for position in 0..sig.len() {
            for mask in [0x01u8] {
                let mut text = sig.clone().into_bytes();
                text[position] ^= mask;
                let Ok(text) = String::from_utf8(text) else {
                    continue;
                };
                if STANDARD.decode(&text).ok().as_deref() == Some(raw.as_slice()) {
                    continue; // the same signature (strict base64 never allows this; not counted)
                }
                let envelope = original.replacen(sig.as_str(), &json_string_body(&text), 1);
                caught(index, &format!("char {position} ^ {mask:#04x}"), &envelope);
                cases += 1;
            }
        }
    }
    assert!(cases > 3 * 64 * 3, "{cases} cases");
    std::fs::write(dir.join("report.dsse.json"), &original).unwrap();
    assert!(
        verify(&dir, Some(&signer)).ok(),
        "the original verifies again"
    );

    // The recipe's `dsse_verify`, on every envelope with one signature byte changed. Each
    // runs with only the changed signature's key trusted (the others then stop at "not in
    // trusted" without openssl, which keeps this to a minute): the line for the changed
    // signature must say it does not verify. With every key, the original verifies.
    for (index, key) in [
        signer.clone(),
        b.path("keys/alice.pub.pem"),
        b.path("keys/bob.pub.pem"),
    ]
    .iter()
    .enumerate()
    {
        let trusted = dir.join(format!("trusted-{index}"));
        std::fs::create_dir(&trusted).unwrap();
        std::fs::copy(key, trusted.join("key.pem")).unwrap();
        std::fs::copy(key, dir.join(format!("key-{index}.pem"))).unwrap();
    }
    let all = dir.join("trusted");
    std::fs::create_dir(&all).unwrap();
    for index in 0..3 {
        std::fs::copy(
            dir.join(format!("key-{index}.pem")),
            all.join(format!("{index}.pem")),
        )
        .unwrap();
    }
    let recipe = readme_recipe();
    let function = recipe
        .split_once("\n# In the report's directory:")
        .expect("the recipe defines dsse_verify first")
        .0;
    let script = format!(
        "{function}\n\
         dsse_verify report.dsse.json trusted >/dev/null || echo 'ORIGINAL FAILS'\n\
         for f in flips/*.json; do\n\
           n=${{f#flips/}}; index=${{n%%-*}}\n\
           out=$(dsse_verify \"$f\" trusted-$index) || true\n\
           printf '%s\\n' \"$out\" | grep -q \"^signature $index: DOES NOT VERIFY\" || echo \"NOT CAUGHT $f: $out\"\n\
         done\n\
         echo checked $(ls flips | wc -l)"
    );
    let out = tool("bash")
        .arg("-c")
        .arg(script)
        .current_dir(&dir)
        .output()
        .unwrap();
    let said = text(&out.stdout);
    let flipped = std::fs::read_dir(&flips).unwrap().count();
    assert!(
        said.contains(&format!("checked {flipped}"))
            && !said.contains("NOT CAUGHT")
            && !said.contains("ORIGINAL FAILS"),
        "{}",
        both(&out)
    );
}

/// `text` as it appears between the quotes of a JSON string.
fn json_string_body(text: &str) -> String {
    let quoted = serde_json::to_string(text).unwrap();
    quoted[1..quoted.len() - 1].to_owned()
}

/// A report co-signed in one place is co-signed in both: the run directory and the evidence
/// package under `report.dir` verify with the same signers, whichever was given, and the
/// package's files keep the plan's `report.mode`.
#[test]
fn cosigning_either_copy_updates_the_other() {
    use std::os::unix::fs::PermissionsExt;
    let b = Bench::new();
    b.keygen(&b.path("root/etc/mkplan/signing"), "p256");
    let alice = b.keygen(&b.path("keys/alice"), "p256");
    let bob = b.keygen(&b.path("keys/bob"), "ed25519");
    let plan = b.plan(
        &[("alice", Some(&alice)), ("bob", Some(&bob))],
        "  dir: /srv/reports\n  mode: \"0640\"\n  cosign: { required: 2 }\n",
    );
    let run_dir = b.run(&plan);
    let id = run_dir.file_name().unwrap().to_str().unwrap().to_owned();
    let package = b.path("root/srv/reports").join(&id);
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&package.join("report.dsse.json")), 0o640);

    // alice co-signs the run by its id: the package carries her signature too.
    let out = b.cosign(
        Path::new(&id),
        b.path("keys/alice.pem").to_str().unwrap(),
        &[],
    );
    ok(&out, "cosign alice by run id");
    assert!(
        text(&out.stdout).contains(&package.display().to_string()),
        "{}",
        both(&out)
    );
    for dir in [&run_dir, &package] {
        let out = b.verify(dir, None);
        assert_eq!(out.status.code(), Some(7), "one of two: {}", both(&out));
        assert!(text(&out.stdout).contains("alice"), "{}", both(&out));
    }
    // bob co-signs the package: the run directory carries his signature too.
    let out = b.cosign(&package, b.path("keys/bob.pem").to_str().unwrap(), &[]);
    ok(&out, "cosign bob in the package");
    for dir in [&run_dir, &package] {
        let out = b.verify(dir, None);
        assert_eq!(out.status.code(), Some(0), "both: {}", both(&out));
        let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
        assert!(
            html.contains("alice") && html.contains("bob"),
            "{}",
            dir.display()
        );
    }
    assert_eq!(
        std::fs::read(run_dir.join("report.dsse.json")).unwrap(),
        std::fs::read(package.join("report.dsse.json")).unwrap()
    );
    assert_eq!(mode(&package.join("report.dsse.json")), 0o640);
    assert_eq!(mode(&package.join("report.html")), 0o640);
    assert_eq!(mode(&run_dir.join("report.dsse.json")), 0o600);
}
