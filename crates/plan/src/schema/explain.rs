//! A `jsonschema` validation error → diagnostics in the plan's terms: the key or value at
//! fault, what was expected, and a hint. Each diagnostic carries its [`Role`] so that
//! `check` can drop the errors another one already explains.

use jsonschema::ValidationError;
use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde_json::Value;

use crate::diagnostic::Diagnostic;
use crate::schema::describe_location;
use crate::schema::words::{capitalise_first, json_type_name, quoted_list, show_value, type_names};
use crate::suggest::did_you_mean;
use crate::yaml::escape_pointer_segment;

/// What a diagnostic says about its object, for dropping follow-on errors.
#[derive(Debug)]
pub(super) enum Role {
    /// An unexpected key in `object`, and the allowed key it is probably a typo of.
    UnknownKey {
        object: String,
        suggests: Option<String>,
    },
    /// `object` lacks the required `key`.
    MissingKey {
        object: String,
        key: String,
    },
    /// `object` has none of the keys of which it needs exactly one.
    NeedsOneOf {
        object: String,
    },
    Other,
}

const NAME_HINT: &str =
    "names start with a lowercase letter and use lowercase letters, digits, `_` and `-`";

pub(super) fn explain(schema: &Value, error: &ValidationError<'_>) -> Vec<(Diagnostic, Role)> {
    let pointer = error.instance_path().as_str().to_owned();
    let keyword_path = error.schema_path().as_str();
    let here = describe_location(&pointer);
    let instance = error.instance();
    let simple = |message: String| {
        vec![(
            Diagnostic::error("schema", message).with_pointer(&pointer),
            Role::Other,
        )]
    };
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let allowed = sibling_properties(schema, keyword_path);
            unexpected
                .iter()
                .map(|key| {
                    let d = Diagnostic::error("unknown-key", format!("unknown key `{key}` {here}"))
                        .with_pointer(format!("{pointer}/{}", escape_pointer_segment(key)))
                        .at_key()
                        .with_label("not allowed here");
                    let suggests = did_you_mean(key, allowed.iter().map(String::as_str));
                    let d = match suggests {
                        Some(best) => d.with_hint(format!("did you mean `{best}`?")),
                        None if !allowed.is_empty() => {
                            d.with_hint(format!("allowed keys here: {}", quoted_list(&allowed)))
                        }
                        None => d,
                    };
                    let role = Role::UnknownKey {
                        object: pointer.clone(),
                        suggests: suggests.map(str::to_owned),
                    };
                    (d, role)
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
            let role = Role::MissingKey {
                object: pointer.clone(),
                key: name.to_owned(),
            };
            vec![(d, role)]
        }
        ValidationErrorKind::Type { kind } => {
            let mut d = Diagnostic::error(
                "schema",
                format!(
                    "expected {}, found {} {here}",
                    type_names(kind),
                    json_type_name(instance)
                ),
            )
            .with_pointer(&pointer);
            if instance.is_null() {
                // `store:` with nothing after it: the empty value has no text to point at.
                d = d.at_key();
            }
            if let Some(hint) = type_hint(kind, instance) {
                d = d.with_hint(hint);
            }
            vec![(d, Role::Other)]
        }
        ValidationErrorKind::Enum { options } => {
            let options: Vec<Value> = options.as_array().cloned().unwrap_or_default();
            vec![(not_one_of(instance, &options, &pointer), Role::Other)]
        }
        ValidationErrorKind::Constant { expected_value } => simple(format!(
            "expected {} {here}, found {}",
            show_value(expected_value),
            show_value(instance)
        )),
        ValidationErrorKind::Minimum { limit } => simple(format!(
            "{} is below the minimum {limit} {here}",
            show_value(instance)
        )),
        ValidationErrorKind::Maximum { limit } => simple(format!(
            "{} is above the maximum {limit} {here}",
            show_value(instance)
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
                    show_value(instance)
                ),
            )
            .with_pointer(&pointer)
            .with_note(format!("expected text matching `{pattern}`"));
            if pattern == crate::raw::NAME_PATTERN {
                d = d.with_hint(NAME_HINT);
            }
            vec![(d, Role::Other)]
        }
        ValidationErrorKind::PropertyNames { error: inner } => {
            let key = inner.instance().as_str().unwrap_or_default().to_owned();
            let d = Diagnostic::error("schema", format!("`{key}` is not a valid name {here}"))
                .with_pointer(format!("{pointer}/{}", escape_pointer_segment(&key)))
                .at_key()
                .with_hint(NAME_HINT);
            vec![(d, Role::Other)]
        }
        ValidationErrorKind::OneOfNotValid { .. } | ValidationErrorKind::AnyOf { .. } => {
            vec![one_of_mismatch(
                schema,
                keyword_path,
                instance,
                &pointer,
                false,
            )]
        }
        ValidationErrorKind::OneOfMultipleValid { .. } => {
            vec![one_of_mismatch(
                schema,
                keyword_path,
                instance,
                &pointer,
                true,
            )]
        }
        _ => simple(format!("{} {here}", error.masked())),
    }
}

/// What to do about a value of the wrong type, when it is plain what was meant.
fn type_hint(kind: &TypeKind, instance: &Value) -> Option<&'static str> {
    let expects = |name: &str| match kind {
        TypeKind::Single(t) => t.to_string() == name,
        TypeKind::Multiple(set) => set.iter().any(|t| t.to_string() == name),
    };
    match instance {
        Value::String(text)
            if expects("integer")
                && !text.is_empty()
                && text.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Some("remove the quotes")
        }
        Value::String(text) if expects("boolean") && matches!(text.as_str(), "true" | "false") => {
            Some("remove the quotes")
        }
        Value::Object(_) if expects("array") => Some("write each item on its own line as `- …`"),
        _ => None,
    }
}

/// "`comitted` is not one of `committed`, …", with the nearest option as a hint.
fn not_one_of(instance: &Value, options: &[Value], pointer: &str) -> Diagnostic {
    let here = describe_location(pointer);
    let shown: Vec<String> = options.iter().map(show_value).collect();
    let d = Diagnostic::error(
        "schema",
        format!(
            "{} is not one of {} {here}",
            show_value(instance),
            shown.join(", ")
        ),
    )
    .with_pointer(pointer);
    let suggestion = instance
        .as_str()
        .and_then(|found| did_you_mean(found, options.iter().filter_map(Value::as_str)));
    match suggestion {
        Some(best) => d.with_hint(format!("did you mean `{best}`?")),
        None => d,
    }
}

/// A `oneOf` failure, explained from the branches: "exactly one of these keys", one of a
/// set of constants (how enums are generated), or the forms.
fn one_of_mismatch(
    schema: &Value,
    keyword_path: &str,
    instance: &Value,
    pointer: &str,
    several: bool,
) -> (Diagnostic, Role) {
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
        // In the order written, so the caret goes to the second one the operator wrote.
        let present: Vec<String> = object
            .keys()
            .filter(|k| keys.contains(k))
            .cloned()
            .collect();
        let note = format!("choose exactly one of {}", quoted_list(&keys));
        let Some((last, rest)) = present.split_last() else {
            let d = Diagnostic::error(
                "one-of",
                capitalise_first(format!("{here} needs one of {}", quoted_list(&keys))),
            )
            .with_pointer(pointer)
            .with_note(note);
            let role = Role::NeedsOneOf {
                object: pointer.to_owned(),
            };
            return (d, role);
        };
        let message = format!(
            "{here} has {} and `{last}`, but takes exactly one of them",
            quoted_list(rest)
        );
        let d = Diagnostic::error("one-of", capitalise_first(message))
            .with_pointer(format!("{pointer}/{}", escape_pointer_segment(&present[1])))
            .at_key()
            .with_note(note);
        return (d, Role::Other);
    }
    let constants: Option<Vec<Value>> = branches
        .iter()
        .map(|b| resolve_ref(schema, b).get("const").cloned())
        .collect();
    if let Some(constants) = constants.filter(|c| !c.is_empty() && !several) {
        return (not_one_of(instance, &constants, pointer), Role::Other);
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
    let d = Diagnostic::error(
        "form",
        format!("{} {here} {verb} the allowed forms", show_value(instance)),
    )
    .with_pointer(pointer)
    .with_note(format!("expected: {expected}"));
    (d, Role::Other)
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
