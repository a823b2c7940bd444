//! YAML text → a JSON value plus the source span of every node, by JSON pointer.
//!
//! The events come from serde-saphyr's parser (`granit_parser`); the tree is built here rather
//! than through `Spanned<T>` because validation needs what serde hides: scalar style (a bare
//! `010` is ambiguous, a quoted `"010"` is not), the position of every key (an unexpected key
//! is reported at the key), and both places of a duplicated key. Scalars resolve by the YAML
//! 1.2 core schema, which is what the published JSON Schema describes.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};
use serde_saphyr::granit_parser::{Event, Marker, Parser, ScalarStyle, Span as YamlSpan, Tag};

use crate::plan::diagnostic::Diagnostic;
use crate::plan::source::{Position, SourceFile, Span};

/// Plans are a few kilobytes; anything this large is not a plan.
pub const MAX_PLAN_BYTES: usize = 4 * 1024 * 1024;
/// Deeper nesting than any plan needs; bounds the recursion of every later pass.
pub const MAX_DEPTH: usize = 64;
/// Upper bound on nodes after alias expansion (defuses "billion laughs").
pub const MAX_NODES: usize = 200_000;

/// Where a node sits in the source: its value and, for a mapping member, its key.
#[derive(Debug, Clone, Copy)]
pub struct NodeSpan {
    pub key: Option<Span>,
    pub value: Span,
    /// A plain (unquoted) scalar; only these are resolved to numbers, booleans and null.
    pub plain_scalar: bool,
}

/// JSON pointer → span, for mapping schema and model errors back to the text.
#[derive(Debug, Default)]
pub struct SpanMap {
    spans: HashMap<String, NodeSpan>,
}

impl SpanMap {
    pub fn get(&self, pointer: &str) -> Option<&NodeSpan> {
        self.spans.get(pointer)
    }

    /// The span of `pointer`, or of its nearest ancestor that has one.
    pub fn nearest(&self, pointer: &str) -> Option<&NodeSpan> {
        let mut p = pointer;
        loop {
            if let Some(span) = self.spans.get(p) {
                return Some(span);
            }
            p = &p[..p.rfind('/')?];
        }
    }
}

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

#[derive(Debug, Clone)]
struct Node {
    span: Span,
    kind: NodeKind,
}

#[derive(Debug, Clone)]
enum NodeKind {
    Scalar {
        text: String,
        plain: bool,
        tag: Option<String>,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    fn count(&self) -> usize {
        match &self.kind {
            NodeKind::Scalar { .. } => 1,
            NodeKind::Seq(items) => 1 + items.iter().map(Node::count).sum::<usize>(),
            NodeKind::Map(entries) => {
                1 + entries
                    .iter()
                    .map(|(k, v)| k.count() + v.count())
                    .sum::<usize>()
            }
        }
    }
}

enum Frame {
    Seq {
        start: Position,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        start: Position,
        anchor: usize,
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
    },
}

struct TreeBuilder<'s> {
    source: &'s SourceFile,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    nodes: usize,
    documents: usize,
    root: Option<Node>,
}

impl<'s> TreeBuilder<'s> {
    fn new(source: &'s SourceFile) -> Self {
        Self {
            source,
            stack: Vec::new(),
            anchors: HashMap::new(),
            nodes: 0,
            documents: 0,
            root: None,
        }
    }

    fn position(&self, marker: &Marker) -> Position {
        match marker.byte_offset() {
            Some(offset) => self.source.position_of(offset),
            None => Position {
                offset: 0,
                line: marker.line(),
                column: marker.col() + 1,
            },
        }
    }

    fn span(&self, span: &YamlSpan) -> Span {
        Span {
            start: self.position(&span.start),
            end: self.position(&span.end),
        }
    }

    fn build(mut self) -> Result<Node, Vec<Diagnostic>> {
        for item in Parser::new_from_str(self.source.text()) {
            let (event, span) = match item {
                Ok(pair) => pair,
                Err(error) => {
                    let at = self.position(error.marker());
                    return Err(vec![
                        Diagnostic::error("syntax", format!("invalid YAML: {}", error.kind()))
                            .at(Span::point(at)),
                    ]);
                }
            };
            self.event(event, span).map_err(|d| vec![d])?;
        }
        self.root.ok_or_else(|| {
            vec![
                Diagnostic::error("empty", "the plan is empty")
                    .with_hint("start from one of the example plans in `plans/`"),
            ]
        })
    }

    fn event(&mut self, event: Event<'_>, yaml_span: YamlSpan) -> Result<(), Diagnostic> {
        let span = self.span(&yaml_span);
        match event {
            Event::DocumentStart(..) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(Diagnostic::error(
                        "syntax",
                        "a plan is one YAML document, but a second document starts here",
                    )
                    .at(span)
                    .with_hint("remove the `---` line, or put the second plan in its own file"));
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                let node = Node {
                    span,
                    kind: NodeKind::Scalar {
                        text: text.into_owned(),
                        plain: style == ScalarStyle::Plain,
                        tag: tag.map(|t| tag_name(&t)),
                    },
                };
                self.push_node(node, anchor)?;
            }
            Event::SequenceStart(_, anchor, tag) => {
                self.reject_collection_tag(tag.as_deref(), "seq", span)?;
                self.open(
                    Frame::Seq {
                        start: span.start,
                        anchor,
                        items: Vec::new(),
                    },
                    span,
                )?;
            }
            Event::MappingStart(_, anchor, tag) => {
                self.reject_collection_tag(tag.as_deref(), "map", span)?;
                self.open(
                    Frame::Map {
                        start: span.start,
                        anchor,
                        entries: Vec::new(),
                        key: None,
                    },
                    span,
                )?;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match self.stack.pop() {
                    Some(Frame::Seq {
                        start,
                        anchor,
                        items,
                    }) => (
                        Node {
                            span: Span {
                                start,
                                end: span.end,
                            },
                            kind: NodeKind::Seq(items),
                        },
                        anchor,
                    ),
                    Some(Frame::Map {
                        start,
                        anchor,
                        entries,
                        ..
                    }) => (
                        Node {
                            span: Span {
                                start,
                                end: span.end,
                            },
                            kind: NodeKind::Map(entries),
                        },
                        anchor,
                    ),
                    None => return Ok(()),
                };
                self.place(node, anchor)?;
            }
            Event::Alias(id) => {
                let Some(target) = self.anchors.get(&id).cloned() else {
                    return Err(Diagnostic::error("syntax", "alias to an unknown anchor").at(span));
                };
                self.nodes += target.count();
                if self.nodes > MAX_NODES {
                    return Err(Diagnostic::error(
                        "too-large",
                        format!("aliases expand the plan beyond {MAX_NODES} nodes"),
                    )
                    .at(span)
                    .with_hint("this looks like an alias bomb; write the values out instead"));
                }
                self.place(target, 0)?;
            }
            _ => {}
        }
        Ok(())
    }

    fn reject_collection_tag(
        &self,
        tag: Option<&Tag>,
        expected: &str,
        span: Span,
    ) -> Result<(), Diagnostic> {
        match tag {
            Some(tag) if !tag.is_yaml_core_schema_tag(expected) => Err(Diagnostic::error(
                "syntax",
                format!("unsupported YAML tag `{}`", tag_name(tag)),
            )
            .at(span)
            .with_hint("plans use plain YAML; remove the tag")),
            _ => Ok(()),
        }
    }

    fn open(&mut self, frame: Frame, span: Span) -> Result<(), Diagnostic> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(Diagnostic::error(
                "too-deep",
                format!("the plan nests deeper than {MAX_DEPTH} levels"),
            )
            .at(span)
            .with_hint("no part of a plan needs this depth; check for runaway brackets"));
        }
        self.stack.push(frame);
        Ok(())
    }

    fn push_node(&mut self, node: Node, anchor: usize) -> Result<(), Diagnostic> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(Diagnostic::error(
                "too-large",
                format!("the plan has more than {MAX_NODES} nodes"),
            )
            .at(node.span));
        }
        self.place(node, anchor)
    }

    fn place(&mut self, node: Node, anchor: usize) -> Result<(), Diagnostic> {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                None => *key = Some(node),
                Some(k) => entries.push((k, node)),
            },
        }
        Ok(())
    }
}

fn tag_name(tag: &Tag) -> String {
    format!("{}{}", tag.handle(), tag.suffix())
}

struct Lowering {
    spans: SpanMap,
    diagnostics: Vec<Diagnostic>,
}

impl Lowering {
    fn lower(&mut self, node: &Node, pointer: String, key: Option<Span>) -> Value {
        let plain_scalar = matches!(node.kind, NodeKind::Scalar { plain: true, .. });
        self.spans.spans.insert(
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
                        if *plain && has_ambiguous_leading_zero(text) {
                            self.diagnostics
                                .push(ambiguous_number(text, &pointer, node.span));
                        }
                        value
                    }
                    Err(message) => {
                        self.diagnostics
                            .push(Diagnostic::error("yaml-value", message).at(node.span));
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
                                .with_hint("remove one of the two; YAML keeps neither silently"),
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

/// A bare number such as `010`: YAML 1.2 reads decimal 10, YAML 1.1 tools and
/// `pkcsep11_migrate` read octal 8. Refused everywhere so no reader can disagree.
fn has_ambiguous_leading_zero(text: &str) -> bool {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    digits.len() > 1 && digits.starts_with('0') && digits.bytes().all(|b| b.is_ascii_digit())
}

fn ambiguous_number(text: &str, pointer: &str, span: Span) -> Diagnostic {
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

/// Resolves a scalar by the YAML 1.2 core schema (tags override it).
fn resolve_scalar(text: &str, plain: bool, tag: Option<&str>) -> Result<Value, String> {
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
        Some(other) => Err(format!(
            "unsupported YAML tag `{other}`; plans use plain YAML"
        )),
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

    #[test]
    fn a_second_document_is_refused() {
        assert!(load(&SourceFile::new("t.yaml", "a: 1\n---\nb: 2\n")).is_err());
    }
}
