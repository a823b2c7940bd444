//! The published plan JSON Schema (generated from `raw.rs`) and the mapping of its
//! validation errors back to the plan's text (`explain.rs`).

mod explain;
mod integers;
mod portable;
mod words;

use std::sync::OnceLock;

use jsonschema::Validator;
use schemars::generate::SchemaSettings;
use serde_json::Value;

use crate::diagnostic::Diagnostic;
use crate::raw::RawPlan;
use crate::schema::explain::{Role, explain};
pub use crate::schema::portable::replace_integer_formats;

/// Where the schema is published; also the `$id` editors see.
pub const SCHEMA_ID: &str = "https://mkplan.dev/schemas/plan.schema.json";

/// The plan JSON Schema (draft 2020-12), as `mkplan schema` prints it.
pub fn plan_schema() -> Value {
    let generator = SchemaSettings::draft2020_12().into_generator();
    let schema = generator.into_root_schema_for::<RawPlan>();
    let mut value = schema.to_value();
    drop_null_alternatives(&mut value);
    replace_integer_formats(&mut value);
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
///
/// An unknown key makes its object fail more than `additionalProperties`: a misspelt
/// `evn` also leaves the PIN source with none of its `oneOf` keys, and a misspelt `tokn`
/// leaves `token` missing. Those follow-on errors are dropped; the unknown key's own
/// error (with its "did you mean") explains them.
pub fn check(instance: &Value) -> Vec<Diagnostic> {
    let (schema, validator) = validator();
    let explained: Vec<(Diagnostic, Role)> = validator
        .iter_errors(instance)
        .flat_map(|error| explain(schema, &error))
        .collect();
    let unknown: Vec<(&str, Option<&str>)> = explained
        .iter()
        .filter_map(|(_, role)| match role {
            Role::UnknownKey { object, suggests } => Some((object.as_str(), suggests.as_deref())),
            _ => None,
        })
        .collect();
    explained
        .iter()
        .filter(|(_, role)| match role {
            Role::NeedsOneOf { object } => !unknown.iter().any(|(o, _)| o == object),
            Role::MissingKey { object, key } => !unknown
                .iter()
                .any(|(o, suggests)| o == object && *suggests == Some(key.as_str())),
            Role::UnknownKey { .. } | Role::Other => true,
        })
        .map(|(d, _)| d.clone())
        .collect()
}

/// Fractional numbers (`4.0`) where the plan schema wants an integer, which JSON Schema
/// itself lets pass: their JSON pointers.
pub fn fractions_where_integers_belong(instance: &Value) -> Vec<(String, serde_json::Number)> {
    integers::fractions_where_integers_belong(&validator().0, instance)
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
