//! The published schemas: checked in, equal to `mkplan schema`, valid draft 2020-12 schemas,
//! compiled by ajv in strict mode (what editors and CI run), and accepted by two independent
//! validators (check-jsonschema, ajv) for every plan in `plans/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;

fn mkplan() -> Command {
    Command::cargo_bin("mkplan").expect("the mkplan binary is built")
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn example_plans() -> Vec<PathBuf> {
    let mut plans: Vec<PathBuf> = std::fs::read_dir(root().join("plans"))
        .expect("plans/ exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    plans.sort();
    assert!(!plans.is_empty(), "plans/ has example plans");
    plans
}

/// check-jsonschema from PyPI, installed by `scripts/test`.
fn check_jsonschema() -> Command {
    let path = std::env::var_os("MKPLAN_CHECK_JSONSCHEMA").unwrap_or_else(|| {
        panic!(
            "MKPLAN_CHECK_JSONSCHEMA is not set: run the tests with `scripts/test`, which installs check-jsonschema"
        )
    });
    Command::new(path)
}

/// ajv-cli from npm, installed by `scripts/test`; strict mode is ajv's default, and no
/// option but the draft is given, as an editor or a CI job would run it.
fn ajv(action: &str, schema: &Path) -> Command {
    let path = std::env::var_os("MKPLAN_AJV").unwrap_or_else(|| {
        panic!("MKPLAN_AJV is not set: run the tests with `scripts/test`, which installs ajv-cli")
    });
    let mut command = Command::new(path);
    command
        .arg(action)
        .arg("--spec=draft2020")
        .arg("-s")
        .arg(schema);
    command
}

fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn ajv_in_strict_mode_compiles_both_schemas() {
    for schema in ["schemas/plan.schema.json", "schemas/report.schema.json"] {
        let out = ajv("compile", &root().join(schema)).output().unwrap();
        let text = output_text(&out);
        assert!(
            out.status.success() && !text.contains("strict mode") && !text.contains("unknown"),
            "ajv (strict) does not compile {schema}:\n{text}"
        );
    }
}

#[test]
fn checked_in_schema_equals_the_generated_one() {
    let out = mkplan().arg("schema").output().unwrap();
    assert!(out.status.success());
    let checked_in = std::fs::read_to_string(root().join("schemas/plan.schema.json")).unwrap();
    assert!(
        checked_in == String::from_utf8(out.stdout).unwrap(),
        "schemas/plan.schema.json is stale: run `cargo run -- schema > schemas/plan.schema.json`"
    );
}

#[test]
fn schema_is_a_valid_draft_2020_12_schema() {
    let text = std::fs::read_to_string(root().join("schemas/plan.schema.json")).unwrap();
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    jsonschema::meta::validate(&schema).expect("valid against the draft 2020-12 meta-schema");
}

#[test]
fn every_example_plan_validates_with_mkplan_and_an_independent_validator() {
    for plan in example_plans() {
        let out = mkplan().arg("validate").arg(&plan).output().unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            plan.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let out = check_jsonschema()
            .arg("--schemafile")
            .arg(root().join("schemas/plan.schema.json"))
            .arg(&plan)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "check-jsonschema rejects {}: {}{}",
            plan.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let out = ajv("validate", &root().join("schemas/plan.schema.json"))
            .arg("-d")
            .arg(&plan)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ajv rejects {}: {}",
            plan.display(),
            output_text(&out)
        );
    }
}

#[test]
fn the_independent_validator_rejects_what_the_schema_forbids() {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(root().join("plans/ep11-offline.yaml")).unwrap();
    let cases = [
        (
            "unknown-key",
            base.replace("    slot: 4\n", "    slot: 4\n    slots: 4\n"),
        ),
        (
            "slot-range",
            base.replace("    slot: 4\n", "    slot: 1024\n"),
        ),
        ("bad-apqn", base.replace("\"0a.0011\"", "\"0a.11\"")),
        (
            "two-kinds",
            base.replace("    stop: apps\n", "    stop: apps\n    start: apps\n"),
        ),
        (
            "pin-two-sources",
            base.replace("{ env: MKPLAN_EP11_PIN }", "{ env: A, file: /x }"),
        ),
        ("version", base.replace("mkplan: 1", "mkplan: 2")),
    ];
    for (name, text) in cases {
        assert_ne!(text, base, "{name}: the edit applies");
        let plan = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&plan, text).unwrap();
        let independent = check_jsonschema()
            .arg("--schemafile")
            .arg(root().join("schemas/plan.schema.json"))
            .arg(&plan)
            .output()
            .unwrap();
        assert!(
            !independent.status.success(),
            "{name}: check-jsonschema accepts it"
        );
        let ajv = ajv("validate", &root().join("schemas/plan.schema.json"))
            .arg("-d")
            .arg(&plan)
            .output()
            .unwrap();
        let said = output_text(&ajv);
        assert!(
            !ajv.status.success() && said.contains(&format!("{} invalid", plan.display())),
            "{name}: ajv accepts it: {said}"
        );
        let ours = mkplan().arg("validate").arg(&plan).output().unwrap();
        assert_eq!(ours.status.code(), Some(2), "{name}: mkplan accepts it");
    }
}
