//! The command line as a newcomer meets it, through the real binary: the man pages and
//! `--help` (exit status and examples for every command), and finding runs (`runs`,
//! `report`, `resume` of a rehearsal without `--state-dir`).

use std::collections::BTreeSet;
use std::process::{Command, Output, Stdio};

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
