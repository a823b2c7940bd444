//! The command line as a newcomer meets it, through the real binary: the man pages and
//! `--help` (exit status and examples for every command), and finding runs (`runs`,
//! `report`, `resume` of a rehearsal without `--state-dir`).

use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use assert_cmd::cargo::CommandCargoExt;

fn mkplan() -> Command {
    let mut c = Command::cargo_bin("mkplan").expect("the mkplan binary is built");
    c.stdin(Stdio::null());
    c
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn both(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    )
}

// ---------------------------------------------------------------------------------------
// Man pages and help

/// Every `mkplan(1)`, `mkplan-report-verify(1)` a page refers to, roff escapes undone.
fn page_references(page: &str) -> BTreeSet<String> {
    let plain = page.replace("\\-", "-");
    let mut found = BTreeSet::new();
    for (at, _) in plain.match_indices("mkplan") {
        let rest = &plain[at..];
        let name_len = rest
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
            .unwrap_or(rest.len());
        if rest[name_len..].starts_with("(1)") {
            found.insert(format!("{}.1", &rest[..name_len]));
        }
    }
    found
}

#[test]
fn man_all_writes_every_page_it_refers_to_each_with_exit_status_and_examples() {
    let dir = tempfile::tempdir().unwrap();
    let out = mkplan()
        .args(["man", "--all"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let written: BTreeSet<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for name in ["mkplan.1", "mkplan-validate.1", "mkplan-report-verify.1"] {
        assert!(written.contains(name), "{name} missing: {written:?}");
    }
    let mut referenced = BTreeSet::new();
    for name in &written {
        let path = dir.path().join(name);
        let page = std::fs::read_to_string(&path).unwrap();
        for section in [
            ".SH \"EXIT STATUS\"\n.TP\n\\fB0\\fR\n",
            ".SH EXAMPLES\n.TP\n\\fBmkplan ",
        ] {
            assert!(page.contains(section), "{name} lacks {section:?}:\n{page}");
        }
        // The page each `mkplan-a-b(1)` stands for is one `mkplan man --all` wrote.
        referenced.extend(page_references(&page));
        // groff reads it without a warning (-k: the pages are UTF-8, as man-db reads them).
        let groff = Command::new("groff")
            .args(["-k", "-man", "-Tutf8", "-ww", "-z"])
            .arg(&path)
            .output()
            .expect("groff (groff-base, installed by scripts/test) runs");
        assert!(
            groff.status.success() && groff.stderr.is_empty(),
            "{name}: {}",
            text(&groff.stderr)
        );
    }
    let missing: Vec<&String> = referenced.difference(&written).collect();
    assert!(
        missing.is_empty(),
        "pages referred to but not written: {missing:?}"
    );
    // Every command of mkplan(1)'s SUBCOMMANDS, and every subcommand of theirs, has a page.
    assert!(referenced.len() >= 15, "{referenced:?}");
}

#[test]
fn man_prints_the_page_of_one_command_and_refuses_an_unknown_one() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        mkplan()
            .args(["man", "--all"])
            .arg(dir.path())
            .output()
            .unwrap()
            .status
            .success()
    );
    let out = mkplan().args(["man", "report", "verify"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let written = std::fs::read(dir.path().join("mkplan-report-verify.1")).unwrap();
    assert!(out.stdout == written, "`mkplan man report verify` differs");
    let top = mkplan().arg("man").output().unwrap();
    assert_eq!(
        top.stdout,
        std::fs::read(dir.path().join("mkplan.1")).unwrap()
    );

    let out = mkplan().args(["man", "report", "veryfy"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert!(text(&out.stderr).contains("`mkplan report veryfy` is not a command"));
}

#[test]
fn help_shows_the_exit_status_and_examples_of_every_command() {
    for command in [
        &["--help"][..],
        &["validate", "--help"],
        &["run", "--help"],
        &["resume", "--help"],
        &["report", "verify", "--help"],
        &["man", "--help"],
    ] {
        let out = mkplan().args(command).output().unwrap();
        let help = text(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{command:?}: {}", both(&out));
        for part in ["Exit status:\n  0  ", "\n  2  ", "Examples:\n  mkplan "] {
            assert!(help.contains(part), "{command:?} lacks {part:?}:\n{help}");
        }
    }
    let resume = text(&mkplan().args(["resume", "--help"]).output().unwrap().stdout);
    assert!(
        resume.contains("\n  5  a step was interrupted half-way"),
        "{resume}"
    );
}

// ---------------------------------------------------------------------------------------
// Where runs are: rehearsals live in the user's state directory, apart from real runs

/// A home of the test's own, so the rehearsals' state directory
/// (`$XDG_STATE_HOME/mkplan/rehearsals`) holds only this test's runs.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn rehearsals(&self) -> PathBuf {
        self.path("xdg-state/mkplan/rehearsals")
    }

    fn mkplan(&self) -> assert_cmd::Command {
        let mut c = assert_cmd::Command::cargo_bin("mkplan").unwrap();
        c.env("HOME", self.dir.path())
            .env("XDG_STATE_HOME", self.path("xdg-state"))
            .env_remove("MKPLAN_EP11_PIN")
            .write_stdin("")
            .timeout(Duration::from_secs(120));
        c
    }

    /// `mkplan rehearse` of the seed plan on a kept simulated host, without --state-dir.
    fn rehearse(&self, kill_after_event: Option<usize>) -> (Output, SimulatedHost) {
        let root = SimulatedHost(self.path("root"));
        let mut c = self.mkplan();
        c.arg("--root")
            .arg(&root.0)
            .arg("rehearse")
            .arg(repo("plans/ep11-offline.yaml"))
            .args(["--keys", "5"]);
        if let Some(k) = kill_after_event {
            c.env("MKPLAN_TEST_KILL_AFTER_JOURNAL_EVENT", k.to_string());
        }
        (c.output().unwrap(), root)
    }

    fn rehearsal_ids(&self) -> Vec<String> {
        std::fs::read_dir(self.rehearsals().join("runs"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn repo(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// A kept simulated host, whose processes are stopped however the test ends.
struct SimulatedHost(PathBuf);

impl Drop for SimulatedHost {
    fn drop(&mut self) {
        let _ = Command::new(env!("CARGO_BIN_EXE_mkplan-sim"))
            .args(["shutdown", "--root"])
            .arg(&self.0)
            .output();
    }
}

#[test]
fn runs_without_runs_says_where_rehearsals_are_kept_and_how_to_list_them() {
    let home = Home::new();
    let empty = home.path("state");
    let runs = |state: Option<&Path>| {
        let mut c = home.mkplan();
        if let Some(state) = state {
            c.arg("--state-dir").arg(state);
        }
        let out = c.arg("runs").output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", both(&out));
        out
    };
    let rehearsals = home.rehearsals().display().to_string();
    let out = runs(Some(&empty));
    assert_eq!(
        text(&out.stdout),
        format!(
            "no runs in `{}`\nrehearsals (`mkplan rehearse PLAN`) are kept apart, in `{rehearsals}`; there are none yet\n",
            empty.join("runs").display()
        )
    );

    let (rehearsed, _host) = home.rehearse(None);
    assert_eq!(rehearsed.status.code(), Some(0), "{}", both(&rehearsed));
    let id = home.rehearsal_ids().pop().expect("the rehearsal's run");
    let how = format!("mkplan runs --state-dir {rehearsals}");
    let out = runs(Some(&empty));
    assert!(
        text(&out.stdout).contains(&format!("in `{rehearsals}` (1 run): {how}\n")),
        "{}",
        both(&out)
    );
    // Whatever the machine's /var/lib/mkplan holds, the rehearsals are pointed to.
    let out = runs(None);
    assert!(both(&out).contains(&how), "{}", both(&out));
    // And the command it gives lists the rehearsal.
    let out = runs(Some(&home.rehearsals()));
    assert!(text(&out.stdout).contains(&id), "{}", both(&out));
    assert!(!both(&out).contains("kept apart"), "{}", both(&out));
}

#[test]
fn report_and_resume_find_a_rehearsal_without_state_dir() {
    let home = Home::new();
    // Killed right after `run_started`: a run that did not finish, on a kept host.
    let (killed, _host) = home.rehearse(Some(0));
    assert_eq!(killed.status.signal(), Some(9), "{}", both(&killed));
    let id = home.rehearsal_ids().pop().expect("the rehearsal's run");
    let note = format!(
        "note: run {id} is a rehearsal's, in `{}`",
        home.rehearsals().display()
    );

    let resumed = home.mkplan().args(["resume", &id]).output().unwrap();
    assert_eq!(resumed.status.code(), Some(0), "{}", both(&resumed));
    assert!(text(&resumed.stderr).contains(&note), "{}", both(&resumed));
    for action in ["verify", "show"] {
        let out = home
            .mkplan()
            .args(["report", action, &id])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{action}: {}", both(&out));
        assert!(text(&out.stderr).contains(&note), "{}", both(&out));
    }

    // An id that is nowhere says where it looked and how to list both.
    let out = home
        .mkplan()
        .args(["resume", "20200101T000000Z-000000"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    let said = text(&out.stderr);
    for part in [
        "no run `20200101T000000Z-000000` in `/var/lib/mkplan/runs` or ".to_owned(),
        format!("`{}`", home.rehearsals().join("runs").display()),
        format!(
            "`mkplan runs --state-dir {}` the rehearsals",
            home.rehearsals().display()
        ),
    ] {
        assert!(said.contains(&part), "{part}: {said}");
    }
}

// ---------------------------------------------------------------------------------------
// What a rehearsal says about its report

/// The simulated host a rehearsal announces: `REHEARSAL on a simulated EP11 host at DIR (…`.
fn announced_root(stderr: &str) -> PathBuf {
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix("REHEARSAL on a simulated EP11 host at "))
        .expect("the rehearsal names its simulated host");
    PathBuf::from(line.split(" (").next().unwrap())
}

#[test]
fn a_rehearsal_tells_the_truth_about_its_signing_key_report_copy_and_simulator() {
    let home = Home::new();
    std::fs::create_dir_all(home.path("tmp")).unwrap();
    let rehearse = |keep: bool| {
        let mut c = home.mkplan();
        // The temporary simulated host goes under the test's own directory.
        c.env("TMPDIR", home.path("tmp"))
            .arg("rehearse")
            .arg(repo("plans/ep11-offline.yaml"))
            .args(["--keys", "5"]);
        if keep {
            c.arg("--keep");
        }
        let out = c.output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", both(&out));
        out
    };

    // The seed plan names `report.sign: {key: /etc/mkplan/signing.pem}` and a `report.dir`.
    let out = rehearse(false);
    let said = text(&out.stderr);
    let root = announced_root(&said);
    assert!(
        !root.exists(),
        "the temporary host is removed: {}",
        root.display()
    );
    for untrue in [
        "names no `report.sign`",
        "no `report.sign` key in the plan",
        "  copy:",
    ] {
        assert!(!said.contains(untrue), "says {untrue:?}:\n{said}");
    }
    for true_ in [
        "the report is signed with an ephemeral key, not the plan's `report.sign` key (the key file `/etc/mkplan/signing.pem`): a rehearsal never signs with a real key",
        "(signed with an EPHEMERAL ECDSA P-256 / SHA-256 key (integrity only; a rehearsal always signs with an ephemeral key, never with the plan's `report.sign` key))",
        "the report is not copied to the plan's `report.dir` (/var/lib/mkplan/reports): that would be inside the simulated host, which is removed at the end (--keep keeps both)",
    ] {
        assert!(said.contains(true_), "does not say {true_:?}:\n{said}");
    }
    let id = home.rehearsal_ids().pop().unwrap();
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(home.rehearsals().join("runs").join(&id).join("report.json")).unwrap(),
    )
    .unwrap();
    let warnings = report["warnings"].to_string();
    assert!(
        warnings.contains("a rehearsal never signs with the plan's `report.sign` key")
            && !warnings.contains("names no"),
        "{warnings}"
    );

    // Kept, the host keeps the copy, and the path shown is there.
    let out = rehearse(true);
    let said = text(&out.stderr);
    let _host = SimulatedHost(announced_root(&said));
    let copy = said
        .lines()
        .find_map(|l| l.strip_prefix("  copy:"))
        .unwrap_or_else(|| panic!("no copy line:\n{said}"))
        .trim();
    assert!(
        Path::new(copy).join("report.json").is_file(),
        "{copy}:\n{said}"
    );
    assert!(!said.contains("not copied"), "{said}");
    // The command it suggests for the kept host works, though no `mkplan-sim` is on PATH.
    let suggested = said
        .lines()
        .find_map(|l| l.strip_prefix("REHEARSAL: the simulated host is kept at "))
        .and_then(|l| l.split('`').nth(1))
        .unwrap_or_else(|| panic!("no suggested command:\n{said}"));
    let ran = Command::new("sh")
        .args(["-c", suggested])
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    assert!(ran.status.success(), "`{suggested}`: {}", both(&ran));
    assert!(text(&ran.stdout).contains("usable"), "{}", both(&ran));
}

// ---------------------------------------------------------------------------------------
// The README's first screen

#[test]
fn the_readme_first_screen_says_how_to_get_every_binary_on_path() {
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    let first_screen: String = readme.lines().take(40).collect::<Vec<_>>().join("\n");
    // The set-up table: exactly the two commands.
    let commands: Vec<&str> = first_screen
        .lines()
        .skip_while(|l| *l != "## Set up")
        .filter(|l| l.starts_with("| ") && l.ends_with("` |") && !l.starts_with("| what"))
        .map(|l| l.rsplit('|').nth(1).unwrap().trim())
        .collect();
    assert_eq!(
        commands,
        [
            "`cargo run --release -- rehearse plans/ep11-offline.yaml`",
            "`scripts/test`"
        ]
    );
    for said in [
        "`cargo install --locked --path .`",
        "`~/.cargo/bin`",
        "several minutes",
    ] {
        assert!(first_screen.contains(said), "the first screen lacks {said}");
    }
    // What `cargo install` installs: every binary target, each named there.
    let mut binaries = vec!["mkplan".to_owned()];
    for entry in std::fs::read_dir(repo("src/bin")).unwrap() {
        let path = entry.unwrap().path();
        binaries.push(path.file_stem().unwrap().to_string_lossy().into_owned());
    }
    for binary in binaries {
        assert!(
            first_screen.contains(&format!("`{binary}`")),
            "the first screen does not say `cargo install` installs {binary}"
        );
    }
}
