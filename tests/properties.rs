//! No input, however malformed, panics or hangs the plan loader: arbitrary bytes, arbitrary
//! YAML trees over the plan's own vocabulary, mutations of a valid plan, and hostile shapes.

use std::io::Write;
use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;
use mkplan_plan::source::SourceFile;
use mkplan_plan::{load, load_file};
use proptest::prelude::*;

const EXAMPLE: &str = include_str!("../plans/ep11-offline.yaml");

/// Keys and scalars that reach deep into the plan's schema and the loader's edge cases.
const KEYS: &[&str] = &[
    "mkplan",
    "name",
    "change",
    "ticket",
    "summary",
    "approvers",
    "vars",
    "tokens",
    "ep11",
    "slot",
    "store",
    "config",
    "apqns",
    "adapter",
    "domain",
    "pin",
    "env",
    "file",
    "prompt",
    "wkvp",
    "current",
    "new",
    "services",
    "systemd",
    "command",
    "backups",
    "dir",
    "keep",
    "steps",
    "rescue",
    "always",
    "report",
    "sign",
    "key",
    "pkcs11",
    "assert_wk",
    "checkpoint",
    "stop",
    "start",
    "backup",
    "restore",
    "migrate",
    "token",
    "to",
    "from",
    "say",
    "tke",
    "until",
    "when",
    "tags",
    "timeout",
    "argv",
    "<<",
    "",
    "~",
];
const SCALARS: &[&str] = &[
    "1",
    "0",
    "010",
    "08",
    "\"08\"",
    "0x1f",
    "0o17",
    "256",
    "-1",
    "1.5",
    ".inf",
    ".nan",
    "~",
    "null",
    "true",
    "on",
    "ep11",
    "apps",
    "local",
    "\"0a.0011\"",
    "\"0a.11\"",
    "/var/lib/x",
    "\"{{ backup_root }}\"",
    "\"{{ nope }}\"",
    "\"{% for %}\"",
    "commit",
    "activate",
    "\"0x6f1e1b26c2c5a2b4f1ea3fa7c1c9d3e5\"",
    "99999999999999999999999",
    "'",
    "\"",
    "[",
    "{",
    "&a x",
    "*a",
    "!!binary aGk=",
    "!custom x",
    "- x",
    ": x",
    "|",
    ">",
    "#",
    "%YAML 1.2",
];

#[derive(Debug, Clone)]
enum Tree {
    Scalar(&'static str),
    Seq(Vec<Tree>),
    Map(Vec<(&'static str, Tree)>),
}

fn tree() -> impl Strategy<Value = Tree> {
    let leaf = prop::sample::select(SCALARS).prop_map(Tree::Scalar);
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Tree::Seq),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(Tree::Map),
        ]
    })
}

fn render(tree: &Tree, indent: usize, flow: bool, out: &mut String) {
    let pad = " ".repeat(indent);
    match tree {
        Tree::Scalar(s) => out.push_str(s),
        Tree::Seq(items) if flow || items.is_empty() => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                render(item, indent, true, out);
            }
            out.push(']');
        }
        Tree::Map(entries) if flow || entries.is_empty() => {
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(k);
                out.push_str(": ");
                render(v, indent, true, out);
            }
            out.push('}');
        }
        Tree::Seq(items) => {
            for item in items {
                out.push('\n');
                out.push_str(&pad);
                out.push_str("- ");
                render(item, indent + 2, indent % 4 == 2, out);
            }
        }
        Tree::Map(entries) => {
            for (k, v) in entries {
                out.push('\n');
                out.push_str(&pad);
                out.push_str(k);
                out.push(':');
                out.push(' ');
                render(v, indent + 2, false, out);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        let loaded = load(SourceFile::new("fuzz.yaml", text));
        if loaded.plan.is_none() {
            prop_assert!(loaded.diagnostics.has_errors(), "an invalid plan says why");
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(&bytes).unwrap();
        let loaded = load_file(file.path());
        if loaded.plan.is_none() {
            prop_assert!(loaded.diagnostics.has_errors(), "an invalid plan says why");
        }
    }

    #[test]
    fn arbitrary_yaml_trees_never_panic(t in tree(), flow in any::<bool>()) {
        let mut text = String::new();
        render(&t, 0, flow, &mut text);
        let loaded = load(SourceFile::new("tree.yaml", text));
        if loaded.plan.is_none() {
            prop_assert!(loaded.diagnostics.has_errors(), "an invalid plan says why");
        }
    }

    #[test]
    fn mutated_plans_never_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, prop::sample::select(SCALARS)), 1..8)
    ) {
        let mut text = EXAMPLE.to_owned();
        for (at, op, insert) in edits {
            let mut i = at.index(text.len().max(1));
            while !text.is_char_boundary(i) { i -= 1; }
            match op {
                0 => { let end = (i + 3).min(text.len()); if text.is_char_boundary(end) { text.replace_range(i..end, ""); } }
                1 => text.insert_str(i, insert),
                _ => text.insert(i, '\n'),
            }
        }
        let loaded = load(SourceFile::new("mutated.yaml", text));
        for d in loaded.diagnostics.iter() {
            prop_assert!(!d.message().is_empty());
        }
    }
}

/// Runs the real binary on `text` under coreutils' `timeout`: the point is "does not hang"
/// (exit 124 means it did), not a speed claim; speed is for the benchmarks.
fn validate_text_exits(text: &[u8]) -> (Option<i32>, String) {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(text).unwrap();
    let binary = Command::cargo_bin("mkplan")
        .unwrap()
        .get_program()
        .to_owned();
    let out = Command::new("timeout")
        .arg("120")
        .arg(binary)
        .arg("validate")
        .arg(file.path())
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(124), "mkplan validate hung");
    assert!(
        out.stderr.len() < 64 * 1024,
        "diagnostics stay short: {} bytes",
        out.stderr.len()
    );
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn ten_megabytes_of_nesting_is_refused_cleanly() {
    let (code, stderr) = validate_text_exits(&vec![b'['; 10 * 1024 * 1024]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("are refused"), "{stderr}");
    // Under the size limit, the parser's own recursion limit stops it.
    let (code, stderr) = validate_text_exits(&vec![b'['; 3 * 1024 * 1024]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("recursion limit"), "{stderr}");
    let deep: String = (0..200)
        .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
        .collect();
    let (code, stderr) = validate_text_exits(deep.as_bytes());
    assert_eq!(code, Some(2));
    assert!(stderr.contains("deeper than 64"), "{stderr}");
}

#[test]
fn alias_bombs_are_refused_cleanly() {
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let p = i - 1;
        bomb.push_str(&format!(
            "a{i}: &a{i} [{}]\n",
            vec![format!("*a{p}"); 10].join(", ")
        ));
    }
    let (code, stderr) = validate_text_exits(bomb.as_bytes());
    assert_eq!(code, Some(2));
    assert!(stderr.contains("alias"), "{stderr}");
}

#[test]
fn duplicate_keys_at_every_level_are_reported_not_merged() {
    let text = EXAMPLE.replace("    slot: 4\n", "    slot: 4\n    slot: 5\n");
    let (code, stderr) = validate_text_exits(text.as_bytes());
    assert_eq!(code, Some(2));
    assert!(stderr.contains("duplicate key `slot`"), "{stderr}");
}
