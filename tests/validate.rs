//! `mkplan validate` as an operator runs it, through the real binary.
//!
//! Every plan under `tests/fixtures/invalid/` (discovered at run time: adding a file adds a
//! case) has exactly one deliberate mistake; it must exit 2 with nothing on stdout, and its
//! diagnostics are pinned by an `insta` snapshot (`tests/snapshots/validate__invalid-NAME.snap`).
//! The plans under `tests/fixtures/warn/` are valid with a warning: exit 0, or 2 with
//! `--strict`. Every plan shipped in `plans/` must be valid.
//!
//! The binary runs from the crate root with relative paths, so the output is stable and
//! nothing needs redacting.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

const INVALID_DIR: &str = "tests/fixtures/invalid";
const WARN_DIR: &str = "tests/fixtures/warn";
const PLANS_DIR: &str = "plans";
const SNAPSHOT_DIR: &str = "tests/snapshots";

/// Fixtures whose diagnostic cannot have a `line:col`: there is no text to point at.
const WITHOUT_LOCATION: &[&str] = &["empty-file", "comments-only"];

/// Generous for a debug build on a busy machine; a hang fails the test instead of CI.
const TIMEOUT: Duration = Duration::from_secs(60);

fn crate_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `mkplan ARGS…` from the crate root.
fn mkplan<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Command::cargo_bin("mkplan")
        .expect("the mkplan binary is built for integration tests")
        .current_dir(crate_root())
        .args(args)
        .timeout(TIMEOUT)
        .output()
        .expect("mkplan starts")
}

/// The `*.yaml` files in `dir` (relative to the crate root), as relative paths, sorted.
fn yaml_files(dir: &str) -> Vec<String> {
    let full = crate_root().join(dir);
    let mut files: Vec<String> = std::fs::read_dir(&full)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", full.display()))
        .map(|entry| {
            let name = entry.expect("a directory entry").file_name();
            name.into_string().expect("fixture names are UTF-8")
        })
        .filter(|name| name.ends_with(".yaml"))
        .map(|name| format!("{dir}/{name}"))
        .collect();
    files.sort();
    files
}

fn stem(path: &str) -> &str {
    Path::new(path)
        .file_stem()
        .and_then(OsStr::to_str)
        .expect("a file name")
}

fn utf8(bytes: &[u8], what: &str) -> String {
    String::from_utf8(bytes.to_vec()).unwrap_or_else(|e| panic!("{what} is not UTF-8: {e}"))
}

/// The fixture's first comment line (what is wrong with it), for the snapshot header.
fn purpose(path: &str) -> String {
    let text = std::fs::read_to_string(crate_root().join(path)).unwrap_or_default();
    match text.lines().next().and_then(|l| l.strip_prefix('#')) {
        Some(comment) => format!("mkplan validate {path}: {}", comment.trim()),
        None => format!("mkplan validate {path}"),
    }
}

/// Runs `check` on every fixture and fails once at the end, naming every failing fixture,
/// so one changed diagnostic does not hide the others.
fn for_each_fixture(fixtures: &[String], check: impl Fn(&str) + std::panic::RefUnwindSafe) {
    let failed: Vec<&str> = fixtures
        .iter()
        .filter(|f| std::panic::catch_unwind(|| check(f)).is_err())
        .map(String::as_str)
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} fixtures failed (see above): {}",
        failed.len(),
        fixtures.len(),
        failed.join(", ")
    );
}

/// Asserts the human-format invariants of an invalid plan and returns its stderr.
fn validate_invalid(path: &str) -> String {
    let out = mkplan(["validate", path]);
    let stderr = utf8(&out.stderr, "stderr");
    assert_eq!(
        out.status.code(),
        Some(2),
        "{path}: expected exit 2, got {:?}\n{stderr}",
        out.status
    );
    assert!(
        out.stdout.is_empty(),
        "{path}: stdout is not empty:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        !stderr.contains("panicked"),
        "{path}: mkplan panicked\n{stderr}"
    );
    assert!(
        stderr.ends_with(&format!(
            "{path}: invalid: {}\n",
            summary_counts(&stderr, path)
        )),
        "{path}: the last line is not the summary of the diagnostics\n{stderr}"
    );
    stderr
}

/// The severity of a diagnostic header: `path[:line:col]: severity[code]: …`.
fn severity_of<'a>(header: &'a str, path: &str) -> Option<&'a str> {
    let rest = header.strip_prefix(path)?;
    let rest = rest.trim_start_matches(|c: char| c == ':' || c.is_ascii_digit());
    let rest = rest.strip_prefix(' ')?;
    Some(&rest[..rest.find('[')?])
}

/// `N error(s), M warning(s)` as counted from the diagnostic headers.
fn summary_counts(stderr: &str, path: &str) -> String {
    let headers = headers(stderr, path);
    let count = |severity: &str| {
        headers
            .iter()
            .filter(|h| severity_of(h, path) == Some(severity))
            .count()
    };
    let (errors, warnings) = (count("error"), count("warning"));
    format!(
        "{errors} error{}, {warnings} warning{}",
        if errors == 1 { "" } else { "s" },
        if warnings == 1 { "" } else { "s" }
    )
}

/// The diagnostic header lines (`file…: severity[code]: message`) of a human-format output.
fn headers<'a>(stderr: &'a str, path: &str) -> Vec<&'a str> {
    let summary = format!("{path}: invalid:");
    stderr
        .lines()
        .filter(|l| l.starts_with(path) && !l.starts_with(&summary))
        .collect()
}

#[test]
fn invalid_plans_exit_2_with_the_snapshotted_diagnostics() {
    let fixtures = yaml_files(INVALID_DIR);
    assert!(
        fixtures.len() >= 34,
        "expected at least 34 invalid fixtures, found {}",
        fixtures.len()
    );
    for_each_fixture(&fixtures, |fixture| {
        let stderr = validate_invalid(fixture);
        let mut settings = insta::Settings::clone_current();
        settings.set_description(purpose(fixture));
        settings.set_omit_expression(true);
        settings.bind(|| {
            insta::assert_snapshot!(format!("invalid-{}", stem(fixture)), stderr);
        });
    });
}

/// Checked here rather than left to insta, which writes a missing snapshot instead of
/// failing when `INSTA_UPDATE` or `INSTA_FORCE_PASS` say so: a missing snapshot folder must
/// fail, not pass with nothing compared.
#[test]
fn every_invalid_fixture_has_its_snapshot_and_every_snapshot_its_fixture() {
    let fixtures: Vec<String> = yaml_files(INVALID_DIR)
        .iter()
        .map(|f| stem(f).to_owned())
        .collect();
    let dir = crate_root().join(SNAPSHOT_DIR);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "the snapshots of the invalid fixtures are missing: cannot read {}: {e}",
            dir.display()
        )
    });
    let unsnapshotted: Vec<&String> = fixtures
        .iter()
        .filter(|f| !dir.join(format!("validate__invalid-{f}.snap")).is_file())
        .collect();
    assert!(
        unsnapshotted.is_empty(),
        "fixtures in {INVALID_DIR} without a snapshot in {SNAPSHOT_DIR}: {unsnapshotted:?}"
    );
    let orphans: Vec<String> = entries
        .map(|e| {
            e.expect("a directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter_map(|name| {
            let fixture = name
                .strip_prefix("validate__invalid-")?
                .strip_suffix(".snap")?;
            (!fixtures.iter().any(|f| f == fixture)).then_some(name)
        })
        .collect();
    assert!(
        orphans.is_empty(),
        "snapshots without a fixture in {INVALID_DIR} (delete them): {}",
        orphans.join(", ")
    );
}

#[test]
fn every_diagnostic_of_an_invalid_plan_has_a_line_and_column() {
    let located = predicate::str::is_match(
        r"^tests/fixtures/invalid/.+\.yaml:\d+:\d+: (error|warning)\[[a-z/-]+\]: ",
    )
    .expect("a valid pattern");
    let fixtures = yaml_files(INVALID_DIR);
    for name in WITHOUT_LOCATION {
        assert!(
            fixtures.contains(&format!("{INVALID_DIR}/{name}.yaml")),
            "`{name}` is listed in WITHOUT_LOCATION but has no fixture"
        );
    }
    for_each_fixture(&fixtures, |fixture| {
        let stderr = validate_invalid(fixture);
        let headers = headers(&stderr, fixture);
        assert!(!headers.is_empty(), "{fixture}: no diagnostic\n{stderr}");
        if WITHOUT_LOCATION.contains(&stem(fixture)) {
            assert!(
                headers[0].starts_with(&format!("{fixture}: error[empty]: ")),
                "{fixture}: {}",
                headers[0]
            );
            return;
        }
        for header in headers {
            assert!(
                located.eval(header),
                "{fixture}: a diagnostic without `file:line:col`:\n{header}\n\n{stderr}"
            );
        }
        // The source line under the first header is the line it names.
        let line = stderr
            .lines()
            .next()
            .and_then(|h| h.strip_prefix(&format!("{fixture}:")))
            .and_then(|rest| rest.split(':').next())
            .expect("a line number");
        assert!(
            stderr.contains(&format!("\n{line} | ")),
            "{fixture}: the source line {line} is not shown\n{stderr}"
        );
    });
}

fn validate_json(path: &str, extra: &[&str]) -> (Output, Value) {
    let mut args = vec!["validate", "--format", "json"];
    args.extend_from_slice(extra);
    args.push(path);
    let out = mkplan(&args);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{path}: --format json printed invalid JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (out, json)
}

#[test]
fn json_output_is_valid_json_with_located_diagnostics() {
    for name in [
        "unknown-key-in-step-args",
        "apqn-adapter-string-08",
        "rule-migrate-without-stop",
        "yaml-tab-indentation",
        "template-syntax-error-in-say",
        "wkvp-current-equals-new",
    ] {
        let path = format!("{INVALID_DIR}/{name}.yaml");
        let (out, json) = validate_json(&path, &[]);
        assert_eq!(out.status.code(), Some(2), "{path}: {json:#}");
        assert!(
            out.stderr.is_empty(),
            "{path}: JSON mode wrote to stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(json["version"], 1, "{path}: {json:#}");
        let files = json["files"].as_array().expect("`files` is a list");
        assert_eq!(files.len(), 1, "{path}: {json:#}");
        let file = &files[0];
        assert_eq!(file["file"], path.as_str());
        assert_eq!(file["valid"], false, "{path}: {json:#}");
        let diagnostics = file["diagnostics"].as_array().expect("a list");
        assert!(!diagnostics.is_empty(), "{path}: {json:#}");
        let errors = diagnostics
            .iter()
            .filter(|d| d["severity"] == "error")
            .count();
        assert!(errors >= 1, "{path}: {json:#}");
        assert_eq!(file["errors"], errors, "{path}: {json:#}");
        for d in diagnostics {
            for key in ["line", "column", "end_line", "end_column"] {
                assert!(
                    d[key].as_u64().is_some_and(|n| n >= 1),
                    "{path}: `{key}` is not a positive integer in {d:#}"
                );
            }
            for key in ["severity", "code", "message"] {
                assert!(d[key].is_string(), "{path}: no `{key}` in {d:#}");
            }
            assert_eq!(d["file"], path.as_str());
        }
        // The same first location as the human format.
        let human = validate_invalid(&path);
        let first = &diagnostics[0];
        let prefix = format!("{path}:{}:{}: ", first["line"], first["column"]);
        assert!(
            human.starts_with(&prefix),
            "{path}: JSON says {prefix}, human says\n{human}"
        );
    }
}

#[test]
fn json_output_of_an_empty_plan_has_no_location() {
    let path = format!("{INVALID_DIR}/empty-file.yaml");
    let (out, json) = validate_json(&path, &[]);
    assert_eq!(out.status.code(), Some(2));
    let d = &json["files"][0]["diagnostics"][0];
    assert_eq!(d["code"], "empty", "{json:#}");
    assert!(d["line"].is_null() && d["column"].is_null(), "{json:#}");
}

#[test]
fn warnings_pass_but_fail_with_strict() {
    let fixtures = yaml_files(WARN_DIR);
    assert!(
        fixtures.len() >= 2,
        "expected at least 2 warn fixtures, found {}",
        fixtures.len()
    );
    for_each_fixture(&fixtures, |fixture| {
        let out = mkplan(["validate", fixture]);
        let stderr = utf8(&out.stderr, "stderr");
        let stdout = utf8(&out.stdout, "stdout");
        assert_eq!(out.status.code(), Some(0), "{fixture}\n{stderr}{stdout}");
        assert!(
            stdout.starts_with(&format!("{fixture}: valid: ")) && stdout.ends_with("; 1 warning\n"),
            "{fixture}: {stdout}"
        );
        assert!(stderr.contains(": warning[rule/"), "{fixture}: {stderr}");
        assert!(!stderr.contains("error["), "{fixture}: {stderr}");

        let strict = mkplan(["validate", "--strict", fixture]);
        let strict_stderr = utf8(&strict.stderr, "stderr");
        assert_eq!(
            strict.status.code(),
            Some(2),
            "{fixture} --strict\n{strict_stderr}"
        );
        assert!(strict.stdout.is_empty(), "{fixture} --strict");
        assert_eq!(
            strict_stderr,
            format!("{stderr}{fixture}: invalid: 0 errors, 1 warning\n"),
            "{fixture}: --strict reports the same diagnostics and fails"
        );

        let (json_out, json) = validate_json(fixture, &["--strict"]);
        assert_eq!(json_out.status.code(), Some(2));
        assert_eq!(json["files"][0]["valid"], false, "{json:#}");
        assert_eq!(json["files"][0]["warnings"], 1, "{json:#}");
        let (json_out, json) = validate_json(fixture, &[]);
        assert_eq!(json_out.status.code(), Some(0));
        assert_eq!(json["files"][0]["valid"], true, "{json:#}");

        let mut settings = insta::Settings::clone_current();
        settings.set_description(purpose(fixture));
        settings.set_omit_expression(true);
        settings.bind(|| {
            insta::assert_snapshot!(
                format!("warn-{}", stem(fixture)),
                format!("--- stderr\n{stderr}--- stdout\n{stdout}")
            );
        });
    });
}

/// A valid plan for generated cases, independent of the fixtures.
const VALID_PLAN: &str = r#"mkplan: 1
name: Generated plan
change: { ticket: CHG1, summary: Test, approvers: [alice, bob] }
tokens:
  ep11:
    slot: 4
    store: /var/lib/opencryptoki/ep11tok
    apqns: ["0a.0011"]
    pin: { prompt: true }
    wkvp: { current: "0x00112233445566778899aabbccddeeff", new: "0xffeeddccbbaa99887766554433221100" }
services:
  apps: { systemd: [app.service] }
backups:
  local: { dir: /var/backups/mkplan }
steps:
  - name: Committed
    assert_wk: { token: ep11, current: expected, new: committed }
  - name: Stop
    stop: apps
  - name: Back up
    backup: { token: ep11, to: local }
  - name: Migrate
    migrate: { token: ep11 }
  - name: Activate
    checkpoint:
      tke: activate
      say: Activate
      approvals: 2
      until: { assert_wk: { token: ep11, current: new, new: empty } }
  - name: Start
    start: apps
rescue:
  - name: Restore
    restore: { token: ep11, from: local }
"#;

/// 1-based line and column (in characters) of byte offset `at` in `text`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

fn write_temp(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write a temporary plan");
    path
}

#[test]
fn a_mistake_on_line_n_is_reported_at_line_n() {
    let valid = mkplan_on_text(VALID_PLAN, "valid.yaml");
    assert_eq!(valid.0.status.code(), Some(0), "{}", valid.1);

    // What is changed, into what, where the diagnostic must point (the first `offending`
    // after `anchor`), and its code.
    let cases = [
        (
            "    slot: 4\n",
            "    slot: \"4\"\n",
            "slot: ",
            "\"4\"",
            "schema",
        ),
        (
            "    slot: 4\n",
            "    slot: 4\n    sotre: /x\n",
            "sotre",
            "sotre",
            "unknown-key",
        ),
        (
            "backup: { token: ep11, to: local }",
            "backup: { token: ep11, to: locl }",
            "to: ",
            "locl",
            "reference",
        ),
        (
            "      approvals: 2\n",
            "      approvals: 3\n",
            "approvals: ",
            "3",
            "approvals",
        ),
        (
            "  - name: Back up\n    backup: { token: ep11, to: local }\n",
            "",
            "migrate:",
            "migrate",
            "rule/backup-before-migrate",
        ),
    ];
    for (from, to, anchor, offending, code) in cases {
        assert_eq!(VALID_PLAN.matches(from).count(), 1, "{from:?}");
        let mistaken = VALID_PLAN.replacen(from, to, 1);
        for padding in [0, 1, 9, 10, 99, 250] {
            for crlf in [false, true] {
                let mut text = "# padding\n".repeat(padding) + &mistaken;
                if crlf {
                    text = text.replace('\n', "\r\n");
                }
                let after = text.find(anchor).expect("the anchor is in the plan");
                let at = after + text[after..].find(offending).expect("the offending text");
                let (line, column) = line_col(&text, at);
                let (out, stderr, path) = mkplan_on_text(&text, "plan.yaml");
                assert_eq!(out.status.code(), Some(2), "{stderr}");
                let want = format!("{}:{line}:{column}: error[{code}]: ", path.display());
                assert!(
                    stderr.starts_with(&want),
                    "padding {padding}, crlf {crlf}: expected `{want}…`, got\n{stderr}"
                );
                let shown = text
                    .lines()
                    .nth(line - 1)
                    .expect("the line")
                    .trim_end_matches('\r');
                assert!(
                    stderr.contains(&format!("\n{line} | {shown}\n")),
                    "padding {padding}, crlf {crlf}: line {line} is not shown\n{stderr}"
                );
            }
        }
    }
}

/// Writes `text` to a fresh temporary file and validates it: (output, stderr, path).
fn mkplan_on_text(text: &str, name: &str) -> (Output, String, PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = write_temp(dir.path(), name, text.as_bytes());
    let out = mkplan([OsStr::new("validate"), path.as_os_str()]);
    let stderr = utf8(&out.stderr, "stderr");
    (out, stderr, path)
}

/// xorshift64*: reproducible "random" bytes without a dependency.
fn pseudo_random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

#[test]
fn binary_garbage_is_refused_as_not_utf8() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for seed in 1..=8u64 {
        let mut bytes = pseudo_random_bytes(seed, 4096);
        // Make sure it is not UTF-8, whatever the generator gave.
        let bad_at = (seed as usize * 397) % bytes.len();
        bytes[bad_at] = 0xff;
        assert!(std::str::from_utf8(&bytes).is_err());
        let path = write_temp(dir.path(), &format!("garbage-{seed}.yaml"), &bytes);
        let out = mkplan([OsStr::new("validate"), path.as_os_str()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "seed {seed}: {stderr}");
        assert!(out.stdout.is_empty(), "seed {seed}");
        assert!(!stderr.contains("panicked"), "seed {seed}: {stderr}");
        assert!(
            stderr.starts_with(&format!("{}:", path.display()))
                && stderr.contains("error[encoding]")
                && stderr.contains("UTF-8"),
            "seed {seed}: {stderr}"
        );
    }
}

#[test]
fn a_latin1_byte_is_reported_where_it_is() {
    // An operator's editor saved a comment in Latin-1: `ü` is the single byte 0xFC.
    let text = VALID_PLAN.replacen("services:\n", "# Dienste für die Anwendung\nservices:\n", 1);
    let mut bytes = text.clone().into_bytes();
    let at = text.find('ü').expect("ü");
    bytes.splice(at..at + 'ü'.len_utf8(), [0xfc]);
    let (line, column) = line_col(&text, at);

    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = write_temp(dir.path(), "latin1.yaml", &bytes);
    let out = mkplan([OsStr::new("validate"), path.as_os_str()]);
    let stderr = utf8(&out.stderr, "stderr");
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let want = format!("{}:{line}:{column}: error[encoding]: ", path.display());
    assert!(
        stderr.starts_with(&want),
        "expected `{want}…`, got\n{stderr}"
    );
    assert!(stderr.contains("UTF-8"), "{stderr}");
}

#[test]
fn control_characters_in_a_plan_never_reach_the_terminal() {
    // Raw ESC and NUL bytes in a line (the parser stops at the ESC), and the same two written
    // as YAML escapes in a key (they reach the message through the key's name).
    for (from, to, escaped) in [
        (
            "name: Generated plan\n",
            "name: \"Generated \u{1b}[2J plan \u{0}\"\n",
            "\\u{1b}",
        ),
        (
            "    slot: 4\n",
            "    slot: 4\n    \"sl\\e[31mot\\0\": 5\n",
            "`sl\\u{1b}[31mot\\u{0}`",
        ),
    ] {
        let text = VALID_PLAN.replacen(from, to, 1);
        let (out, stderr, _) = mkplan_on_text(&text, "control.yaml");
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            !stderr.chars().any(|c| c.is_control() && c != '\n'),
            "a control character reached stderr: {stderr:?}"
        );
        assert!(stderr.contains(escaped), "{stderr}");
        // The caret sits under the first escaped character it points at.
        let lines: Vec<&str> = stderr.lines().collect();
        let shown = lines
            .iter()
            .position(|l| l.contains(" | ") && l.contains('\\'));
        let shown = shown.expect("the source line is shown");
        let caret = lines[shown + 1].find('^').expect("a caret under the line");
        let pointed = &lines[shown][caret..];
        assert!(
            pointed.starts_with("\\u{1b}") || pointed.starts_with("\"sl\\e"),
            "the caret is not under the offending text:\n{stderr}"
        );
    }
}

#[test]
fn a_plan_that_cannot_be_read_exits_2() {
    let out = mkplan(["validate", "tests/fixtures/does-not-exist.yaml"]);
    let stderr = utf8(&out.stderr, "stderr");
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(
        stderr.starts_with("tests/fixtures/does-not-exist.yaml: error[io]: cannot read the plan"),
        "{stderr}"
    );
}

#[test]
fn every_shipped_plan_is_valid() {
    let plans = yaml_files(PLANS_DIR);
    assert!(!plans.is_empty(), "no plans in {PLANS_DIR}/");
    for plan in &plans {
        let out = mkplan(["validate", plan]);
        let stderr = utf8(&out.stderr, "stderr");
        let stdout = utf8(&out.stdout, "stdout");
        assert_eq!(out.status.code(), Some(0), "{plan}\n{stderr}");
        assert!(
            stdout.starts_with(&format!("{plan}: valid: ")),
            "{plan}: {stdout}"
        );
        assert!(!stderr.contains("error["), "{plan}: {stderr}");
    }
    // All at once, as CI runs them.
    let out = mkplan(std::iter::once("validate".to_owned()).chain(plans.iter().cloned()));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(utf8(&out.stdout, "stdout").lines().count(), plans.len());
}

#[test]
fn one_invalid_plan_among_valid_ones_fails_the_run() {
    let valid = format!("{PLANS_DIR}/ep11-offline.yaml");
    let invalid = format!("{INVALID_DIR}/slot-as-string.yaml");
    let out = mkplan(["validate", &valid, &invalid]);
    let stderr = utf8(&out.stderr, "stderr");
    let stdout = utf8(&out.stdout, "stdout");
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stdout.starts_with(&format!("{valid}: valid: ")), "{stdout}");
    assert!(
        stderr.starts_with(&format!("{invalid}:"))
            && stderr.ends_with(&format!("{invalid}: invalid: 1 error, 0 warnings\n")),
        "{stderr}"
    );
}
