//! Where the schema wants an integer and the plan has a fractional number. JSON Schema
//! counts `4.0` as an integer (it equals one), so the schema accepts `slot: 4.0`; the model
//! does not, and YAML readers disagree on whether it is one. So mkplan finds these places
//! itself, by walking the plan beside its schema.

use serde_json::{Number, Value};

/// JSON pointers (and numbers) of the fractional numbers in `instance` at places where
/// `schema` (a root schema with `$defs`) allows an integer but no other number.
pub fn fractions_where_integers_belong(schema: &Value, instance: &Value) -> Vec<(String, Number)> {
    let mut found = Vec::new();
    walk(schema, &[schema], instance, String::new(), &mut found);
    found
}

fn walk(
    root: &Value,
    nodes: &[&Value],
    instance: &Value,
    pointer: String,
    found: &mut Vec<(String, Number)>,
) {
    let mut expanded = Vec::new();
    for node in nodes {
        expand(root, node, &mut expanded, 0);
    }
    match instance {
        Value::Number(n) if n.is_f64() && expects_only_integers(&expanded) => {
            found.push((pointer, n.clone()));
        }
        Value::Object(map) => {
            for (key, value) in map {
                let children: Vec<&Value> = expanded
                    .iter()
                    .filter_map(|node| {
                        node.get("properties")
                            .and_then(|p| p.get(key))
                            .or_else(|| node.get("additionalProperties"))
                    })
                    .collect();
                let child = format!("{pointer}/{}", crate::yaml::escape_pointer_segment(key));
                walk(root, &children, value, child, found);
            }
        }
        Value::Array(items) => {
            let children: Vec<&Value> = expanded.iter().filter_map(|n| n.get("items")).collect();
            for (i, item) in items.iter().enumerate() {
                walk(root, &children, item, format!("{pointer}/{i}"), found);
            }
        }
        _ => {}
    }
}

/// `node` and every schema it stands for through `$ref`, `oneOf`, `anyOf` and `allOf`.
fn expand<'s>(root: &'s Value, node: &'s Value, out: &mut Vec<&'s Value>, depth: usize) {
    // The plan schema's references do not recurse deeply; the bound only guards a cycle.
    if depth > 32 || !node.is_object() {
        return;
    }
    out.push(node);
    if let Some(target) = node
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix('#'))
        .and_then(|pointer| root.pointer(pointer))
    {
        expand(root, target, out, depth + 1);
    }
    for keyword in ["oneOf", "anyOf", "allOf"] {
        for branch in node
            .get(keyword)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            expand(root, branch, out, depth + 1);
        }
    }
}

fn expects_only_integers(nodes: &[&Value]) -> bool {
    let allows = |name: &str| {
        nodes.iter().any(|n| match n.get("type") {
            Some(Value::String(t)) => t == name,
            Some(Value::Array(types)) => types.iter().any(|t| t == name),
            _ => false,
        })
    };
    allows("integer") && !allows("number")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fractions_are_found_where_only_integers_belong() {
        let schema = json!({
            "type": "object",
            "properties": {
                "slot": {"type": "integer"},
                "ratio": {"type": "number"},
                "vars": {"type": "object"},
                "tokens": {"additionalProperties": {"$ref": "#/$defs/Token"}},
                "steps": {"items": {"oneOf": [{"type": "integer"}, {"type": "string"}]}},
            },
            "$defs": {"Token": {"properties": {"keep": {"type": ["integer", "null"]}}}},
        });
        let instance = json!({
            "slot": 4.0, "ratio": 1.0, "vars": {"x": 2.0},
            "tokens": {"a/b": {"keep": 5.5}}, "steps": [1, 2.0, "x"],
        });
        let found: Vec<(String, String)> = fractions_where_integers_belong(&schema, &instance)
            .into_iter()
            .map(|(pointer, n)| (pointer, n.to_string()))
            .collect();
        let expected = [
            ("/slot", "4.0"),
            ("/tokens/a~1b/keep", "5.5"),
            ("/steps/1", "2.0"),
        ];
        assert_eq!(found, expected.map(|(p, n)| (p.to_owned(), n.to_owned())));
    }
}
