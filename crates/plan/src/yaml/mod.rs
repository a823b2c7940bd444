//! YAML text → a JSON value plus the source span of every node, by JSON pointer.
//!
//! The events come from serde-saphyr's parser (`granit_parser`); the tree is built here rather
//! than through `Spanned<T>` because validation needs what serde hides: scalar style (a bare
//! `010` is ambiguous, a quoted `"010"` is not), the position of every key (an unexpected key
//! is reported at the key), and both places of a duplicated key. Scalars resolve by the YAML
//! 1.2 core schema, which is what the published JSON Schema describes.

mod scalar;
mod tree;

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::diagnostic::Diagnostic;
use crate::source::{SourceFile, Span};
use crate::spans::{NodeSpan, SpanMap};
use crate::yaml::scalar::{ambiguous_number, resolve_scalar};
use crate::yaml::tree::{Node, NodeKind, TreeBuilder};

/// Plans are a few kilobytes; anything this large is not a plan.
pub const MAX_PLAN_BYTES: usize = 4 * 1024 * 1024;
/// Deeper nesting than any plan needs; bounds the recursion of every later pass.
pub const MAX_DEPTH: usize = 64;
/// Upper bound on nodes after alias expansion (defuses "billion laughs").
pub const MAX_NODES: usize = 200_000;

/// A loaded document: its JSON value, spans, and the soft problems found while lowering it.
#[derive(Debug)]
pub struct Document {
    pub value: Value,
    pub spans: SpanMap,
    pub diagnostics: Vec<Diagnostic>,
}

/// Parses `source` into a [`Document`]; `Err` holds the diagnostics when no tree could be built.
pub fn load(source: &SourceFile) -> Result<Document, Vec<Diagnostic>> {
    let text = source.text();
    if text.len() > MAX_PLAN_BYTES {
        return Err(vec![
            Diagnostic::error(
                "too-large",
                format!(
                    "the plan is {} bytes; plans larger than {} bytes are refused",
                    text.len(),
                    MAX_PLAN_BYTES
                ),
            )
            .with_hint("a plan describes one change; split it or remove generated content"),
        ]);
    }
    let root = TreeBuilder::new(source).build()?;
    let mut lowering = Lowering {
        spans: SpanMap::default(),
        diagnostics: Vec::new(),
    };
    let value = lowering.lower(&root, String::new(), None);
    Ok(Document {
        value,
        spans: lowering.spans,
        diagnostics: lowering.diagnostics,
    })
}

/// Escapes one JSON pointer segment (RFC 6901).
pub fn escape_pointer_segment(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

struct Lowering {
    spans: SpanMap,
    diagnostics: Vec<Diagnostic>,
}

impl Lowering {
    fn lower(&mut self, node: &Node, pointer: String, key: Option<Span>) -> Value {
        let plain_scalar = matches!(node.kind, NodeKind::Scalar { plain: true, .. });
        self.spans.insert(
            pointer.clone(),
            NodeSpan {
                key,
                value: node.span,
                plain_scalar,
            },
        );
        match &node.kind {
            NodeKind::Scalar { text, plain, tag } => {
                match resolve_scalar(text, *plain, tag.as_deref()) {
                    Ok(value) => {
                        if *plain && value.is_number() {
                            self.diagnostics
                                .extend(ambiguous_number(text, &pointer, node.span));
                        }
                        value
                    }
                    Err((message, hint)) => {
                        // The pointer lets it stand in for the schema's "found nothing".
                        let d = Diagnostic::error("yaml-value", message)
                            .at(node.span)
                            .with_pointer(&pointer);
                        self.diagnostics.push(match hint {
                            Some(hint) => d.with_hint(hint),
                            None => d,
                        });
                        Value::Null
                    }
                }
            }
            NodeKind::Seq(items) => Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.lower(item, format!("{pointer}/{i}"), None))
                    .collect(),
            ),
            NodeKind::Map(entries) => {
                let mut map = Map::new();
                let mut first_seen: HashMap<String, Span> = HashMap::new();
                for (key_node, value_node) in entries {
                    let NodeKind::Scalar { text: name, .. } = &key_node.kind else {
                        self.diagnostics.push(
                            Diagnostic::error("yaml-key", "a mapping key must be a plain name")
                                .at(key_node.span),
                        );
                        continue;
                    };
                    if let Some(first) = first_seen.get(name) {
                        self.diagnostics.push(
                            Diagnostic::error("duplicate-key", format!("duplicate key `{name}`"))
                                .at(key_node.span)
                                .with_pointer(format!("{pointer}/{}", escape_pointer_segment(name)))
                                .with_note(format!(
                                    "`{name}` is first defined at line {}, column {}",
                                    first.start.line, first.start.column
                                ))
                                .with_hint("remove one of the two definitions"),
                        );
                        continue;
                    }
                    first_seen.insert(name.clone(), key_node.span);
                    let child = format!("{pointer}/{}", escape_pointer_segment(name));
                    let value = self.lower(value_node, child, Some(key_node.span));
                    map.insert(name.clone(), value);
                }
                Value::Object(map)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str) -> Value {
        load(&SourceFile::new("t.yaml", text)).unwrap().value
    }

    #[test]
    fn scalars_resolve_by_the_core_schema() {
        let v = value("a: 10\nb: '10'\nc: 0x1f\nd: on\ne: ~\nf: 1.5\ng: true\nh: 0o17\n");
        assert_eq!(
            v,
            serde_json::json!({"a":10,"b":"10","c":31,"d":"on","e":null,"f":1.5,"g":true,"h":15})
        );
    }

    #[test]
    fn spans_point_at_keys_and_values() {
        let doc = load(&SourceFile::new("t.yaml", "top:\n  inner: [1, two]\n")).unwrap();
        let inner = doc.spans.get("/top/inner").unwrap();
        assert_eq!(inner.key.unwrap().start.line, 2);
        assert_eq!(inner.key.unwrap().start.column, 3);
        let two = doc.spans.get("/top/inner/1").unwrap();
        assert_eq!((two.value.start.line, two.value.start.column), (2, 14));
    }

    #[test]
    fn bare_leading_zero_is_ambiguous_but_quoted_is_not() {
        let doc = load(&SourceFile::new("t.yaml", "a: 010\nb: \"010\"\nc: 0\n")).unwrap();
        assert_eq!(doc.diagnostics.len(), 1);
        assert!(doc.diagnostics[0].message().contains("`010`"));
    }

    #[test]
    fn bare_yaml12_octal_is_ambiguous_but_quoted_or_hex_is_not() {
        let text =
            "a: 0o10\nb: \"0o10\"\nc: 0x10\nd: 0o\ne: 0o8\nf: 0o0\ng: -010\nh: {adapter: 0o012}\n";
        let doc = load(&SourceFile::new("t.yaml", text)).unwrap();
        let ambiguous: Vec<(&str, &str)> = doc
            .diagnostics
            .iter()
            .map(|d| {
                (
                    d.pointer().unwrap_or_default(),
                    d.hint().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            ambiguous,
            [
                ("/a", "write `8` or `0x08`"),
                ("/f", "write `0` or `0x00`"),
                (
                    "/g",
                    "write `8` or `0x08` if you mean octal -010, or `10` if you mean decimal; or quote it (`\"-010\"`)"
                ),
                (
                    "/h/adapter",
                    "write `10` or `0x0a`, or the octal as `pkcsep11_migrate` writes it, quoted: `\"012\"`"
                ),
            ]
        );
        // `0o` and `0o8` are not numbers in any YAML version: text, which the schema judges.
        assert_eq!(doc.value["d"], "0o");
        assert_eq!(doc.value["e"], "0o8");
    }

    #[test]
    fn duplicate_keys_are_reported_with_both_places() {
        let doc = load(&SourceFile::new("t.yaml", "a: 1\nb: 2\na: 3\n")).unwrap();
        assert_eq!(doc.diagnostics.len(), 1);
        assert!(doc.diagnostics[0].to_string().contains("line 1, column 1"));
    }

    #[test]
    fn alias_bombs_and_deep_nesting_are_refused() {
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            bomb.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        assert!(load(&SourceFile::new("t.yaml", bomb)).is_err());
        let deep = "[".repeat(100_000);
        assert!(load(&SourceFile::new("t.yaml", deep)).is_err());
    }

    fn syntax_error(text: &str) -> (String, usize, usize) {
        let errors = load(&SourceFile::new("t.yaml", text)).unwrap_err();
        let d = &errors[0];
        let at = d.span().expect("located").start;
        (d.to_string(), at.line, at.column)
    }

    #[test]
    fn a_tab_in_the_indentation_is_named_where_it_is() {
        let (message, line, column) = syntax_error("a:\n  b: 1\n \tc: 2\n");
        assert!(message.contains("tabs cannot indent YAML"), "{message}");
        assert_eq!((line, column), (3, 2));
        // A tab inside a block scalar is content, not indentation: the real error is named.
        let (message, ..) = syntax_error("a: |\n  x\n  \ty\nb: [1\n");
        assert!(!message.contains("tabs"), "{message}");
    }

    #[test]
    fn an_unclosed_bracket_is_named_with_its_line() {
        let (message, line, column) = syntax_error("a: [1, 2\nb: 3\n");
        assert!(
            message.contains("the `[` at line 1, column 4 is not closed"),
            "{message}"
        );
        assert_eq!((line, column), (1, 4));
        let (message, ..) = syntax_error("a: { x: 1\n");
        assert!(
            message.contains("`{`") && message.contains("close it with `}`"),
            "{message}"
        );
    }

    #[test]
    fn an_unknown_alias_is_named() {
        let (message, line, column) = syntax_error("a: 1\nb: *nope\n");
        assert!(message.contains("unknown alias `*nope`"), "{message}");
        assert_eq!((line, column), (2, 4));
    }

    #[test]
    fn a_value_with_an_unsupported_tag_has_a_pointer_and_a_hint() {
        let doc = load(&SourceFile::new("t.yaml", "a: !path /x\n")).unwrap();
        assert_eq!(doc.diagnostics[0].pointer(), Some("/a"));
        assert_eq!(
            doc.diagnostics[0].hint(),
            Some("plans use plain YAML; remove the tag")
        );
    }

    #[test]
    fn a_second_document_is_refused() {
        assert!(load(&SourceFile::new("t.yaml", "a: 1\n---\nb: 2\n")).is_err());
    }
}
