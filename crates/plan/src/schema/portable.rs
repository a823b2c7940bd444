//! Keeps the published schemas to standard JSON Schema, so that every mainstream validator
//! compiles them without options: schemars marks Rust integers with formats such as `uint64`,
//! which no JSON Schema draft defines and which ajv's strict mode (its default, and what
//! editors and CI run) refuses as unknown. The range such a format implies becomes
//! `minimum`/`maximum` instead, so the schema still says what the type accepts.

use serde_json::{Map, Value};

/// Replaces every Rust integer `format` in `schema` by the bounds it stands for, keeping
/// any narrower bound the schema already states. Keys keep their order (the schema is
/// checked in, and a reordered file would be a noisy diff).
pub fn replace_integer_formats(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            let range = map
                .get("format")
                .and_then(Value::as_str)
                .and_then(integer_format_range);
            if let (Some((min, max)), Some(at)) = (range, map.keys().position(|k| k == "format")) {
                map.shift_remove("format");
                tighten(map, at, "minimum", min, i128::max);
                if let Some(max) = max {
                    let after_minimum = map
                        .keys()
                        .position(|k| k == "minimum")
                        .map_or(at, |i| i + 1);
                    tighten(map, after_minimum, "maximum", max, i128::min);
                }
            }
            map.values_mut().for_each(replace_integer_formats);
        }
        Value::Array(items) => items.iter_mut().for_each(replace_integer_formats),
        _ => {}
    }
}

/// The range of schemars' integer formats; `None` as the maximum when JSON numbers as
/// serde_json writes them cannot state it (128-bit).
fn integer_format_range(format: &str) -> Option<(i128, Option<i128>)> {
    Some(match format {
        "uint8" => (0, Some(u8::MAX.into())),
        "uint16" => (0, Some(u16::MAX.into())),
        "uint32" => (0, Some(u32::MAX.into())),
        "uint64" | "uint" => (0, Some(u64::MAX.into())),
        "uint128" => (0, None),
        "int8" => (i8::MIN.into(), Some(i8::MAX.into())),
        "int16" => (i16::MIN.into(), Some(i16::MAX.into())),
        "int32" => (i32::MIN.into(), Some(i32::MAX.into())),
        "int64" | "int" => (i64::MIN.into(), Some(i64::MAX.into())),
        "int128" => (i64::MIN.into(), None),
        _ => return None,
    })
}

/// Sets `key` to the narrower of its value and `bound`; a new key goes to position `at`.
fn tighten(
    map: &mut Map<String, Value>,
    at: usize,
    key: &str,
    bound: i128,
    narrower: fn(i128, i128) -> i128,
) {
    let existing = map.get(key).and_then(|v| {
        v.as_i64()
            .map(i128::from)
            .or_else(|| v.as_u64().map(i128::from))
    });
    let value = existing.map_or(bound, |e| narrower(e, bound));
    let number = u64::try_from(value)
        .map(Value::from)
        .or_else(|_| i64::try_from(value).map(Value::from))
        .expect("the bounds of 64-bit integers");
    match map.get_mut(key) {
        Some(slot) => *slot = number,
        None => {
            map.shift_insert(at, key.to_owned(), number);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn formats_become_bounds_and_narrower_bounds_stay() {
        let mut schema = json!({
            "properties": {
                "a": {"type": "integer", "format": "uint64", "minimum": 1, "maximum": 16},
                "b": {"type": "integer", "format": "uint8"},
                "c": {"type": ["integer", "null"], "format": "int64"},
                "d": {"type": "string", "format": "date-time"},
            },
            "items": [{"type": "integer", "format": "uint16", "maximum": 70000}],
        });
        replace_integer_formats(&mut schema);
        assert_eq!(
            schema,
            json!({
                "properties": {
                    "a": {"type": "integer", "minimum": 1, "maximum": 16},
                    "b": {"type": "integer", "minimum": 0, "maximum": 255},
                    "c": {"type": ["integer", "null"], "minimum": i64::MIN, "maximum": i64::MAX},
                    "d": {"type": "string", "format": "date-time"},
                },
                "items": [{"type": "integer", "minimum": 0, "maximum": 65535}],
            })
        );
    }
}
