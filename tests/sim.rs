//! The simulated EP11 host (`mkplan_sim` and the `mkplan-sim` executable) against its
//! contracts: the sysfs the host adapters read, the token store and config, the units that
//! `/proc` scanning finds, and the `pkcsep11_migrate` stand-in's exact released-version
//! behaviour (opencryptoki-ep11.md 1.1–1.5). Every root is shut down by a guard, even when a
//! test fails.

use std::fs;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use mkplan_engine::ports::keys::{KeyError, KeyProber};
use mkplan_engine::ports::root::HostRoot;
use mkplan_engine::record::probe::Usability;
use mkplan_engine::record::wk::{CurState, NewState};
use mkplan_engine::secret::Pin;
use mkplan_host::procscan;
use mkplan_host::zcrypt::read_apqn;
use mkplan_plan::Plan;
use mkplan_plan::ep11conf::{self, ApqnMode};
use mkplan_plan::model::{Apqn, ServiceControl, Wkvp};
use mkplan_sim as sim;
use mkplan_sim::{Fault, SimProber, TkeAction};

const SIM_EXE: &str = env!("CARGO_BIN_EXE_mkplan-sim");
const PIN: &str = "S3cr3t-PIN-4711";
const KEYS: usize = 30;

fn plan(name: &str) -> Plan {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("plans")
        .join(name);
    mkplan_plan::load_file(&path)
        .plan
        .unwrap_or_else(|| panic!("{name} is not valid"))
}

/// A simulated host for a test; shut down when dropped, whatever happened.
struct SimHost {
    root: PathBuf,
    plan: Plan,
    _dir: tempfile::TempDir,
}

impl SimHost {
    fn new(plan_name: &str, keys: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap().join("host");
        let host = SimHost {
            root,
            plan: plan(plan_name),
            _dir: dir,
        };
        sim::init(&host.root, &host.plan, keys, PIN, Path::new(SIM_EXE)).unwrap();
        host
    }

    fn offline(keys: usize) -> Self {
        Self::new("ep11-offline.yaml", keys)
    }

    fn command(&self, relative: &str) -> Command {
        Command::new(self.root.join(relative))
    }

    /// Runs the `pkcsep11_migrate` stand-in with `stdin` on a pipe.
    fn migrate(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = self
            .command("usr/sbin/pkcsep11_migrate")
            .args(args)
            .env_remove("PKCS11_USER_PIN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The tool may exit before it reads (no daemon, unknown slot): a broken pipe is fine.
        let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
        child.wait_with_output().unwrap()
    }

    fn migrate_with_pin(&self, adapter: u8) -> Output {
        let adapter = adapter.to_string();
        self.migrate(
            &["-slot", "4", "-adapter", &adapter, "-domain", "17"],
            &format!("{PIN}\n"),
        )
    }

    fn systemctl(&self, args: &[&str]) -> Output {
        self.command("usr/bin/systemctl")
            .args(args)
            .output()
            .unwrap()
    }

    fn verify(&self) -> sim::VerifyReport {
        sim::verify(&self.root).unwrap()
    }

    fn load_and_commit_all(&self) {
        sim::tke(&self.root, TkeAction::Load, None, None).unwrap();
        sim::tke(&self.root, TkeAction::Commit, None, None).unwrap();
    }

    fn token(&self) -> &mkplan_plan::model::Token {
        self.plan.tokens.values().next().unwrap()
    }
}

impl Drop for SimHost {
    fn drop(&mut self) {
        if let Err(e) = sim::shutdown(&self.root) {
            eprintln!("shutting down {}: {e}", self.root.display());
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn lines(bytes: &[u8]) -> Vec<String> {
    text(bytes).lines().map(str::to_owned).collect()
}

fn count(lines: &[String], prefix: &str) -> usize {
    lines.iter().filter(|l| l.starts_with(prefix)).count()
}

/// Live processes whose command line names `root`.
fn processes_of(root: &Path) -> Vec<i32> {
    let needle = root.display().to_string();
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let zombie = stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            !zombie && text(&cmdline).contains(&needle)
        })
        .collect()
}

fn parent_of(pid: i32) -> i32 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let (_, rest) = stat.rsplit_once(')').unwrap();
    rest.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn init_lays_out_sysfs_store_and_config_for_the_plan() {
    let host = SimHost::offline(KEYS);
    let host_root = HostRoot::new(&host.root);
    let token = host.token();
    for apqn in &token.apqns {
        let status = read_apqn(&host_root, *apqn).unwrap();
        assert_eq!(status.card_type, "CEX8P");
        assert!(status.ep11 && status.card_online && status.queue_online && !status.queue_chkstop);
        assert_eq!(status.cur.state, CurState::Valid);
        assert_eq!(&status.cur.vp.unwrap()[..16], token.wkvp_current.bytes());
        assert_eq!(status.new.state, NewState::Empty);
        assert!(status.mkvps_raw.starts_with(&format!(
            "WK CUR: valid 0x{}",
            &token.wkvp_current.to_string()[2..]
        )));
        assert!(
            status.mkvps_raw.ends_with("\nWK NEW: empty -\n"),
            "{}",
            status.mkvps_raw
        );
    }
    let card = host.root.join("sys/bus/ap/devices/card0a");
    assert_eq!(
        fs::read_to_string(card.join("ap_functions")).unwrap(),
        "0x06800000\n"
    );
    assert!(fs::read_link(host.root.join("sys/bus/ap/devices/0a.0011")).is_ok());

    let config = fs::read_to_string(host_root.path(token.config.as_ref().unwrap())).unwrap();
    let parsed = ep11conf::parse(&config).unwrap();
    assert_eq!(parsed.apqns, ApqnMode::Allowlist(token.apqns.clone()));
    assert_eq!(parsed.expected_wkvp, Some(token.wkvp_current));

    let store = host_root.path(&token.store);
    for file in ["NVTOK.DAT", "MK_SO", "MK_USER", "TOK_OBJ/OBJ.IDX"] {
        assert!(store.join(file).is_file(), "{file}");
    }
    let index = fs::read_to_string(store.join("TOK_OBJ/OBJ.IDX")).unwrap();
    assert_eq!(index.lines().count(), KEYS + 2);
    for name in index.lines() {
        assert!(name.len() == 8 && name.starts_with("OB"), "{name}");
        assert!(
            name[2..]
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        );
        let bytes = fs::read(store.join("TOK_OBJ").join(name)).unwrap();
        assert!(
            (1024..=3072).contains(&bytes.len()),
            "{name}: {}",
            bytes.len()
        );
    }
    for entry in fs::read_dir(&store)
        .unwrap()
        .chain(fs::read_dir(store.join("TOK_OBJ")).unwrap())
    {
        let path = entry.unwrap().path();
        if path.is_file() {
            assert!(
                !text(&fs::read(&path).unwrap()).contains(PIN),
                "the PIN is in {}",
                path.display()
            );
        }
    }
    assert!(mkplan_engine::ports::root::token_shm_path(&host_root, &token.store).is_file());
    assert!(mkplan_host::tools::find(&host_root, "pkcsep11_migrate").is_some());

    let report = host.verify();
    assert_eq!(
        (
            report.total.usable,
            report.total.unusable,
            report.total.skipped
        ),
        (KEYS, 0, 2)
    );
    assert!(report.all_usable());
    let again = sim::init(&host.root, &host.plan, 1, PIN, Path::new(SIM_EXE));
    assert!(matches!(again, Err(sim::SimError::AlreadyInitialised(_))));
}

#[test]
fn every_register_state_the_simulated_tke_makes_reads_back_through_the_hosts_sysfs_reader() {
    // The simulator renders `mkvps` in the kernel's exact EP11 lines (its own unit test); here
    // mkplan's own reader takes each state it can be in, as a real host's would be taken.
    let host = SimHost::offline(2);
    let host_root = HostRoot::new(&host.root);
    let apqns = host.token().apqns.clone();
    let states = |expected: (CurState, NewState)| {
        for apqn in &apqns {
            let status = read_apqn(&host_root, *apqn).unwrap();
            assert_eq!((status.cur.state, status.new.state), expected, "{apqn}");
        }
    };
    states((CurState::Valid, NewState::Empty));
    sim::tke(&host.root, TkeAction::Load, None, None).unwrap();
    states((CurState::Valid, NewState::Uncommitted));
    sim::tke(&host.root, TkeAction::Commit, None, None).unwrap();
    states((CurState::Valid, NewState::Committed));
    sim::tke(&host.root, TkeAction::Activate, None, None).unwrap();
    states((CurState::Valid, NewState::Empty));
    sim::set_queue_online(&host.root, apqns[0], false).unwrap();
    let offline = read_apqn(&host_root, apqns[0]).unwrap();
    assert_eq!(
        (offline.cur.state, offline.new.state),
        (CurState::Unknown, NewState::Unknown)
    );
}

#[test]
fn units_are_detached_processes_that_proc_scanning_finds() {
    let host = SimHost::offline(5);
    let is_active = host.systemctl(&["is-active", "myapp.service"]);
    assert_eq!(
        (is_active.status.code(), text(&is_active.stdout)),
        (Some(0), "active\n".to_owned())
    );

    let shm =
        mkplan_engine::ports::root::token_shm_path(&HostRoot::new(&host.root), &host.token().store);
    let own = procscan::own_family(Path::new("/proc"));
    let scan = procscan::scan(Path::new("/proc"), &shm, &own);
    let me = i32::try_from(std::process::id()).unwrap();
    for unit in ["myapp.service", "httpd.service"] {
        let pid = sim::unit_pid(&host.root, unit).unwrap();
        assert!(
            scan.users.iter().any(|u| u.pid == pid),
            "{unit} ({pid}) not found: {scan:?}"
        );
        assert_ne!(parent_of(pid), me, "{unit} must not be a child of the test");
        assert!(!own(pid), "{unit} must not descend from the test");
    }

    let stop = host.systemctl(&["stop", "myapp.service"]);
    assert_eq!(stop.status.code(), Some(0), "{}", text(&stop.stderr));
    let is_active = host.systemctl(&["is-active", "--quiet", "myapp.service"]);
    assert_eq!(
        (is_active.status.code(), is_active.stdout.len()),
        (Some(3), 0)
    );
    assert_eq!(
        text(&host.systemctl(&["is-active", "myapp"]).stdout),
        "inactive\n"
    );
    assert!(!sim::unit_running(&host.root, "myapp.service"));
    assert_eq!(host.systemctl(&["start", "myapp"]).status.code(), Some(0));
    assert!(sim::unit_running(&host.root, "myapp.service"));
    let unknown = host.systemctl(&["start", "nosuch.service"]);
    assert_eq!(unknown.status.code(), Some(5));

    sim::set_fault(&host.root, Fault::UnitWontStop("httpd.service".into())).unwrap();
    let stuck = host.systemctl(&["stop", "httpd.service"]);
    assert_eq!(stuck.status.code(), Some(1));
    assert!(text(&stuck.stderr).contains("failed because a timeout was exceeded"));
    assert!(sim::unit_running(&host.root, "httpd.service"));

    sim::set_fault(&host.root, Fault::Stray).unwrap();
    let units: Vec<i32> = ["myapp.service", "httpd.service"]
        .iter()
        .map(|u| sim::unit_pid(&host.root, u).unwrap())
        .collect();
    let scan = procscan::scan(Path::new("/proc"), &shm, &own);
    let strays: Vec<_> = scan
        .users
        .iter()
        .filter(|u| !units.contains(&u.pid))
        .collect();
    assert_eq!(strays.len(), 1, "{scan:?}");
    assert_ne!(parent_of(strays[0].pid), me);

    assert!(!processes_of(&host.root).is_empty());
    sim::shutdown(&host.root).unwrap();
    assert_eq!(processes_of(&host.root), Vec::<i32>::new());
    sim::shutdown(&host.root).unwrap();
}

#[test]
fn migrate_reencrypts_every_key_and_activation_makes_them_usable() {
    let host = SimHost::offline(KEYS);
    host.load_and_commit_all();
    let output = host.migrate_with_pin(10);
    let err = lines(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{err:?}");
    assert_eq!(
        text(&output.stdout),
        "Using slot #4...\n\nEnter the USER PIN: \n"
    );
    assert_eq!(
        err[0],
        "Card ID 0x0a, domain ID 17 has committed pending(next) WK"
    );
    assert_eq!(count(&err, "going to reencrpyt key "), KEYS);
    assert_eq!(count(&err, "reencryption success obj: "), KEYS);
    assert_eq!(err.last().unwrap(), "all keys successfully reencrypted");
    // The certificate is third in the store, so the third key is printed with index 3.
    assert_eq!(
        err[4], "reencryption success obj: 1 'app-ec-0002:",
        "the closing quote is missing"
    );
    assert!(
        err[5].starts_with("going to reencrpyt key 3 with blob len "),
        "{}",
        err[5]
    );

    let before = host.verify();
    assert_eq!(
        (before.total.usable, before.total.unusable),
        (0, KEYS),
        "blobs are under the NEW WK"
    );
    sim::tke(&host.root, TkeAction::Activate, None, None).unwrap();
    let after = host.verify();
    let wkvp_new = host.token().wkvp_new.to_string();
    assert_eq!(
        (
            after.total.usable,
            after.total.unusable,
            after.total.skipped
        ),
        (KEYS, 0, 2)
    );
    assert_eq!(
        after.tokens["ep11"].current_wkvp.as_deref(),
        Some(wkvp_new.as_str())
    );

    // openCryptoki 3.19+ does not start the token while EXPECTED_WKVP names the old WK.
    let prober = SimProber::new(&host.root);
    let module = host.root.join("usr/lib/opencryptoki/libopencryptoki.so");
    let pin = Pin::new(PIN.to_owned());
    let refused = prober.probe(&module, 4, &pin).unwrap_err();
    assert!(matches!(refused, KeyError::Token(_)), "{refused:?}");
    let refused = refused.to_string();
    assert!(refused.contains("CKR_TOKEN_NOT_PRESENT"), "{refused}");
    let config = host.root.join("etc/opencryptoki/ep11tok.conf");
    let rewritten = ep11conf::rewrite_expected_wkvp(
        &fs::read_to_string(&config).unwrap(),
        &host.token().wkvp_new,
    )
    .unwrap()
    .unwrap();
    fs::write(&config, rewritten).unwrap();
    let inventory = prober.probe(&module, 4, &pin).unwrap();
    assert_eq!(inventory.keys().count(), KEYS);
    assert!(
        inventory
            .keys()
            .all(|k| k.usable == Usability::Usable && k.blob_len.is_some())
    );
    assert_eq!(inventory.objects.len(), KEYS + 2);
    assert!(matches!(
        inventory
            .objects
            .iter()
            .find(|o| o.class == "CKO_CERTIFICATE")
            .unwrap()
            .usable,
        Usability::NotExercised(_)
    ));
    assert_eq!(inventory.counts["CKO_SECRET_KEY/CKK_AES"], KEYS / 5);
}

#[test]
fn a_failure_at_key_5_stops_the_run_with_the_store_partly_migrated() {
    let host = SimHost::offline(KEYS);
    host.load_and_commit_all();
    sim::set_fault(&host.root, Fault::FailAtKey(5)).unwrap();
    let output = host.migrate_with_pin(11);
    let err = lines(&output.stderr);
    assert_eq!(output.status.code(), Some(255), "{err:?}");
    assert_eq!(count(&err, "going to reencrpyt key "), 5);
    assert_eq!(count(&err, "reencryption success obj: "), 4);
    assert_eq!(err.last().unwrap(), "reencryption failed: 30");
    assert!(!err.iter().any(|l| l == "all keys successfully reencrypted"));

    let report = host.verify();
    let token = &report.tokens["ep11"];
    assert_eq!((report.total.usable, report.total.unusable), (KEYS - 4, 4));
    assert_eq!(
        token.blobs_by_wkvp[&host.token().wkvp_current.to_string()],
        KEYS - 4
    );
    assert_eq!(token.blobs_by_wkvp[&host.token().wkvp_new.to_string()], 4);

    // A second run stops at the first key that is no longer under the current WK.
    sim::clear_faults(&host.root).unwrap();
    let again = host.migrate_with_pin(11);
    let err = lines(&again.stderr);
    assert_eq!(again.status.code(), Some(255));
    assert_eq!(err.last().unwrap(), "reencryption failed: 80010001");
}

#[test]
fn wrong_pin_missing_daemon_unknown_slot_and_pin_eof() {
    let host = SimHost::offline(5);
    host.load_and_commit_all();
    let wrong = host.migrate(
        &["-slot", "4", "-adapter", "10", "-domain", "17"],
        "not-the-pin\n",
    );
    assert_eq!(wrong.status.code(), Some(160));
    assert_eq!(
        text(&wrong.stderr),
        "C_Login() rc = 0xa0 [CKR_PIN_INCORRECT]\n"
    );
    let pin = Pin::new("not-the-pin".to_owned());
    let refused = SimProber::new(&host.root)
        .probe(Path::new("/x.so"), 4, &pin)
        .unwrap_err();
    assert!(matches!(refused, KeyError::PinRefused(_)), "{refused:?}");
    let refused = refused.to_string();
    assert!(
        refused.contains("CKR_PIN_INCORRECT")
            && refused.contains("counter was incremented (now 2)"),
        "{refused}"
    );

    let slot = host.migrate(
        &["-slot", "7", "-adapter", "10", "-domain", "17"],
        &format!("{PIN}\n"),
    );
    assert_eq!(slot.status.code(), Some(3));
    assert_eq!(
        text(&slot.stderr),
        "C_OpenSession() rc = 0x03 [CKR_SLOT_ID_INVALID]\n"
    );
    assert_eq!(text(&slot.stdout), "Using slot #7...\n\n");

    let eof = host.migrate(&["-slot", "4", "-adapter", "10", "-domain", "17"], "");
    assert_eq!(eof.status.code(), Some(0), "the ≤ 3.27 quirk: exit 0");
    assert_eq!(
        text(&eof.stdout),
        "Using slot #4...\n\nEnter the USER PIN: \n"
    );
    assert_eq!(
        text(&eof.stderr),
        "Could not get USER PIN.\nget_user_pin() failed\n"
    );

    let stop = host.systemctl(&["stop", "pkcsslotd"]);
    assert_eq!(stop.status.code(), Some(0));
    assert!(!sim::slotd_running(&host.root));
    let no_daemon = host.migrate_with_pin(10);
    assert_eq!(no_daemon.status.code(), Some(144));
    assert_eq!(no_daemon.stderr.len(), 0, "nothing on stderr");
    assert_eq!(text(&no_daemon.stdout), "Using slot #4...\n\n");
    sim::set_slotd_running(&host.root, true).unwrap();
    let pid: i32 = fs::read_to_string(host.root.join("run/opencryptoki/pkcsslotd.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        fs::read_to_string(format!("/proc/{pid}/comm")).unwrap(),
        "pkcsslotd\n"
    );
    assert_eq!(host.migrate_with_pin(10).status.code(), Some(0));
}

#[test]
fn arguments_follow_the_released_parser() {
    let host = SimHost::offline(5);
    host.load_and_commit_all();
    // `08` is octal that stops at `8`: adapter 0, so the check runs on APQN 00.0011.
    let octal = host.migrate(
        &["-slot", "4", "-adapter", "08", "-domain", "17"],
        &format!("{PIN}\n"),
    );
    assert_eq!(octal.status.code(), Some(1));
    assert_eq!(
        text(&octal.stderr),
        "m_get_xcp_info rc 0x30, valid apapter/domain 0x00/17?.\n"
    );
    // `0x0b` and `021` are 11 and 17.
    let hex = host.migrate(
        &["-slot", "4", "-adapter", "0x0b", "-domain", "021"],
        &format!("{PIN}\n"),
    );
    assert_eq!(hex.status.code(), Some(0), "{}", text(&hex.stderr));

    let none = host.migrate(&[], "");
    assert_eq!(none.status.code(), Some(255));
    assert_eq!(
        text(&none.stdout),
        "No Arguments given. For help use the '--help' or '-h' option.\n"
    );
    assert_eq!(none.stderr.len(), 0);
    let unknown = host.migrate(&["--slot", "4"], "");
    assert_eq!(unknown.status.code(), Some(255));
    assert!(
        text(&unknown.stdout).starts_with("Invalid argument passed as option: --slot\nusage:  ")
    );
    let help = host.migrate(&["-h"], "");
    assert_eq!(help.status.code(), Some(0));
    assert!(
        text(&help.stdout)
            .ends_with("pkcsep11_migrate [-slot <num>] [-adapter <num>] [-domain <num>] [-h]\n\n")
    );
    let crash = host.migrate(&["-slot", "4", "-domain"], "");
    assert_eq!(
        crash.status.signal(),
        Some(11),
        "SIGSEGV, as the NULL dereference"
    );
}

#[test]
fn only_the_given_apqn_is_checked_for_a_committed_wk() {
    let host = SimHost::offline(5);
    sim::tke(&host.root, TkeAction::Load, None, None).unwrap();
    let first = Apqn::new(10, 17);
    sim::tke(&host.root, TkeAction::Commit, Some(first), None).unwrap();
    let other = host.migrate_with_pin(11);
    assert_eq!(other.status.code(), Some(1));
    assert_eq!(
        text(&other.stderr),
        "Card ID 0x0b, domain ID 17 has no committed pending WK\n"
    );
    let status = read_apqn(&HostRoot::new(&host.root), Apqn::new(11, 17)).unwrap();
    assert_eq!(status.new.state, NewState::Uncommitted);

    // The TKE refuses to activate an uncommitted WK, and then changes nothing at all.
    let refused = sim::tke(&host.root, TkeAction::Activate, None, None);
    assert!(matches!(refused, Err(sim::SimError::Tke(_))));
    let status = read_apqn(&HostRoot::new(&host.root), first).unwrap();
    assert_eq!(status.new.state, NewState::Committed);
    let other_wkvp = Wkvp::parse(&"ab".repeat(16)).unwrap().0;
    sim::tke(&host.root, TkeAction::Load, Some(first), Some(other_wkvp)).unwrap();
    let status = read_apqn(&HostRoot::new(&host.root), first).unwrap();
    assert_eq!(
        (status.new.state, &status.new.vp.unwrap()[..16]),
        (NewState::Uncommitted, &other_wkvp.bytes()[..])
    );
}

#[test]
fn the_exit_zero_faults_and_the_pin_sources_of_older_versions() {
    let host = SimHost::offline(5);
    host.load_and_commit_all();
    let args = ["-slot", "4", "-adapter", "10", "-domain", "17"];
    let with_pin = format!("{PIN}\n");

    sim::set_fault(&host.root, Fault::LibLoadFailure).unwrap();
    let lib = host.migrate(&args, &with_pin);
    assert_eq!(lib.status.code(), Some(0));
    assert_eq!(text(&lib.stdout), "Using slot #4...\n\n");
    assert_eq!(
        text(&lib.stderr),
        "ERROR do_GetFunctionList() Failed, rx = 0x0\n"
    );
    sim::clear_faults(&host.root).unwrap();

    sim::set_fault(&host.root, Fault::PinReadExitZero).unwrap();
    let read = host.migrate(&args, &with_pin);
    assert_eq!(read.status.code(), Some(0));
    assert_eq!(
        text(&read.stderr),
        "Could not get USER PIN.\nget_user_pin() failed\n"
    );
    sim::clear_faults(&host.root).unwrap();

    sim::set_fault(&host.root, Fault::RequireTty).unwrap();
    let piped = host.migrate(&args, &with_pin);
    assert_eq!(piped.status.code(), Some(0));
    assert_eq!(
        text(&piped.stdout),
        "Using slot #4...\n\nEnter the USER PIN: "
    );
    assert_eq!(
        text(&piped.stderr),
        "Could not get USER PIN.\nget_user_pin() failed\n"
    );
    assert_eq!(host.verify().total.usable, 5, "nothing was re-enciphered");
    sim::clear_faults(&host.root).unwrap();

    sim::set_fault(&host.root, Fault::EnvPin).unwrap();
    let missing = host.migrate(&args, &with_pin);
    assert_eq!(missing.status.code(), Some(0));
    assert_eq!(
        text(&missing.stdout),
        "Using slot #4...\n\n",
        "no prompt before 3.9"
    );
    assert_eq!(
        text(&missing.stderr),
        "The environment variable PKCS11_USER_PIN must be set.\nget_user_pin() failed\n"
    );
    let from_env = host
        .command("usr/sbin/pkcsep11_migrate")
        .args(args)
        .env("PKCS11_USER_PIN", PIN)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        from_env.status.code(),
        Some(0),
        "{}",
        text(&from_env.stderr)
    );
    assert!(text(&from_env.stderr).ends_with("all keys successfully reencrypted\n"));

    // Every invocation is logged with its argv and the names (not values) of its environment.
    let log =
        fs::read_to_string(host.root.join("var/log/mkplan-sim/pkcsep11_migrate.log")).unwrap();
    let entries: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(entries.len(), 5);
    assert!(!log.contains(PIN), "the PIN reached the log");
    assert_eq!(entries[0]["argv"][1], "-slot");
    let last_env = entries[4]["env_keys"].as_array().unwrap();
    assert!(last_env.iter().any(|k| k == "PKCS11_USER_PIN"));
    assert!(
        !entries[0]["env_keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k == "PKCS11_USER_PIN")
    );
}

#[test]
fn the_tty_requiring_version_works_on_a_pty() {
    let host = SimHost::offline(5);
    host.load_and_commit_all();
    sim::set_fault(&host.root, Fault::RequireTty).unwrap();
    let mut command = host.command("usr/sbin/pkcsep11_migrate");
    command.args(["-slot", "4", "-adapter", "10", "-domain", "17"]);
    let mut session = rexpect::session::spawn_with_options(
        command,
        rexpect::reader::Options::new().timeout_ms(Some(10_000)),
    )
    .unwrap();
    session.exp_string("Enter the USER PIN: ").unwrap();
    // The tool turns echo off with TCSAFLUSH after printing the prompt, which discards input
    // that arrived before: openCryptoki's own expect scripts wait a moment too.
    std::thread::sleep(Duration::from_millis(200));
    session.send_line(PIN).unwrap();
    let rest = session
        .exp_string("all keys successfully reencrypted")
        .unwrap();
    assert!(!rest.contains(PIN), "echo was off: {rest}");
    assert_eq!(
        count(&lines(rest.as_bytes()), "reencryption success obj: "),
        5
    );
}

#[test]
fn command_services_and_two_tokens() {
    let host = SimHost::new("ep11-two-tokens.yaml", 3);
    let report = host.verify();
    assert_eq!(report.tokens.len(), 2);
    assert_eq!((report.total.usable, report.total.skipped), (6, 4));
    // The commands exactly as the plan model holds them, found the way mkplan finds them.
    let service = host
        .plan
        .services
        .values()
        .find(|s| s.id.as_str() == "payments")
        .unwrap();
    let ServiceControl::Commands {
        stop,
        start,
        is_active,
    } = &service.control
    else {
        panic!()
    };
    let host_root = HostRoot::new(&host.root);
    let run = |argv: &[String]| {
        let program = mkplan_host::tools::resolve(&host_root, &argv[0]).unwrap();
        Command::new(program)
            .args(&argv[1..])
            .output()
            .unwrap()
            .status
            .code()
    };
    assert_eq!(run(is_active), Some(0));
    assert!(sim::unit_running(&host.root, "payments"));
    assert_eq!(run(stop), Some(0));
    assert_eq!(run(is_active), Some(3));
    assert_eq!(run(start), Some(0));
    assert!(sim::unit_running(&host.root, "payments"));
    // Any other use of the service's program (a self-test) answers whether it runs.
    assert_eq!(run(&[stop[0].clone(), "selftest".to_owned()]), Some(0));
    assert_eq!(run(stop), Some(0));
    assert_eq!(run(&[stop[0].clone(), "selftest".to_owned()]), Some(3));
    assert_eq!(run(start), Some(0));
    assert!(sim::unit_running(&host.root, "codesign-api.service"));
    // Each token's APQNs belong to it: loading without --wkvp takes each token's new WKVP.
    sim::tke(&host.root, TkeAction::Load, None, None).unwrap();
    let status = read_apqn(&HostRoot::new(&host.root), Apqn::new(11, 19)).unwrap();
    let signing = &host
        .plan
        .tokens
        .values()
        .find(|t| t.slot.get() == 6)
        .unwrap()
        .wkvp_new;
    assert_eq!(&status.new.vp.unwrap()[..16], signing.bytes());
}

#[test]
fn the_cli_drives_the_same_host() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap().join("cli");
    struct Guard<'a>(&'a Path);
    impl Drop for Guard<'_> {
        fn drop(&mut self) {
            let _ = sim::shutdown(self.0);
        }
    }
    let _guard = Guard(&root);
    let sim_cli = |args: &[&str]| {
        Command::new(SIM_EXE)
            .args(args)
            .arg("--root")
            .arg(&root)
            .output()
            .unwrap()
    };
    let plan = Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/ep11-offline.yaml");
    let init = init_with_pin_on_stdin(&root, &plan, &[]);
    assert!(init.status.success(), "{}", text(&init.stderr));
    let verify = sim_cli(&["verify"]);
    assert_eq!(verify.status.code(), Some(0));
    assert_eq!(
        text(&verify.stdout),
        "token ep11: usable 4, unusable 0, skipped 2 (current WK 0x6f1e1b26c2c5a2b4f1ea3fa7c1c9d3e5)\ntotal: usable 4, unusable 0, skipped 2\n"
    );
    assert!(
        sim_cli(&["tke", "load", "--apqn", "0a.0011"])
            .status
            .success()
    );
    assert!(
        sim_cli(&["tke", "commit", "--apqn", "0a.0011"])
            .status
            .success()
    );
    assert_eq!(
        sim_cli(&["tke", "activate", "--apqn", "0b.0011"])
            .status
            .code(),
        Some(2)
    );
    assert!(
        sim_cli(&["tke", "activate", "--apqn", "0a.0011"])
            .status
            .success()
    );
    let split = sim_cli(&["verify", "--json"]);
    assert_eq!(
        split.status.code(),
        Some(1),
        "the APQNs disagree: every key is unusable"
    );
    let json: serde_json::Value = serde_json::from_slice(&split.stdout).unwrap();
    assert_eq!(json["total"]["unusable"], 4);
    assert!(
        json["tokens"]["ep11"]["problem"]
            .as_str()
            .unwrap()
            .contains("disagree")
    );
    assert!(sim_cli(&["fault", "fail-at-key", "2"]).status.success());
    assert_eq!(text(&sim_cli(&["fault"]).stdout), "fail-at-key 2\n");
    assert_eq!(sim_cli(&["fault", "no-such-fault"]).status.code(), Some(2));
    assert!(sim_cli(&["shutdown"]).status.success());
    assert_eq!(processes_of(&root), Vec::<i32>::new());
}

#[test]
fn an_offline_queue_shows_no_registers_and_cannot_be_reached() {
    let host = SimHost::offline(3);
    host.load_and_commit_all();
    let queue = Apqn::new(11, 17);
    sim::set_queue_online(&host.root, queue, false).unwrap();
    let status = read_apqn(&HostRoot::new(&host.root), queue).unwrap();
    assert!(!status.queue_online);
    assert_eq!(status.mkvps_raw, "WK CUR: - -\nWK NEW: - -\n");
    assert_eq!(
        (status.cur.state, status.new.state),
        (CurState::Unknown, NewState::Unknown)
    );
    let output = host.migrate_with_pin(11);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        text(&output.stderr),
        "m_get_xcp_info rc 0x30, valid apapter/domain 0x0b/17?.\n"
    );
    // The token still starts on its other APQN, so the tool works through that one.
    assert_eq!(host.migrate_with_pin(10).status.code(), Some(0));
    sim::set_queue_online(&host.root, queue, true).unwrap();
    let status = read_apqn(&HostRoot::new(&host.root), queue).unwrap();
    assert_eq!(status.new.state, NewState::Committed);
}

/// `mkplan-sim init --pin-stdin` with `PIN` written to its stdin (a pipe) and `env` added
/// to its environment.
fn init_with_pin_on_stdin(root: &Path, plan: &Path, env: &[(&str, &str)]) -> Output {
    let mut init = Command::new(SIM_EXE)
        .args(["init", "--keys", "4", "--pin-stdin", "--root"])
        .arg(root)
        .arg("--plan")
        .arg(plan)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(init.stdin.take().unwrap(), "{PIN}").unwrap();
    init.wait_with_output().unwrap()
}

/// Whoever starts a simulated host may hold a PIN in its environment (here the plan's own
/// variable); pkcsslotd and the units it leaves running inherit none of it, and the PIN
/// given on stdin is what the tokens take.
#[test]
fn simulated_processes_inherit_no_pin_from_their_starter() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap().join("host");
    struct Guard<'a>(&'a Path);
    impl Drop for Guard<'_> {
        fn drop(&mut self) {
            let _ = sim::shutdown(self.0);
        }
    }
    let _guard = Guard(&root);
    let plan = Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/ep11-offline.yaml");
    let init = init_with_pin_on_stdin(&root, &plan, &[("MKPLAN_EP11_PIN", PIN)]);
    assert!(init.status.success(), "{}", text(&init.stderr));
    let processes = processes_of(&root);
    assert!(
        processes.len() >= 3,
        "pkcsslotd and two units: {processes:?}"
    );
    for pid in processes {
        let environ = fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        assert!(
            !text(&environ).contains(PIN),
            "{} has the PIN in its environment",
            text(&cmdline).replace('\0', " ")
        );
    }
    let prober = SimProber::new(&root);
    let module = Path::new("/usr/lib/opencryptoki/libopencryptoki.so");
    assert!(prober.probe(module, 4, &Pin::new(PIN.to_owned())).is_ok());
}

/// The migration tool is given the token's PIN: one that someone other than root or the
/// operator could change is refused (here by the dry run), with the fix.
#[test]
fn a_migration_tool_others_could_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let host = SimHost::offline(3);
    host.load_and_commit_all();
    // A copy instead of the link to the shared binary, so its mode is this test's own.
    let tool = host.root.join("usr/sbin/pkcsep11_migrate");
    fs::remove_file(&tool).unwrap();
    fs::copy(SIM_EXE, &tool).unwrap();
    let check = |mode: u32| {
        fs::set_permissions(&tool, fs::Permissions::from_mode(mode)).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_mkplan"))
            .arg("--root")
            .arg(&host.root)
            .arg("check")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/ep11-offline.yaml"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (out.status.code(), text(&out.stdout) + &text(&out.stderr))
    };
    let (code, output) = check(0o775);
    assert_eq!(code, Some(3), "{output}");
    assert!(
        output.contains(&format!(
            "the migration tool `{}` has mode 0775",
            tool.display()
        )) && output.contains(&format!("chmod 755 {}", tool.display())),
        "{output}"
    );
    let (_, output) = check(0o755);
    assert!(!output.contains("has mode"), "{output}");
}

/// Every APQN's `mkvps` and `online` in sysfs against what `state.json` says of it, as
/// `apqn: problem` lines (empty when they agree).
fn sysfs_against_state(root: &Path) -> Vec<String> {
    let state: serde_json::Value =
        serde_json::from_slice(&fs::read(root.join("var/lib/mkplan-sim/state.json")).unwrap())
            .unwrap();
    let mut problems = Vec::new();
    for (name, queue) in state["apqns"].as_object().unwrap() {
        let dir = root.join("sys/bus/ap/devices").join(name);
        let mkvps = fs::read_to_string(dir.join("mkvps")).unwrap_or_default();
        let online = fs::read_to_string(dir.join("online")).unwrap_or_default();
        let register = |r: &serde_json::Value| match r["vp"].as_str() {
            Some(vp) => format!("{} 0x{vp}", r["state"].as_str().unwrap()),
            None => format!("{} -", r["state"].as_str().unwrap()),
        };
        let expected = format!(
            "WK CUR: {}\nWK NEW: {}\n",
            register(&queue["cur"]),
            register(&queue["new"])
        );
        if queue["online"] == true && mkvps != expected {
            problems.push(format!(
                "{name}: mkvps {mkvps:?}, the state says {expected:?}"
            ));
        }
        if (online.trim() == "1") != (queue["online"] == true) {
            problems.push(format!(
                "{name}: online {online:?}, the state says {}",
                queue["online"]
            ));
        }
    }
    problems
}

#[test]
fn a_state_change_killed_at_any_moment_leaves_sysfs_agreeing_with_the_state() {
    let host = SimHost::offline(2);
    let tke = |action: &str, kill_after: Option<u64>| {
        let mut c = Command::new(SIM_EXE);
        c.args(["tke", "--root"]).arg(&host.root).arg(action);
        if let Some(n) = kill_after {
            c.env("MKPLAN_SIM_TEST_KILL_AFTER_WRITES", n.to_string());
        }
        c.output().unwrap()
    };
    let mut killed = 0;
    for n in 1.. {
        let out = tke("load", Some(n));
        let problems = sysfs_against_state(&host.root);
        assert!(problems.is_empty(), "killed after write {n}: {problems:#?}");
        if out.status.signal() != Some(9) {
            assert!(out.status.success(), "{}", text(&out.stderr));
            break;
        }
        killed += 1;
        // Back to an empty NEW register for the next kill point.
        assert!(tke("clear", None).status.success());
        assert!(sysfs_against_state(&host.root).is_empty());
    }
    // A state file, every card's and queue's files and links, and the swap.
    assert!(killed > 20, "only {killed} kill points");
    // Finished, it is the new state, in sysfs too; the host reads it.
    let status = read_apqn(&HostRoot::new(&host.root), host.token().apqns[0]).unwrap();
    assert_eq!(status.new.state, NewState::Uncommitted);
}

#[path = "sim/spec_host.rs"]
mod spec_host;

#[path = "sim/mk_change.rs"]
mod mk_change;

#[path = "sim/apps.rs"]
mod apps;

#[path = "sim/cca.rs"]
mod cca;

#[path = "sim/mixed.rs"]
mod mixed;

#[path = "sim/cca_read.rs"]
mod cca_read;
