//! Value checks that run beside the schema, on the raw JSON: the notations whose mistakes
//! the schema can only call "does not match" (APQNs, WKVPs, the format version). Their
//! precise diagnostics replace the schema's at the same place.

use serde_json::{Number, Value};

use crate::diagnostic::Diagnostic;
use crate::model::{Apqn, Wkvp, WkvpWidth};
use crate::schema;

/// The plan format this mkplan reads.
pub const FORMAT_VERSION: u64 = 1;

pub fn check(plan: &Value) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    if let Some(version) = plan.get("mkplan") {
        out.extend(check_version(version));
    }
    if let Some(tokens) = plan.get("tokens").and_then(Value::as_object) {
        for (name, token) in tokens {
            let base = format!("/tokens/{}", crate::yaml::escape_pointer_segment(name));
            if let Some(apqns) = token.get("apqns").and_then(Value::as_array) {
                for (i, apqn) in apqns.iter().enumerate() {
                    out.extend(check_apqn(apqn, &format!("{base}/apqns/{i}")));
                }
            }
            for which in ["current", "new"] {
                if let Some(Value::String(text)) = token.pointer(&format!("/wkvp/{which}")) {
                    out.extend(check_wkvp(text, &format!("{base}/wkvp/{which}")));
                }
            }
        }
    }
    for section in ["steps", "rescue", "always"] {
        let Some(steps) = plan.get(section).and_then(Value::as_array) else {
            continue;
        };
        for (i, step) in steps.iter().enumerate() {
            if let Some(apqn) = step.pointer("/migrate/apqn") {
                out.extend(check_apqn(apqn, &format!("/{section}/{i}/migrate/apqn")));
            }
        }
    }
    let explained: Vec<String> = out
        .iter()
        .filter_map(|d| d.pointer().map(str::to_owned))
        .collect();
    for (pointer, number) in schema::fractions_where_integers_belong(plan) {
        if !explained.contains(&pointer) {
            out.push(fraction(&pointer, &number));
        }
    }
    out
}

/// `slot: 4.0`: an integer is wanted; YAML reads `4.0` as a fractional number.
fn fraction(pointer: &str, number: &Number) -> Diagnostic {
    let d = Diagnostic::error(
        "integer",
        format!(
            "expected an integer, found `{number}` {}",
            schema::describe_location(pointer)
        ),
    )
    .with_pointer(pointer);
    // `8.0` as f64 is shown as `8`: the whole number it equals.
    match number.as_f64().filter(|v| v.fract() == 0.0) {
        Some(whole) => d.with_hint(format!(
            "write `{whole}`: YAML reads `{number}` as a fractional number, even where it equals a whole one"
        )),
        None => d.with_hint("write a whole number"),
    }
}

/// `mkplan: 1` exactly. A version mkplan does not know is "unsupported"; anything that is
/// not a whole number (`"1"`, `1.0`) is a typing slip, and says so.
fn check_version(version: &Value) -> Option<Diagnostic> {
    let wrong = |found: String| {
        Diagnostic::error(
            "version",
            format!("expected the number {FORMAT_VERSION}, found {found}"),
        )
        .with_pointer("/mkplan")
        .with_hint(format!("write `mkplan: {FORMAT_VERSION}`"))
    };
    match version {
        Value::Number(n) if n.as_u64() == Some(FORMAT_VERSION) => None,
        Value::Number(n) if n.is_u64() => {
            let d = Diagnostic::error(
                "version",
                format!("unsupported plan format version {n}; this mkplan reads `mkplan: {FORMAT_VERSION}`"),
            )
            .with_pointer("/mkplan");
            Some(if n.as_u64() > Some(FORMAT_VERSION) {
                d.with_hint(
                    "a newer plan needs a newer mkplan; an older one may need its steps rewritten",
                )
            } else {
                d
            })
        }
        Value::Number(n) => Some(wrong(format!("`{n}`"))),
        Value::String(text) => Some(wrong(format!("text `{}`", Value::String(text.clone())))),
        Value::Null => Some(wrong("nothing".to_owned())),
        Value::Bool(b) => Some(wrong(format!("`{b}`"))),
        Value::Array(_) => Some(wrong("a list".to_owned())),
        Value::Object(_) => Some(wrong("a mapping".to_owned())),
    }
}

fn check_apqn(value: &Value, pointer: &str) -> Vec<Diagnostic> {
    match Apqn::from_plan_value(value) {
        Ok(_) => Vec::new(),
        Err(errors) => errors
            .into_iter()
            .map(|e| {
                let d = Diagnostic::error("apqn", e.message)
                    .with_pointer(format!("{pointer}{}", e.relative_pointer));
                match e.hint {
                    Some(hint) => d.with_hint(hint),
                    None => d,
                }
            })
            .collect(),
    }
}

fn check_wkvp(text: &str, pointer: &str) -> Vec<Diagnostic> {
    match Wkvp::parse(text) {
        Ok((_, WkvpWidth::Short)) => Vec::new(),
        Ok((wkvp, WkvpWidth::Full)) => vec![
            Diagnostic::note(
                "wkvp-width",
                format!("only the first 16 bytes of this 32-byte WKVP are compared: {wkvp}"),
            )
            .with_pointer(pointer)
            .with_note("EP11 key blobs carry 16 bytes of WKVP; the kernel, zkey and openCryptoki compare those"),
        ],
        Err(message) => vec![
            Diagnostic::error("wkvp", message)
                .with_pointer(pointer)
                .with_hint("copy the pattern from the TKE or from `/sys/bus/ap/devices/<apqn>/mkvps`"),
        ],
    }
}

/// Does a value diagnostic at `value_pointer` explain the schema's `schema_error`? It does
/// at the same place or inside it, and a "matches none of the forms" error above it (an
/// APQN whose `adapter` is wrong fails the APQN's `oneOf`).
pub fn covers(value_pointer: &str, schema_error: &Diagnostic) -> bool {
    let schema_pointer = schema_error.pointer().unwrap_or_default();
    value_pointer == schema_pointer
        || schema_pointer.starts_with(&format!("{value_pointer}/"))
        || (schema_error.code() == "form"
            && value_pointer.starts_with(&format!("{schema_pointer}/")))
}
