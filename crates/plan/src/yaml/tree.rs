//! YAML events → a tree of spanned nodes, with anchors expanded under a node budget, and the
//! parser's errors explained in the plan's terms (tabs, unclosed brackets, unknown aliases).

use std::collections::HashMap;

use serde_saphyr::granit_parser::{
    ErrorKind, Event, Marker, Parser, ScalarStyle, ScanError, Span as YamlSpan, StructureStyle,
    Tag, options,
};

use crate::diagnostic::Diagnostic;
use crate::source::{Position, SourceFile, Span};
use crate::yaml::{MAX_DEPTH, MAX_NODES};

#[derive(Debug, Clone)]
pub(super) struct Node {
    pub span: Span,
    pub kind: NodeKind,
}

#[derive(Debug, Clone)]
pub(super) enum NodeKind {
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
        flow: bool,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        start: Position,
        flow: bool,
        anchor: usize,
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
    },
}

impl Frame {
    fn open_flow_bracket(&self) -> Option<Position> {
        match self {
            Frame::Seq { start, flow, .. } | Frame::Map { start, flow, .. } => {
                flow.then_some(*start)
            }
        }
    }
}

pub(super) struct TreeBuilder<'s> {
    source: &'s SourceFile,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    nodes: usize,
    documents: usize,
    root: Option<Node>,
    /// Lines (after the first) of multi-line scalars read so far: a tab there is content.
    scalar_lines: Vec<(usize, usize)>,
}

impl<'s> TreeBuilder<'s> {
    pub fn new(source: &'s SourceFile) -> Self {
        Self {
            source,
            stack: Vec::new(),
            anchors: HashMap::new(),
            nodes: 0,
            documents: 0,
            root: None,
            scalar_lines: Vec::new(),
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

    pub fn build(mut self) -> Result<Node, Vec<Diagnostic>> {
        // Unknown aliases come as events, with their name, rather than as a bare error.
        let options = options! { emit_unresolved_aliases: true };
        for item in Parser::new_from_str_with_options(self.source.text(), options) {
            let (event, span) = match item {
                Ok(pair) => pair,
                Err(error) => return Err(vec![self.syntax_error(&error)]),
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

    /// The parser's error, or what most likely caused it.
    fn syntax_error(&self, error: &ScanError) -> Diagnostic {
        let at = self.position(error.marker());
        if let Some(tab) = self.tab_indentation(at.line) {
            return Diagnostic::error("syntax", "tabs cannot indent YAML")
                .at(Span::point(tab))
                .with_hint("indent with spaces");
        }
        if let Some(open) = self.unclosed_bracket(at, error.kind()) {
            let bracket = self.source.text()[open.offset..]
                .chars()
                .next()
                .unwrap_or('[');
            let close = if bracket == '{' { '}' } else { ']' };
            return Diagnostic::error(
                "syntax",
                format!(
                    "invalid YAML: the `{bracket}` at line {}, column {} is not closed",
                    open.line, open.column
                ),
            )
            .at(Span::point(open))
            .with_note(format!(
                "the parser stopped at line {}, column {}: {}",
                at.line,
                at.column,
                error.kind()
            ))
            .with_hint(format!("close it with `{close}`"));
        }
        let d = Diagnostic::error("syntax", format!("invalid YAML: {}", error.kind()))
            .at(Span::point(at));
        match error.kind() {
            ErrorKind::MappingValueNotAllowed => {
                d.with_hint("check the indentation of this line and the line before")
            }
            _ => d,
        }
    }

    /// The first tab in the leading whitespace of the nearest line at or before `line + 1`
    /// (the parser often notices a tab only at the end of the line before it). Comment
    /// lines and the inside of multi-line scalars may hold tabs.
    fn tab_indentation(&self, line: usize) -> Option<Position> {
        (1..=line + 1).rev().find_map(|n| {
            let text = self.source.line_text(n)?;
            let rest = text.trim_start_matches([' ', '\t']);
            let leading = &text[..text.len() - rest.len()];
            let column = leading.find('\t')?;
            let inside_scalar = self
                .scalar_lines
                .iter()
                .any(|&(first, last)| first < n && n <= last);
            if rest.is_empty() || rest.starts_with('#') || inside_scalar {
                return None;
            }
            Some(self.source.position_of(self.source.line_start(n)? + column))
        })
    }

    /// The opening bracket of a flow collection the error is most likely about: it was
    /// never closed when the parser ran out of text, or the error is on a later line that
    /// is indented no deeper than the bracket's line (block structure resumed).
    fn unclosed_bracket(&self, at: Position, kind: &ErrorKind) -> Option<Position> {
        let open = self
            .stack
            .iter()
            .rev()
            .filter_map(Frame::open_flow_bracket)
            .find(|p| {
                matches!(
                    self.source.text()[p.offset..].chars().next(),
                    Some('[' | '{')
                )
            })?;
        if matches!(kind, ErrorKind::UnclosedFlowCollection { .. }) {
            return Some(open);
        }
        let indent = |line: usize| {
            let text = self.source.line_text(line).unwrap_or_default();
            text.len() - text.trim_start_matches(' ').len()
        };
        (at.line > open.line && indent(at.line) <= indent(open.line)).then_some(open)
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
                if span.end.line > span.start.line {
                    self.scalar_lines.push((span.start.line, span.end.line));
                }
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
            Event::SequenceStart(style, anchor, tag) => {
                reject_collection_tag(tag.as_deref(), "seq", span)?;
                self.open(
                    Frame::Seq {
                        start: span.start,
                        flow: style == StructureStyle::Flow,
                        anchor,
                        items: Vec::new(),
                    },
                    span,
                )?;
            }
            Event::MappingStart(style, anchor, tag) => {
                reject_collection_tag(tag.as_deref(), "map", span)?;
                self.open(
                    Frame::Map {
                        start: span.start,
                        flow: style == StructureStyle::Flow,
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
                        ..
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
            Event::UnresolvedAlias(name) => {
                return Err(unknown_alias(&name, span));
            }
            Event::Alias(id) => {
                let Some(target) = self.anchors.get(&id).cloned() else {
                    let written = self
                        .source
                        .text()
                        .get(span.start.offset..span.end.offset)
                        .unwrap_or_default();
                    return Err(unknown_alias(written.trim_start_matches('*'), span));
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

fn unknown_alias(name: &str, span: Span) -> Diagnostic {
    Diagnostic::error(
        "syntax",
        format!("unknown alias `*{name}`: no anchor `&{name}` is defined before it"),
    )
    .at(span)
    .with_hint(format!(
        "mark the value to reuse with `&{name}` earlier in the plan, or write the value out"
    ))
}

fn reject_collection_tag(tag: Option<&Tag>, expected: &str, span: Span) -> Result<(), Diagnostic> {
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

fn tag_name(tag: &Tag) -> String {
    format!("{}{}", tag.handle(), tag.suffix())
}
