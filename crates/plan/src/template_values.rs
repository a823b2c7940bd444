//! How the plan's values look inside templates: normalized, never as the plan wrote them.
//! A token's APQNs are objects that render as `08.0030 (adapter 8, domain 48)` (with
//! `.adapter`, `.domain` and `.lszcrypt`), and its WKVPs are `0x` and 32 lowercase hex
//! digits: a raw `adapter: "010"` in a checkpoint's `say` would read as ten to the person
//! approving it, where the tool reads octal 8.

use std::fmt;
use std::sync::Arc;

use minijinja::value::{Enumerator, Object, ObjectRepr, Serde};
use serde_json::{Map, Value};

use crate::model::{Apqn, Wkvp};

const APQN_FIELDS: [&str; 3] = ["adapter", "domain", "lszcrypt"];

/// The `tokens` section of the template scope: each token's `apqns` as
/// `{adapter, domain, lszcrypt}` and its `wkvp` in the canonical form. A value that does not
/// parse stays as written (the plan is invalid then, and says so elsewhere).
pub fn normalize_tokens(tokens: &mut Value) {
    let Some(tokens) = tokens.as_object_mut() else {
        return;
    };
    for token in tokens.values_mut().filter_map(Value::as_object_mut) {
        if let Some(apqns) = token.get_mut("apqns").and_then(Value::as_array_mut) {
            for apqn in apqns.iter_mut() {
                if let Ok(parsed) = Apqn::from_plan_value(apqn) {
                    *apqn = apqn_json(parsed);
                }
            }
        }
        if let Some(wkvp) = token.get_mut("wkvp").and_then(Value::as_object_mut) {
            for text in wkvp.values_mut() {
                if let Some(Ok((parsed, _))) = text.as_str().map(Wkvp::parse) {
                    *text = Value::String(parsed.to_string());
                }
            }
        }
    }
}

fn apqn_json(apqn: Apqn) -> Value {
    let mut map = Map::new();
    map.insert("adapter".into(), apqn.adapter().into());
    map.insert("domain".into(), apqn.domain().into());
    map.insert("lszcrypt".into(), apqn.lszcrypt().into());
    Value::Object(map)
}

/// The scope as minijinja sees it: the JSON scope, with each token's APQNs as
/// [`ApqnValue`] objects.
pub fn template_value(scope: &Value) -> minijinja::Value {
    let Some(map) = scope.as_object() else {
        return minijinja::Value::from(Serde(scope));
    };
    minijinja::Value::from_pairs(map.iter().map(|(key, value)| {
        let value = match (key.as_str(), value.as_object()) {
            ("tokens", Some(tokens)) => tokens_value(tokens),
            _ => minijinja::Value::from(Serde(value)),
        };
        (key.clone(), value)
    }))
}

fn tokens_value(tokens: &Map<String, Value>) -> minijinja::Value {
    minijinja::Value::from_pairs(tokens.iter().map(|(name, token)| {
        let Some(fields) = token.as_object() else {
            return (name.clone(), minijinja::Value::from(Serde(token)));
        };
        let token = minijinja::Value::from_pairs(fields.iter().map(|(field, value)| {
            let value = match (field.as_str(), value.as_array()) {
                ("apqns", Some(apqns)) => apqns.iter().map(apqn_value).collect(),
                _ => minijinja::Value::from(Serde(value)),
            };
            (field.clone(), value)
        }));
        (name.clone(), token)
    }))
}

fn apqn_value(json: &Value) -> minijinja::Value {
    let number = |key| {
        json.get(key)
            .and_then(Value::as_u64)
            .and_then(|n| u8::try_from(n).ok())
    };
    match (number("adapter"), number("domain")) {
        (Some(adapter), Some(domain)) => {
            minijinja::Value::from_object(ApqnValue(Apqn::new(adapter, domain)))
        }
        _ => minijinja::Value::from(Serde(json)),
    }
}

/// An APQN in a template: renders as `0a.0011 (adapter 10, domain 17)`, and has the fields
/// `adapter`, `domain` (integers) and `lszcrypt` (`0a.0011`).
#[derive(Debug)]
struct ApqnValue(Apqn);

impl Object for ApqnValue {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &minijinja::Value) -> Option<minijinja::Value> {
        Some(match key.as_str()? {
            "adapter" => self.0.adapter().into(),
            "domain" => self.0.domain().into(),
            "lszcrypt" => self.0.lszcrypt().into(),
            _ => return None,
        })
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Str(&APQN_FIELDS)
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
