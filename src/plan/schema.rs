//! The published plan JSON Schema (generated from `raw.rs`) and the mapping of its
//! validation errors back to the plan's text.

use std::sync::OnceLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{ValidationError, Validator};
use schemars::generate::SchemaSettings;
use serde_json::Value;

use crate::plan::diagnostic::Diagnostic;
use crate::plan::raw::RawPlan;
use crate::plan::suggest::did_you_mean;
use crate::plan::yaml::escape_pointer_segment;

/// Where the schema is published; also the `$id` editors see.
pub const SCHEMA_ID: &str = "https://mkplan.dev/schemas/plan.schema.json";

/// The plan JSON Schema (draft 2020-12), as `mkplan schema` prints it.
pub fn plan_schema() -> Value {
    let generator = SchemaSettings::draft2020_12().into_generator();
    let schema = generator.into_root_schema_for::<RawPlan>();
    let mut value = schema.to_value();
    drop_null_alternatives(&mut value);
    if let Some(object) = value.as_object_mut() {
        object.insert("$id".to_owned(), Value::String(SCHEMA_ID.to_owned()));
        object.insert(
            "description".to_owned(),
            Value::String(
                "An mkplan plan: one HSM master-key change on Linux on IBM Z, with its checks, \
                 safety net and evidence. See https://mkplan.dev for the step kinds."
                    .to_owned(),
            ),
        );
    }
    value
}

/// `Option` in the model means "may be left out", not "may be null": a plan that writes
/// `key: ~` gets a type error rather than a silent default, and a wrong value inside an
/// optional mapping is reported as itself, not as "matches none of `anyOf`".
fn drop_null_alternatives(node: &mut Value) {
    match node {
        Value::Object(map) => {
            if let Some(Value::Array(types)) = map.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    map.insert("type".to_owned(), only);
                }
            }
            if let Some(Value::Array(any_of)) = map.get("anyOf") {
                let non_null: Vec<Value> = any_of
                    .iter()
                    .filter(|b| b.get("type").and_then(Value::as_str) != Some("null"))
                    .cloned()
                    .collect();
                if non_null.len() == 1 && any_of.len() == 2 {
                    map.remove("anyOf");
                    if let Value::Object(only) = &non_null[0] {
                        for (k, v) in only {
                            map.entry(k.clone()).or_insert_with(|| v.clone());
                        }
                    }
                }
            }
            if map.get("default") == Some(&Value::Null) {
                map.remove("default");
            }
            map.values_mut().for_each(drop_null_alternatives);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_null_alternatives),
        _ => {}
    }
}

/// The schema text as checked in at `schemas/plan.schema.json`.
pub fn plan_schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&plan_schema()).expect("a JSON value serialises");
    text.push('\n');
    text
}

fn validator() -> &'static (Value, Validator) {
    static VALIDATOR: OnceLock<(Value, Validator)> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let schema = plan_schema();
        let validator = jsonschema::draft202012::new(&schema)
            .expect("the generated plan schema is a valid draft 2020-12 schema");
        (schema, validator)
    })
}

/// Every schema violation of `instance`, as diagnostics located by JSON pointer.
pub fn check(instance: &Value) -> Vec<Diagnostic> {
    let (schema, validator) = validator();
    let mut out = Vec::new();
    for error in validator.iter_errors(instance) {
        out.extend(explain(schema, &error));
    }
    out
}

fn explain(schema: &Value, error: &ValidationError<'_>) -> Vec<Diagnostic> {
    let pointer = error.instance_path().as_str().to_owned();
    let keyword_path = error.schema_path().as_str();
    let here = describe_location(&pointer);
    let simple =
        |message: String| vec![Diagnostic::error("schema", message).with_pointer(&pointer)];
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let allowed = sibling_properties(schema, keyword_path);
            unexpected
                .iter()
                .map(|key| {
                    let mut d =
                        Diagnostic::error("unknown-key", format!("unknown key `{key}` {here}"))
                            .with_pointer(format!("{pointer}/{}", escape_pointer_segment(key)))
                            .at_key()
                            .with_label("not allowed here");
                    d = match did_you_mean(key, allowed.iter().map(String::as_str)) {
                        Some(best) => d.with_hint(format!("did you mean `{best}`?")),
                        None if !allowed.is_empty() => {
                            d.with_hint(format!("allowed keys here: {}", quoted_list(&allowed)))
                        }
                        None => d,
                    };
                    d
                })
                .collect()
        }
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            let mut d = Diagnostic::error(
                "missing-key",
                format!("missing required key `{name}` {here}"),
            )
            .with_pointer(&pointer)
            .at_key();
            if let Some(description) = property_description(schema, keyword_path, name) {
                d = d.with_note(format!("`{name}`: {description}"));
            }
            vec![d]
        }
        ValidationErrorKind::Type { kind } => simple(format!(
            "expected {}, found {} {here}",
            type_names(kind),
            json_type_name(error.instance())
        )),
        ValidationErrorKind::Enum { options } => {
            let options: Vec<String> = options
                .as_array()
                .map(|a| a.iter().map(show_value).collect())
                .unwrap_or_default();
            let found = show_value(error.instance());
            let mut d = Diagnostic::error(
                "schema",
                format!("{found} is not one of {} {here}", options.join(", ")),
            )
            .with_pointer(&pointer);
            if let Some(best) = did_you_mean(
                found.trim_matches('`'),
                options.iter().map(|o| o.trim_matches('`')),
            ) {
                d = d.with_hint(format!("did you mean `{best}`?"));
            }
            vec![d]
        }
        ValidationErrorKind::Constant { expected_value } => simple(format!(
            "expected {} {here}, found {}",
            show_value(expected_value),
            show_value(error.instance())
        )),
        ValidationErrorKind::Minimum { limit } => simple(format!(
            "{} is below the minimum {limit} {here}",
            show_value(error.instance())
        )),
        ValidationErrorKind::Maximum { limit } => simple(format!(
            "{} is above the maximum {limit} {here}",
            show_value(error.instance())
        )),
        ValidationErrorKind::MinLength { .. } => simple(format!("empty text {here}")),
        ValidationErrorKind::MinItems { limit } => simple(format!(
            "needs at least {limit} item{} {here}",
            if *limit == 1 { "" } else { "s" }
        )),
        ValidationErrorKind::MinProperties { limit } => simple(format!(
            "needs at least {limit} entr{} {here}",
            if *limit == 1 { "y" } else { "ies" }
        )),
        ValidationErrorKind::UniqueItems => simple(format!("duplicate items {here}")),
        ValidationErrorKind::Pattern { pattern } => {
            let mut d = Diagnostic::error(
                "schema",
                format!(
                    "{} is not in the expected form {here}",
                    show_value(error.instance())
                ),
            )
            .with_pointer(&pointer)
            .with_note(format!("expected text matching `{pattern}`"));
            if pattern == crate::plan::raw::NAME_PATTERN {
                d = d.with_hint(
                    "names start with a lowercase letter and use lowercase letters, digits, `_` and `-`",
                );
            }
            vec![d]
        }
        ValidationErrorKind::PropertyNames { error: inner } => {
            let key = inner.instance().as_str().unwrap_or_default().to_owned();
            vec![
                Diagnostic::error("schema", format!("`{key}` is not a valid name {here}"))
                    .with_pointer(format!("{pointer}/{}", escape_pointer_segment(&key)))
                    .at_key()
                    .with_hint(
                        "names start with a lowercase letter and use lowercase letters, digits, `_` and `-`",
                    ),
            ]
        }
        ValidationErrorKind::OneOfNotValid { .. } | ValidationErrorKind::AnyOf { .. } => {
            vec![one_of_mismatch(
                schema,
                keyword_path,
                error.instance(),
                &pointer,
                false,
            )]
        }
        ValidationErrorKind::OneOfMultipleValid { .. } => {
            vec![one_of_mismatch(
                schema,
                keyword_path,
                error.instance(),
                &pointer,
                true,
            )]
        }
        _ => simple(format!("{} {here}", error.masked())),
    }
}

/// A `oneOf` failure, explained from the branches: "exactly one of these keys", or the forms.
fn one_of_mismatch(
    schema: &Value,
    keyword_path: &str,
    instance: &Value,
    pointer: &str,
    several: bool,
) -> Diagnostic {
    let here = describe_location(pointer);
    let branches = schema
        .pointer(keyword_path)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let choice_keys: Option<Vec<String>> = branches
        .iter()
        .map(|b| {
            let required = b.get("required")?.as_array()?;
            (required.len() == 1 && b.as_object()?.len() == 1)
                .then(|| required[0].as_str().map(str::to_owned))?
        })
        .collect();
    if let (Some(keys), Some(object)) = (choice_keys, instance.as_object()) {
        let present: Vec<String> = keys
            .iter()
            .filter(|k| object.contains_key(k.as_str()))
            .cloned()
            .collect();
        let message = if present.is_empty() {
            format!("{here} needs one of {}", quoted_list(&keys))
        } else {
            let (last, rest) = present.split_last().expect("non-empty");
            format!(
                "{here} has {} and `{last}`, but takes exactly one of them",
                quoted_list(rest)
            )
        };
        return Diagnostic::error("one-of", capitalise_first(message))
            .with_pointer(pointer)
            .with_note(format!("choose exactly one of {}", quoted_list(&keys)));
    }
    let expected = owning_schema(schema, keyword_path)
        .and_then(|s| s.get("description"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| {
            let forms: Vec<String> = branches
                .iter()
                .map(|b| describe_branch(schema, b))
                .collect();
            forms.join("; or ")
        });
    let verb = if several {
        "matches more than one of"
    } else {
        "matches none of"
    };
    Diagnostic::error(
        "form",
        format!("{} {here} {verb} the allowed forms", show_value(instance)),
    )
    .with_pointer(pointer)
    .with_note(format!("expected: {expected}"))
}

fn describe_branch(schema: &Value, branch: &Value) -> String {
    let branch = resolve_ref(schema, branch);
    if let Some(d) = branch.get("description").and_then(Value::as_str) {
        return d.to_owned();
    }
    let ty = branch
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("value");
    match (
        branch.get("minimum"),
        branch.get("maximum"),
        branch.get("pattern"),
    ) {
        (Some(min), Some(max), _) => format!("an {ty} from {min} to {max}"),
        (_, _, Some(pattern)) => format!("a {ty} matching {pattern}"),
        _ => format!("a {ty}"),
    }
}

fn resolve_ref<'a>(schema: &'a Value, node: &'a Value) -> &'a Value {
    node.get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix('#'))
        .and_then(|p| schema.pointer(p))
        .unwrap_or(node)
}

/// The object schema owning the keyword at `keyword_path` (its parent).
fn owning_schema<'a>(schema: &'a Value, keyword_path: &str) -> Option<&'a Value> {
    let parent = &keyword_path[..keyword_path.rfind('/')?];
    schema.pointer(parent)
}

fn sibling_properties(schema: &Value, keyword_path: &str) -> Vec<String> {
    owning_schema(schema, keyword_path)
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

fn property_description(schema: &Value, keyword_path: &str, name: &str) -> Option<String> {
    let property = owning_schema(schema, keyword_path)?
        .get("properties")?
        .get(name)?;
    property
        .get("description")
        .or_else(|| resolve_ref(schema, property).get("description"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// "in `tokens.ep11.apqns[1]`", or "at the top level" for the root.
pub fn describe_location(pointer: &str) -> String {
    if pointer.is_empty() {
        return "at the top level".to_owned();
    }
    format!("in `{}`", dotted_path(pointer))
}

/// `/tokens/ep11/apqns/1` → `tokens.ep11.apqns[1]`.
pub fn dotted_path(pointer: &str) -> String {
    let mut out = String::new();
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&segment);
        }
    }
    out
}

fn capitalise_first(text: String) -> String {
    // Messages are lowercase fragments; "in `x` needs…" reads better as "`x` needs…".
    match text.strip_prefix("in ") {
        Some(rest) => rest.to_owned(),
        None => text.replacen("at the top level", "the plan", 1),
    }
}

fn quoted_list(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn show_value(value: &Value) -> String {
    match value {
        Value::String(s) => format!("`{s}`"),
        Value::Object(_) => "a mapping".to_owned(),
        Value::Array(_) => "a list".to_owned(),
        other => format!("`{other}`"),
    }
}

fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing (null)",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a fractional number",
        Value::Number(n) if n.is_i64() && n.as_i64().is_some_and(|i| i < 0) => "a negative number",
        Value::Number(_) => "an integer",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn type_names(kind: &TypeKind) -> String {
    let name = |t: jsonschema::JsonType| match t.to_string().as_str() {
        "string" => "text".to_owned(),
        "integer" => "an integer".to_owned(),
        "number" => "a number".to_owned(),
        "boolean" => "a boolean".to_owned(),
        "array" => "a list".to_owned(),
        "object" => "a mapping".to_owned(),
        "null" => "nothing".to_owned(),
        other => other.to_owned(),
    };
    match kind {
        TypeKind::Single(t) => name(*t),
        TypeKind::Multiple(set) => set.iter().map(name).collect::<Vec<_>>().join(" or "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_property_has_a_description() {
        fn walk(node: &Value, path: &str, missing: &mut Vec<String>) {
            if let Some(props) = node.get("properties").and_then(Value::as_object) {
                for (name, prop) in props {
                    if prop.get("description").is_none() {
                        missing.push(format!("{path}/{name}"));
                    }
                }
            }
            match node {
                Value::Object(map) => {
                    for (k, v) in map {
                        walk(v, &format!("{path}/{k}"), missing);
                    }
                }
                Value::Array(items) => {
                    for (i, v) in items.iter().enumerate() {
                        walk(v, &format!("{path}/{i}"), missing);
                    }
                }
                _ => {}
            }
        }
        let mut missing = Vec::new();
        walk(&plan_schema(), "", &mut missing);
        assert!(
            missing.is_empty(),
            "properties without description: {missing:?}"
        );
    }

    #[test]
    fn dotted_paths_read_like_the_plan() {
        assert_eq!(
            dotted_path("/tokens/ep11/apqns/1/adapter"),
            "tokens.ep11.apqns[1].adapter"
        );
        assert_eq!(dotted_path("/steps/0"), "steps[0]");
    }
}
