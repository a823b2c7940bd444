//! `mkplan init` and `mkplan init --check` through the binaries, on simulated hosts laid out
//! by `mkplan-sim` (and, where a real file format matters, with the fixtures of
//! `tests/fixtures/init/` in place of the simulator's files). Each host is shut down by a
//! guard, even when a test fails.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const MKPLAN: &str = env!("CARGO_BIN_EXE_mkplan");
const SIM: &str = env!("CARGO_BIN_EXE_mkplan-sim");
/// The placeholder `init` writes for a new WKVP nobody has loaded yet.
const NEW_PLACEHOLDER: &str = "\"FILL IN: the new WK's WKVP, 32 hex digits\"";
const NEW_WKVP: &str = "0x9b7d4e0a11f35c8822d0b6e4a7f1c3d9";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn both(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// A simulated host laid out by `mkplan-sim init` for a plan of `plans/`.
struct Host {
    dir: tempfile::TempDir,
    root: PathBuf,
}

impl Host {
    fn new(plan: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap().join("host");
        let out = Command::new(SIM)
            .args(["init", "--keys", "12", "--root"])
            .arg(&root)
            .arg("--plan")
            .arg(repo(&format!("plans/{plan}")))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", both(&out));
        Host { dir, root }
    }

    fn sim(&self, args: &[&str]) {
        let out = Command::new(SIM)
            .arg(args[0])
            .arg("--root")
            .arg(&self.root)
            .args(&args[1..])
            .output()
            .unwrap();
        assert!(out.status.success(), "mkplan-sim {args:?}: {}", both(&out));
    }

    fn mkplan(&self, args: &[&str]) -> Output {
        Command::new(MKPLAN)
            .arg("--root")
            .arg(&self.root)
            .arg("--state-dir")
            .arg(self.dir.path().join("state"))
            .args(args)
            .output()
            .unwrap()
    }

    /// `mkplan init ARGS -o <tmp>/NAME`: the exit status and the plan, if one was written.
    fn init(&self, name: &str, args: &[&str]) -> (Output, Option<String>) {
        let path = self.plan_path(name);
        let mut all = vec!["init"];
        all.extend_from_slice(args);
        all.extend(["-o", path.to_str().unwrap()]);
        let out = self.mkplan(&all);
        (out, fs::read_to_string(&path).ok())
    }

    /// The plan `name` with the new WKVP filled in where `init` left the placeholder,
    /// rehearsed with `keys` keys; it must succeed.
    fn fill_in_and_rehearse(&self, name: &str, keys: usize) -> Output {
        let path = self.plan_path(name);
        let raw = fs::read_to_string(&path).unwrap();
        fs::write(
            &path,
            raw.replace(NEW_PLACEHOLDER, &format!("\"{NEW_WKVP}\"")),
        )
        .unwrap();
        let keys = keys.to_string();
        let rehearsed = mkplan(
            &["rehearse", "--keys", &keys, path.to_str().unwrap()],
            &self.dir.path().join("state"),
        );
        assert_eq!(rehearsed.status.code(), Some(0), "{}", both(&rehearsed));
        rehearsed
    }

    fn plan_path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn file(&self, host_path: &str) -> PathBuf {
        self.root.join(host_path.trim_start_matches('/'))
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = Command::new(SIM)
            .args(["shutdown", "--root"])
            .arg(&self.root)
            .output();
    }
}

/// `mkplan ARGS` with no host.
fn mkplan(args: &[&str], state: &Path) -> Output {
    Command::new(MKPLAN)
        .arg("--state-dir")
        .arg(state)
        .args(args)
        .output()
        .unwrap()
}

/// The plan with its comments unwrapped: every line trimmed of indentation and `#`, joined
/// by single spaces, so a test can look for a sentence wherever the writer wrapped it.
fn flat(plan: &str) -> String {
    plan.lines()
        .map(|l| l.trim().trim_start_matches('#').trim())
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn written(out: &Output, plan: Option<String>) -> String {
    assert_eq!(out.status.code(), Some(0), "{}", both(out));
    flat(&plan.expect("init wrote no plan"))
}

#[test]
fn init_then_rehearse_needs_only_the_new_wkvp() {
    let host = Host::new("ep11-offline.yaml");
    let (out, plan) = host.init("p.yaml", &["--ticket", "CHG7"]);
    let plan = written(&out, plan);
    assert!(plan.starts_with("yaml-language-server: $schema="), "{plan}");
    for read in [
        "/etc/opencryptoki/opencryptoki.conf",
        "/etc/opencryptoki/ep11tok.conf",
        "/sys/bus/ap/devices/0a.0011/",
        "/proc/*/maps, /proc/*/cgroup",
        "Seed step 4",
    ] {
        assert!(plan.contains(read), "`{read}` missing:\n{plan}");
    }
    assert!(plan.contains(r#"apqns: ["0a.0011", "0b.0011"]"#), "{plan}");
    assert!(
        plan.contains(r#"systemd: ["#)
            && plan.contains("myapp.service")
            && plan.contains("httpd.service"),
        "{plan}"
    );
    assert!(
        plan.contains("current: \"0x6f1e1b26c2c5a2b4f1ea3fa7c1c9d3e5\""),
        "{plan}"
    );

    // As written, only the placeholder stops validation.
    let path = host.plan_path("p.yaml");
    let state = host.dir.path().join("state");
    let invalid = mkplan(&["validate", path.to_str().unwrap()], &state);
    assert_eq!(invalid.status.code(), Some(2), "{}", both(&invalid));
    let said = text(&invalid.stdout) + &text(&invalid.stderr);
    assert!(said.contains("/tokens/ep11tok/wkvp/new"), "{said}");
    assert!(said.contains("1 error"), "{said}");

    let rehearsed = host.fill_in_and_rehearse("p.yaml", 20);
    assert!(
        text(&rehearsed.stderr).contains("20 keys usable, 0 unusable"),
        "{}",
        both(&rehearsed)
    );
}

#[test]
fn a_committed_new_wk_is_read_and_the_plan_validates_as_written() {
    let host = Host::new("ep11-offline.yaml");
    host.sim(&["tke", "load", "--wkvp", NEW_WKVP]);
    host.sim(&["tke", "commit"]);
    let (out, plan) = host.init("p.yaml", &["--approver", "alice", "--approver", "bob"]);
    let plan = written(&out, plan);
    assert!(plan.contains(&format!("new: \"{NEW_WKVP}\"")), "{plan}");
    assert!(plan.contains("WK NEW on every APQN: committed"), "{plan}");
    assert!(text(&out.stderr).contains("it validates"), "{}", both(&out));
    let path = host.plan_path("p.yaml");
    let state = host.dir.path().join("state");
    let valid = mkplan(&["validate", path.to_str().unwrap()], &state);
    assert_eq!(valid.status.code(), Some(0), "{}", both(&valid));
    let rehearsed = mkplan(
        &["rehearse", "--keys", "10", path.to_str().unwrap()],
        &state,
    );
    assert_eq!(rehearsed.status.code(), Some(0), "{}", both(&rehearsed));
}

#[test]
fn apqns_that_disagree_on_the_current_wk_are_refused_naming_each() {
    let host = Host::new("ep11-offline.yaml");
    host.sim(&["tke", "load", "--apqn", "0b.0011", "--wkvp", NEW_WKVP]);
    host.sim(&["tke", "commit", "--apqn", "0b.0011"]);
    host.sim(&["tke", "activate", "--apqn", "0b.0011"]);
    let (out, plan) = host.init("p.yaml", &[]);
    assert_eq!(out.status.code(), Some(3), "{}", both(&out));
    assert!(plan.is_none());
    let err = text(&out.stderr);
    assert!(err.contains("disagree on the current WK"), "{err}");
    assert!(
        err.contains("0a.0011 CUR valid 0x6f1e1b26")
            && err.contains(&format!("0b.0011 CUR valid {NEW_WKVP}")),
        "{err}"
    );
}

#[test]
fn an_offline_queue_is_refused() {
    let host = Host::new("ep11-offline.yaml");
    host.sim(&["queue", "0a.0011", "offline"]);
    let (out, plan) = host.init("p.yaml", &[]);
    assert_eq!(out.status.code(), Some(3), "{}", both(&out));
    assert!(plan.is_none());
    let err = text(&out.stderr);
    assert!(err.contains("0a.0011") && err.contains("offline"), "{err}");
}

#[test]
fn new_wks_that_differ_between_apqns_are_a_placeholder_that_says_why() {
    let host = Host::new("ep11-offline.yaml");
    host.sim(&["tke", "load", "--apqn", "0a.0011", "--wkvp", NEW_WKVP]);
    host.sim(&["tke", "commit", "--apqn", "0a.0011"]);
    let (out, plan) = host.init("p.yaml", &[]);
    let plan = written(&out, plan);
    assert!(plan.contains(NEW_PLACEHOLDER), "{plan}");
    assert!(
        plan.contains("the APQNs disagree on the NEW register"),
        "{plan}"
    );
    assert!(
        plan.contains(&format!("0a.0011 NEW committed {NEW_WKVP}"))
            && plan.contains("0b.0011 NEW empty"),
        "{plan}"
    );
}

#[test]
fn a_stray_process_is_listed_to_stop_by_hand_and_is_drift_for_an_older_plan() {
    let host = Host::new("ep11-offline.yaml");
    host.sim(&["tke", "load", "--wkvp", NEW_WKVP]);
    host.sim(&["tke", "commit"]);
    let (out, before) = host.init("before.yaml", &["--ticket", "CHG1"]);
    written(&out, before);
    let clean = host.mkplan(&[
        "init",
        "--check",
        host.plan_path("before.yaml").to_str().unwrap(),
    ]);
    assert_eq!(clean.status.code(), Some(0), "{}", both(&clean));

    host.sim(&["fault", "stray"]);
    let (out, plan) = host.init("after.yaml", &[]);
    let plan = written(&out, plan);
    assert!(
        plan.contains("Outside any unit — stop these by hand or add a command service"),
        "{plan}"
    );
    assert!(
        plan.contains("unit-process") && plan.contains("--stray"),
        "{plan}"
    );

    let drift = host.mkplan(&[
        "init",
        "--check",
        host.plan_path("before.yaml").to_str().unwrap(),
    ]);
    assert_eq!(drift.status.code(), Some(3), "{}", both(&drift));
    assert!(
        text(&drift.stdout).contains("maps the token outside any unit"),
        "{}",
        both(&drift)
    );
}

#[test]
fn check_reports_an_apqn_added_since_and_a_service_the_plan_does_not_stop() {
    let host = Host::new("ep11-offline.yaml");
    host.sim(&["tke", "load", "--wkvp", NEW_WKVP]);
    host.sim(&["tke", "commit"]);
    let (out, plan) = host.init("p.yaml", &[]);
    written(&out, plan.clone());
    let plan = plan.unwrap();
    // The plan forgets a service; the token gets a third APQN in its config.
    let path = host.plan_path("p.yaml");
    let edited = plan
        .replace("\"httpd.service\", ", "")
        .replace(", \"httpd.service\"", "");
    assert_ne!(edited, plan);
    fs::write(&path, edited).unwrap();
    let conf = host.file("/etc/opencryptoki/ep11tok.conf");
    let text_conf = fs::read_to_string(&conf)
        .unwrap()
        .replace("END", "12 17\nEND");
    fs::write(&conf, text_conf).unwrap();

    let drift = host.mkplan(&["init", "--check", path.to_str().unwrap()]);
    assert_eq!(drift.status.code(), Some(3), "{}", both(&drift));
    let said = text(&drift.stdout);
    assert!(
        said.contains("APQN 0c.0011 (adapter 12, domain 17) was added to the token since"),
        "{said}"
    );
    assert!(
        said.contains("unit `httpd.service`") && said.contains("in no service group of the plan"),
        "{said}"
    );
}

#[test]
fn two_tokens_need_a_choice_and_both_can_be_planned() {
    let host = Host::new("ep11-two-tokens.yaml");
    let (out, plan) = host.init("p.yaml", &[]);
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert!(plan.is_none());
    let err = text(&out.stderr);
    assert!(
        err.contains("2 EP11 tokens")
            && err.contains("slot 5 (ep11pay")
            && err.contains("slot 6 (ep11sign"),
        "{err}"
    );
    assert!(err.contains("--token NAME or --slot N"), "{err}");

    let (out, plan) = host.init("one.yaml", &["--token", "ep11sign"]);
    let plan = written(&out, plan);
    assert!(
        plan.contains(" ep11sign: ") && !plan.contains(" ep11pay: "),
        "{plan}"
    );
    assert!(
        plan.contains("slot 5: libpkcs11_ep11.so — EP11, not chosen"),
        "{plan}"
    );

    let (out, plan) = host.init("both.yaml", &["--slot", "5", "--slot", "6"]);
    let plan = written(&out, plan);
    assert!(
        plan.contains(" ep11pay: ") && plan.contains(" ep11sign: "),
        "{plan}"
    );
    assert!(
        plan.contains(r#"apqns: ["0a.0012", "0b.0012"]"#)
            && plan.contains(r#"apqns: ["0a.0013", "0b.0013"]"#),
        "{plan}"
    );
    assert!(
        plan.contains("id: tke-activate-ep11pay") && plan.contains("id: tke-activate-ep11sign"),
        "{plan}"
    );
    // The payment service is a command service: no systemd unit runs it.
    assert!(
        plan.contains("systemd: [\"codesign-api.service\"]"),
        "{plan}"
    );
    assert!(plan.contains("Outside any unit"), "{plan}");

    host.fill_in_and_rehearse("both.yaml", 10);

    // Concurrent, on a release that has the tool: one operation per token (each covers
    // every APQN of its token, as the tool requires), each parked until its activation.
    let status = host.file("/var/lib/dpkg/status");
    fs::create_dir_all(status.parent().unwrap()).unwrap();
    fs::write(
        &status,
        "Package: opencryptoki\nStatus: install ok installed\nVersion: 3.23.0+dfsg-1\n\n",
    )
    .unwrap();
    let args = ["--slot", "5", "--slot", "6", "--procedure", "concurrent"];
    let (out, plan) = host.init("both-concurrent.yaml", &args);
    let plan = written(&out, plan);
    for said in [
        "id: reencipher-ep11pay",
        "reencipher: { tokens: [ep11sign] }",
        "id: tke-activate-ep11sign",
        "finalize: { of: reencipher-ep11pay }",
        "cancel: { of: reencipher-ep11sign }",
    ] {
        assert!(plan.contains(said), "`{said}` missing:\n{plan}");
    }
    host.fill_in_and_rehearse("both-concurrent.yaml", 10);

    let unknown = host.mkplan(&["init", "--token", "nosuch"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", both(&unknown));
    assert!(
        text(&unknown.stderr).contains("--token nosuch: no such token"),
        "{}",
        both(&unknown)
    );
}

#[test]
fn real_format_config_files_are_read_and_a_cca_token_is_named_not_guessed() {
    let host = Host::new("ep11-two-tokens.yaml");
    let fixture = |name: &str| repo(&format!("tests/fixtures/init/{name}"));
    fs::copy(
        fixture("opencryptoki.conf.3.27"),
        host.file("/etc/opencryptoki/opencryptoki.conf"),
    )
    .unwrap();
    fs::copy(
        fixture("ep11pay.conf"),
        host.file("/etc/opencryptoki/ep11pay.conf"),
    )
    .unwrap();
    fs::copy(
        fixture("ep11sign.conf"),
        host.file("/etc/opencryptoki/ep11sign.conf"),
    )
    .unwrap();

    let (out, plan) = host.init("p.yaml", &["--slot", "5", "--token", "ep11sign"]);
    let plan = written(&out, plan);
    assert!(
        plan.contains(
            "APQN_ALLOWLIST 0a.0012 0b.0012; EXPECTED_WKVP 0x2c41f0d9a8e37b5516c2e90f4d7a1b38"
        ),
        "{plan}"
    );
    assert!(
        plan.contains(
            "APQN_ALLOWLIST 0a.0013 0b.0013; EXPECTED_WKVP 0x71d3be08c4a9f25e6b0d1c7a93e4f852"
        ),
        "{plan}"
    );
    assert!(
        plan.contains(
            "slot 7: libpkcs11_cca.so — CCA token found; `mkplan init` does not write CCA plans yet"
        ),
        "{plan}"
    );
    assert!(
        plan.contains("slot 3: libpkcs11_sw.so — no HSM master key"),
        "{plan}"
    );

    let cca = host.mkplan(&["init", "--slot", "7"]);
    assert_eq!(cca.status.code(), Some(2), "{}", both(&cca));
    assert!(
        text(&cca.stderr).contains("is a CCA token; `mkplan init` does not write CCA plans yet"),
        "{}",
        both(&cca)
    );

    // A config the token would not start with is refused with its line.
    fs::write(
        host.file("/etc/opencryptoki/ep11pay.conf"),
        "APQN_ALLOWLIST\n010 18\nEND\n",
    )
    .unwrap();
    let bad = host.mkplan(&["init", "--slot", "5"]);
    assert_eq!(bad.status.code(), Some(3), "{}", both(&bad));
    assert!(
        text(&bad.stderr).contains("/etc/opencryptoki/ep11pay.conf:2"),
        "{}",
        both(&bad)
    );
}

#[test]
fn the_backup_directory_is_writable_has_room_and_prefers_another_file_system() {
    let host = Host::new("ep11-offline.yaml");
    // The first conventional place is read-only: it is passed over, saying why.
    let backups = host.file("/var/backups");
    fs::create_dir_all(&backups).unwrap();
    fs::set_permissions(&backups, fs::Permissions::from_mode(0o555)).unwrap();
    let (out, plan) = host.init("p.yaml", &[]);
    let plan = written(&out, plan);
    assert!(plan.contains("not chosen: `/var/backups/mkplan` is not writable: `/var/backups` is read-only (mode 0555)"), "{plan}");
    assert!(plan.contains("local: { dir: \"/backup/mkplan\""), "{plan}");
    assert!(
        plan.contains("on the same file system as the token store"),
        "{plan}"
    );

    // Named by the operator, a read-only directory is an error.
    let (out, plan) = host.init("q.yaml", &["--backup-dir", "/var/backups/mkplan"]);
    assert_eq!(out.status.code(), Some(3), "{}", both(&out));
    assert!(plan.is_none());
    assert!(
        text(&out.stderr).contains("--backup-dir `/var/backups/mkplan` cannot take the backup"),
        "{}",
        both(&out)
    );

    // Another file system (tmpfs), reached through a symlink: no warning.
    let other = tempfile::tempdir_in("/dev/shm").unwrap();
    std::os::unix::fs::symlink(other.path(), host.file("/mnt")).unwrap();
    let same = fs::metadata(other.path())
        .map(|m| std::os::unix::fs::MetadataExt::dev(&m))
        .ok()
        == fs::metadata(&host.root)
            .map(|m| std::os::unix::fs::MetadataExt::dev(&m))
            .ok();
    let (out, plan) = host.init("r.yaml", &["--backup-dir", "/mnt/mkplan"]);
    let plan = written(&out, plan);
    assert!(plan.contains("local: { dir: \"/mnt/mkplan\""), "{plan}");
    assert_eq!(plan.contains("same file system"), same, "{plan}");
}

#[test]
fn the_release_suggests_the_procedure_and_init_writes_the_concurrent_plan_it_allows() {
    let host = Host::new("ep11-offline.yaml");
    let status = host.file("/var/lib/dpkg/status");
    fs::create_dir_all(status.parent().unwrap()).unwrap();
    fs::write(
        &status,
        "Package: opencryptoki\nStatus: install ok installed\nVersion: 3.23.0+dfsg-1\n\n",
    )
    .unwrap();
    // The simulated host has the tool (a stand-in linked to mkplan-sim): never write
    // through that link.
    assert!(host.file("/usr/sbin/pkcshsm_mk_change").exists());

    let (out, plan) = host.init("p.yaml", &[]);
    let plan = written(&out, plan);
    assert!(plan.contains("The release suggests the concurrent procedure: openCryptoki 3.23.0 (read from /var/lib/dpkg/status) has `/usr/sbin/pkcshsm_mk_change`"), "{plan}");
    assert!(plan.contains("This plan is the offline one; `mkplan init --procedure concurrent` writes the concurrent one"), "{plan}");

    // The concurrent plan: the man page's steps, no stop, no backup, cancel as rescue; with
    // the new WK committed it validates as written and rehearses to every key usable.
    host.sim(&["tke", "load", "--wkvp", NEW_WKVP]);
    host.sim(&["tke", "commit"]);
    let (out, plan) = host.init("c.yaml", &["--procedure", "concurrent", "--ticket", "CHG8"]);
    let plan = written(&out, plan);
    for said in [
        "Procedure: concurrent",
        "The release suggests it too",
        "reencipher: { tokens: [ep11tok] }",
        "park: true",
        "assert_wk: { token: ep11tok, current: new, new: empty }",
        "set_expected_wkvp: { token: ep11tok }",
        "finalize: { of: reencipher }",
        "cancel: { of: reencipher }",
    ] {
        assert!(plan.contains(said), "`{said}` missing:\n{plan}");
    }
    for absent in [
        "stop: apps",
        "backup: {",
        "migrate: {",
        "restore: {",
        "backups:",
    ] {
        assert!(
            !plan.contains(absent),
            "`{absent}` in a concurrent plan:\n{plan}"
        );
    }
    assert!(text(&out.stderr).contains("it validates"), "{}", both(&out));
    let path = host.plan_path("c.yaml");
    let state = host.dir.path().join("state");
    let rehearsed = mkplan(
        &["rehearse", "--keys", "10", path.to_str().unwrap()],
        &state,
    );
    assert_eq!(rehearsed.status.code(), Some(0), "{}", both(&rehearsed));
    assert!(
        text(&rehearsed.stderr).contains("10 keys usable, 0 unusable"),
        "{}",
        both(&rehearsed)
    );

    // 3.20 has no concurrent procedure, whatever is on disk.
    fs::write(
        &status,
        "Package: opencryptoki\nStatus: install ok installed\nVersion: 3.20.0-1\n\n",
    )
    .unwrap();
    let (out, plan) = host.init("q.yaml", &[]);
    let plan = written(&out, plan);
    assert!(plan.contains("is older than 3.21.0"), "{plan}");
    let (out, plan) = host.init("q2.yaml", &["--procedure", "concurrent"]);
    assert_eq!(out.status.code(), Some(3), "{}", both(&out));
    assert!(plan.is_none());
    assert!(
        text(&out.stderr).contains("the concurrent procedure needs `pkcshsm_mk_change` of openCryptoki 3.21.0 or newer with event support, and here `/usr/sbin/pkcshsm_mk_change` is installed, but openCryptoki 3.20.0"),
        "{}",
        both(&out)
    );

    // Before 3.12.1 pkcsep11_migrate cannot work: no plan.
    fs::write(
        &status,
        "Package: opencryptoki\nStatus: install ok installed\nVersion: 3.11.0-1\n\n",
    )
    .unwrap();
    let (out, plan) = host.init("r.yaml", &[]);
    assert_eq!(out.status.code(), Some(3), "{}", both(&out));
    assert!(plan.is_none());
    assert!(
        text(&out.stderr).contains("broken before 3.12.1"),
        "{}",
        both(&out)
    );
}

#[test]
fn an_existing_plan_is_never_overwritten() {
    let host = Host::new("ep11-offline.yaml");
    let path = host.plan_path("p.yaml");
    fs::write(&path, "mine\n").unwrap();
    let out = host.mkplan(&["init", "-o", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert_eq!(fs::read_to_string(&path).unwrap(), "mine\n");
}

#[test]
fn apqn_any_plans_every_ep11_apqn_sysfs_shows() {
    let host = Host::new("ep11-offline.yaml");
    let conf = host.file("/etc/opencryptoki/ep11tok.conf");
    fs::write(&conf, "# every online EP11 APQN\nAPQN_ANY\n").unwrap();
    let (out, plan) = host.init("p.yaml", &[]);
    let plan = written(&out, plan);
    assert!(
        plan.contains("APQN_ANY (every online EP11 APQN); no EXPECTED_WKVP"),
        "{plan}"
    );
    assert!(plan.contains(r#"apqns: ["0a.0011", "0b.0011"]"#), "{plan}");
    assert!(
        plan.contains("it sets none now, so this step changes nothing"),
        "{plan}"
    );

    // An offline EP11 queue is not skipped: the token could use it once it is back.
    host.sim(&["queue", "0b.0011", "offline"]);
    let (out, plan) = host.init("q.yaml", &[]);
    assert_eq!(out.status.code(), Some(3), "{}", both(&out));
    assert!(plan.is_none());
    assert!(
        text(&out.stderr).contains("0b.0011") && text(&out.stderr).contains("offline"),
        "{}",
        both(&out)
    );
}

#[test]
fn a_token_that_shares_an_apqn_with_another_token_is_refused() {
    let host = Host::new("ep11-two-tokens.yaml");
    // The signing token now also lists the payments token's domain on card 0a.
    fs::write(
        host.file("/etc/opencryptoki/ep11sign.conf"),
        "APQN_ALLOWLIST\n10 18\n10 19\n11 19\nEND\n",
    )
    .unwrap();
    let out = host.mkplan(&["init", "--slot", "5"]);
    assert_eq!(out.status.code(), Some(3), "{}", both(&out));
    let err = text(&out.stderr);
    assert!(
        err.contains("tokens `ep11pay` (slot 5) and `ep11sign` (slot 6) both use APQN 0a.0012"),
        "{err}"
    );
}

#[test]
fn a_token_whose_store_is_missing_is_refused() {
    let host = Host::new("ep11-offline.yaml");
    let conf = host.file("/etc/opencryptoki/opencryptoki.conf");
    let renamed = fs::read_to_string(&conf)
        .unwrap()
        .replace("tokname = ep11tok", "tokname = ep11other");
    fs::write(&conf, renamed).unwrap();
    let out = host.mkplan(&["init"]);
    assert_eq!(out.status.code(), Some(3), "{}", both(&out));
    assert!(
        text(&out.stderr).contains("store `/var/lib/opencryptoki/ep11other` does not exist"),
        "{}",
        both(&out)
    );
}
