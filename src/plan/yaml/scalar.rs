//! Scalars by the YAML 1.2 core schema: what a plain `10`, `0x1f`, `~` or `true` means, and
//! the bare numbers whose meaning YAML versions and `pkcsep11_migrate` disagree on.

use serde_json::{Number, Value};

use crate::plan::diagnostic::Diagnostic;
use crate::plan::source::Span;

/// A bare number such as `010`: YAML 1.2 reads decimal 10, YAML 1.1 tools and
/// `pkcsep11_migrate` read octal 8. Refused everywhere so no reader can disagree.
pub(super) fn has_ambiguous_leading_zero(text: &str) -> bool {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    digits.len() > 1 && digits.starts_with('0') && digits.bytes().all(|b| b.is_ascii_digit())
}

pub(super) fn ambiguous_number(text: &str, pointer: &str, span: Span) -> Diagnostic {
    let digits = text.trim_start_matches(['-', '+']);
    let octal = u64::from_str_radix(digits, 8).ok();
    let decimal: Option<u64> = digits.parse().ok();
    let mut hint = format!("quote it (`\"{text}\"`) to mean the notation as written");
    if let (Some(octal), Some(decimal)) = (octal, decimal) {
        hint = format!(
            "write `{octal}` or `{octal:#04x}` if you mean octal {text}, or `{decimal}` if you mean decimal; or quote it (`\"{text}\"`)"
        );
    }
    Diagnostic::error(
        "ambiguous-number",
        format!("the bare number `{text}` is ambiguous"),
    )
    .at(span)
    .with_pointer(pointer)
    .with_note(
        "YAML 1.2 reads a leading zero as decimal, YAML 1.1 and `pkcsep11_migrate` read it as octal",
    )
    .with_hint(hint)
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
