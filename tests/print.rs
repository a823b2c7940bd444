//! The printed report (issue 18): `report.html` of a succeeded and of a rescued rehearsal,
//! printed by headless Chromium on A4 and on Letter, carries the whole evidence summary on
//! its first two pages — every item checked against `report.json` with `pdftotext` — and
//! the appendices start on a page of their own. No page ends in a heading; no summary
//! shows a raw backtick.
//!
//! chromium and poppler-utils (pdfinfo, pdftotext) are installed by `scripts/test`; a missing
//! one is a failure, never a skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const MKPLAN: &str = env!("CARGO_BIN_EXE_mkplan");
const SIM: &str = env!("CARGO_BIN_EXE_mkplan-sim");
const APPENDIX_A: &str = "Appendix A — Step log";

fn repo(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A rehearsal's run directory; the simulated host is shut down on drop.
struct Rehearsed {
    dir: tempfile::TempDir,
}

impl Drop for Rehearsed {
    fn drop(&mut self) {
        let root = self.dir.path().join("host");
        if root.join("var/lib/mkplan-sim/state.json").exists() {
            let _ = Command::new("timeout")
                .args(["60", SIM, "shutdown", "--root"])
                .arg(&root)
                .output();
        }
    }
}

impl Rehearsed {
    fn new(faults: &[&str], code: i32) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("mkplan-print-")
            .tempdir()
            .unwrap();
        let mut c = Command::new("timeout");
        c.args(["120", MKPLAN, "--root"])
            .arg(dir.path().join("host"))
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .arg("rehearse")
            .arg(repo("plans/ep11-offline.yaml"))
            .args(["--keys", "40"])
            .stdin(Stdio::null());
        for fault in faults {
            c.args(["--fault", fault]);
        }
        let out = c.output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(code),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { dir }
    }

    fn run_dir(&self) -> PathBuf {
        let mut runs = std::fs::read_dir(self.dir.path().join("state/runs")).unwrap();
        runs.next().unwrap().unwrap().path()
    }

    /// `report.html` with the paper a print dialog would choose, printed to PDF; the text of
    /// each page.
    fn print(&self, paper: &str) -> Vec<String> {
        let html = std::fs::read_to_string(self.run_dir().join("report.html")).unwrap();
        let page = self.dir.path().join(format!("report-{paper}.html"));
        std::fs::write(
            &page,
            html.replacen("</style>", &format!("@page{{size:{paper}}}</style>"), 1),
        )
        .unwrap();
        let pdf = self.dir.path().join(format!("report-{paper}.pdf"));
        let out = Command::new("timeout")
            .args([
                "120",
                "chromium",
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
            ])
            .args([
                "--no-pdf-header-footer",
                "--disable-background-networking",
                "--no-first-run",
            ])
            .arg(format!(
                "--user-data-dir={}",
                self.dir.path().join("chromium").display()
            ))
            .arg(format!("--print-to-pdf={}", pdf.display()))
            .arg(format!("file://{}", page.display()))
            .output()
            .expect("chromium is installed (scripts/test)");
        ok(&out, "chromium --print-to-pdf");
        let info = Command::new("pdfinfo")
            .arg(&pdf)
            .output()
            .expect("pdfinfo is installed (scripts/test)");
        ok(&info, "pdfinfo");
        let pages: usize = String::from_utf8_lossy(&info.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("Pages:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        (1..=pages)
            .map(|i| {
                let out = Command::new("pdftotext")
                    .args(["-layout", "-f", &i.to_string(), "-l", &i.to_string()])
                    .arg(&pdf)
                    .arg("-")
                    .output()
                    .expect("pdftotext is installed (scripts/test)");
                ok(&out, "pdftotext");
                String::from_utf8_lossy(&out.stdout).into_owned()
            })
            .collect()
    }
}

fn squeeze(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace() && *c != '`')
        .collect()
}

/// What the summary must show, each from `report.json` (and the envelope's key id).
fn summary_items(report: &Value, key_id: &str) -> Vec<String> {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let mut items = vec![
        s(&report["run"]["outcome"]).to_uppercase(),
        s(&report["run"]["outcome_detail"])
            .chars()
            .take(40)
            .collect(),
        s(&report["plan"]["change_ticket"]),
        s(&report["plan"]["sha256"]),
        s(&report["run"]["id"]),
        format!("{}ms", report["downtime"]["duration_ms"]),
        key_id.to_owned(),
        "mkplan report verify".to_owned(),
        // plans/ep11-offline.yaml names its `change.policy`.
        s(&report["plan"]["policy"]["reference"]),
        format!(
            "cryptoperiod {}",
            s(&report["plan"]["policy"]["cryptoperiod"])
        ),
    ];
    assert!(report["plan"]["policy"].is_object(), "{:#}", report["plan"]);
    for a in report["approvals"].as_array().unwrap() {
        items.extend([s(&a["approver"]), s(&a["time"]), s(&a["shown_sha256"])]);
    }
    for t in report["tokens"].as_array().unwrap() {
        items.extend([
            s(&t["wkvp_current"]),
            s(&t["wkvp_new"]),
            "Before".into(),
            "End of run".into(),
        ]);
        for a in t["end"]["apqns"]["apqns"].as_array().unwrap() {
            items.extend([s(&a["apqn"]), s(&a["cur_state"]), s(&a["new_state"])]);
        }
        items.extend([
            s(&t["backup"]["archive_sha256"]),
            s(&t["backup"]["manifest_sha256"]),
        ]);
        for k in t["key_summary"].as_array().unwrap() {
            items.push(s(&k["key_type"]));
            for when in ["before", "end"] {
                let c = &k[when];
                items.push(format!("{} of {} usable", c["usable"], c["total"]));
            }
        }
    }
    for w in report["warnings"].as_array().unwrap() {
        items.push(s(w).chars().take(30).collect());
    }
    if let Some(f) = report["run"]["failure"].as_object() {
        items.extend([s(&f["step"]), s(&f["name"])]);
        items.push("restored the backup".into());
    }
    items
}

/// The headings of the page (h2, h3), as text.
fn headings(html: &str) -> Vec<String> {
    let re = regex::Regex::new(r"<h[23][^>]*>(.*?)</h[23]>").unwrap();
    let tags = regex::Regex::new(r"<[^>]+>").unwrap();
    re.captures_iter(html)
        .map(|c| {
            tags.replace_all(&c[1], "")
                .replace("&amp;", "&")
                .trim()
                .to_owned()
        })
        .collect()
}

fn check_printed(run: &Rehearsed) {
    let dir = run.run_dir();
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    let without_pre = regex::Regex::new(r"(?s)<pre>.*?</pre>")
        .unwrap()
        .replace_all(&html, "");
    assert!(
        !without_pre.contains('`'),
        "a raw backtick outside <pre> in report.html"
    );
    let report: Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    let envelope: Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.dsse.json")).unwrap()).unwrap();
    let key_id = envelope["signatures"][0]["keyid"].as_str().unwrap();
    let headings = headings(&html);
    for paper in ["A4", "letter"] {
        let pages = run.print(paper);
        let appendix = pages
            .iter()
            .position(|p| p.contains(APPENDIX_A))
            .unwrap_or_else(|| panic!("{paper}: no page has `{APPENDIX_A}`"));
        assert!(
            appendix <= 2,
            "{paper}: the summary takes {appendix} pages:\n{}",
            pages.join("\n\u{c}\n")
        );
        let first_line = pages[appendix]
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap();
        assert_eq!(
            first_line.trim(),
            APPENDIX_A,
            "{paper}: the appendices start a page"
        );
        let summary = squeeze(&pages[..appendix].join("\n"));
        for item in summary_items(&report, key_id) {
            assert!(
                summary.contains(&squeeze(&item)),
                "{paper}: `{item}` is not on the summary pages:\n{}",
                pages[..appendix].join("\n\u{c}\n")
            );
        }
        for (i, page) in pages.iter().enumerate() {
            let last = page
                .lines()
                .rev()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with("mkplan run "))
                .unwrap_or_default();
            assert!(
                !headings.iter().any(|h| h == last),
                "{paper}: page {} ends in the heading `{last}`",
                i + 1
            );
        }
    }
}

#[test]
fn the_summary_of_a_succeeded_run_fits_two_pages_on_a4_and_letter() {
    check_printed(&Rehearsed::new(&[], 0));
}

#[test]
fn the_summary_of_a_rescued_run_fits_two_pages_on_a4_and_letter() {
    check_printed(&Rehearsed::new(&["fail-at-key=7"], 1));
}
