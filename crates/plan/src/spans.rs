//! Where each node of a plan sits in its source, by JSON pointer: what maps schema and
//! model errors back to `file:line:col`.

use std::collections::HashMap;

use crate::source::Span;

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
    /// Records where the node at `pointer` is.
    pub(crate) fn insert(&mut self, pointer: String, span: NodeSpan) {
        self.spans.insert(pointer, span);
    }

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
