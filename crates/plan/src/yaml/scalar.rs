//! Scalars by the YAML 1.2 core schema: what a plain `10`, `0x1f`, `~` or `true` means, and
//! the bare numbers whose meaning YAML versions and `pkcsep11_migrate` disagree on.

use serde_json::{Number, Value};

use crate::diagnostic::Diagnostic;
use crate::source::Span;

/// A bare number whose meaning YAML versions and `pkcsep11_migrate` disagree on, refused
/// everywhere so no reader of the plan can read another value than mkplan:
/// * `010`: YAML 1.2 reads decimal 10, YAML 1.1 tools and `pkcsep11_migrate` octal 8;
/// * `0o10`: YAML 1.2 reads octal 8, YAML 1.1 tools the text `0o10`, and
///   `pkcsep11_migrate` has no `0o` notation.
pub(super) fn ambiguous_number(text: &str, pointer: &str, span: Span) -> Option<Diagnostic> {
    let (note, hint) = if has_ambiguous_leading_zero(text) {
        leading_zero(text)
    } else if let Some(digits) = yaml12_octal_digits(text) {
        octal_prefix(text, digits, pointer)
    } else {
        return None;
    };
    Some(
        Diagnostic::error(
            "ambiguous-number",
            format!("the bare number `{text}` is ambiguous"),
        )
        .at(span)
        .with_pointer(pointer)
        .with_note(note)
        .with_hint(hint),
    )
}

fn has_ambiguous_leading_zero(text: &str) -> bool {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    digits.len() > 1 && digits.starts_with('0') && digits.bytes().all(|b| b.is_ascii_digit())
}

/// The digits of YAML 1.2's octal integer `0o17` (the core schema's only octal form).
fn yaml12_octal_digits(text: &str) -> Option<&str> {
    text.strip_prefix("0o")
        .filter(|d| !d.is_empty() && d.bytes().all(|b| (b'0'..=b'7').contains(&b)))
}

fn leading_zero(text: &str) -> (String, String) {
    let digits = text.trim_start_matches(['-', '+']);
    let octal = u64::from_str_radix(digits, 8).ok();
    let decimal: Option<u64> = digits.parse().ok();
    let hint = match (octal, decimal) {
        (Some(octal), Some(decimal)) => format!(
            "write `{octal}` or `{octal:#04x}` if you mean octal {text}, or `{decimal}` if you mean decimal; or quote it (`\"{text}\"`)"
        ),
        _ => format!("quote it (`\"{text}\"`) to mean the notation as written"),
    };
    (
        "YAML 1.2 reads a leading zero as decimal, YAML 1.1 and `pkcsep11_migrate` read it as octal".to_owned(),
        hint,
    )
}

fn octal_prefix(text: &str, digits: &str, pointer: &str) -> (String, String) {
    let note = format!(
        "YAML 1.2 reads `{text}` as an octal number, YAML 1.1 tools as the text `{text}`, and `pkcsep11_migrate` has no `0o` notation"
    );
    let Ok(value) = u64::from_str_radix(digits, 8) else {
        return (note, "write the number in decimal or `0x` hex".to_owned());
    };
    let mut hint = format!("write `{value}` or `{value:#04x}`");
    // An APQN's numbers may also be text in the tool's own notations.
    if value > 0 && (pointer.ends_with("/adapter") || pointer.ends_with("/domain")) {
        hint.push_str(&format!(
            ", or the octal as `pkcsep11_migrate` writes it, quoted: `\"0{}\"`",
            digits.trim_start_matches('0')
        ));
    }
    (note, hint)
}

/// Why a scalar has no value: a message, and a hint when there is one.
pub(super) type ScalarError = (String, Option<&'static str>);

/// Resolves a scalar by the YAML 1.2 core schema (tags override it).
pub(super) fn resolve_scalar(
    text: &str,
    plain: bool,
    tag: Option<&str>,
) -> Result<Value, ScalarError> {
    resolve_tagged(text, plain, tag).map_err(|message| {
        let hint = message
            .starts_with("unsupported YAML tag")
            .then_some("plans use plain YAML; remove the tag");
        (message, hint)
    })
}

fn resolve_tagged(text: &str, plain: bool, tag: Option<&str>) -> Result<Value, String> {
    let core = "tag:yaml.org,2002:";
    match tag.map(|t| t.strip_prefix(core).unwrap_or(t)) {
        None if !plain => Ok(Value::String(text.to_owned())),
        None => Ok(resolve_plain(text)?),
        Some("str") => Ok(Value::String(text.to_owned())),
        Some("null") if is_null(text) => Ok(Value::Null),
        Some("bool") => bool_of(text)
            .map(Value::Bool)
            .ok_or_else(|| format!("`{text}` is not a boolean")),
        Some("int") => int_of(text).ok_or_else(|| format!("`{text}` is not an integer")),
        Some("float") => match float_of(text) {
            Some(value) => value,
            None => Err(format!("`{text}` is not a number")),
        },
        Some("!") => Ok(Value::String(text.to_owned())),
        Some(other) => Err(format!("unsupported YAML tag `{other}`")),
    }
}

fn resolve_plain(text: &str) -> Result<Value, String> {
    if is_null(text) {
        return Ok(Value::Null);
    }
    if let Some(b) = bool_of(text) {
        return Ok(Value::Bool(b));
    }
    if let Some(int) = int_of(text) {
        return Ok(int);
    }
    if let Some(float) = float_of(text) {
        return float;
    }
    Ok(Value::String(text.to_owned()))
}

fn is_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

fn bool_of(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

fn int_of(text: &str) -> Option<Value> {
    let (radix, digits) = if let Some(hex) = text.strip_prefix("0x") {
        (16, hex)
    } else if let Some(oct) = text.strip_prefix("0o") {
        (8, oct)
    } else {
        (10, text)
    };
    let unsigned = if radix == 10 {
        digits.strip_prefix(['-', '+']).unwrap_or(digits)
    } else {
        digits
    };
    if unsigned.is_empty() || !unsigned.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    if let Ok(n) = u64::from_str_radix(digits.trim_start_matches('+'), radix) {
        return Some(Value::Number(n.into()));
    }
    if let Ok(n) = i64::from_str_radix(digits, radix) {
        return Some(Value::Number(n.into()));
    }
    // Integer syntax but out of range: keep the text so the schema reports a wrong type
    // rather than silently rounding through a float.
    Some(Value::String(text.to_owned()))
}

fn float_of(text: &str) -> Option<Result<Value, String>> {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    if matches!(unsigned, ".inf" | ".Inf" | ".INF") || matches!(text, ".nan" | ".NaN" | ".NAN") {
        return Some(Err(format!(
            "`{text}` is not a finite number, which a plan cannot use"
        )));
    }
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(i) => (&unsigned[..i], Some(&unsigned[i + 1..])),
        None => (unsigned, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some((int, frac)) => {
            (!int.is_empty() || !frac.is_empty())
                && int.bytes().all(|b| b.is_ascii_digit())
                && frac.bytes().all(|b| b.is_ascii_digit())
                && !(int.is_empty() && frac.is_empty())
        }
        None => !mantissa.is_empty() && mantissa.bytes().all(|b| b.is_ascii_digit()),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit())
    });
    if !mantissa_ok || !exponent_ok || mantissa == "." {
        return None;
    }
    let parsed: f64 = text.parse().ok()?;
    Some(
        Number::from_f64(parsed)
            .map(Value::Number)
            .ok_or_else(|| format!("`{text}` is not a finite number")),
    )
}
