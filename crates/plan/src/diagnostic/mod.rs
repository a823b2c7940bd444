//! Diagnostics: what is wrong, where (`file:line:col`, the source line, a caret, the JSON
//! path), and what to do about it. Rendered for people (`render.rs`) or as JSON for editors
//! and CI.

mod render;

use std::fmt;
use std::ops::Range;

use serde::Serialize;

use crate::source::{SourceFile, Span};
use crate::spans::SpanMap;

pub use render::escape_for_terminal;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Note,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        })
    }
}

/// Which part of a mapping member a pointer-only diagnostic should point at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    Key,
    Value,
}

/// One finding. Boxed so that `Result<_, Diagnostic>` stays small on the happy path.
#[derive(Debug, Clone)]
pub struct Diagnostic(Box<Inner>);

#[derive(Debug, Clone)]
struct Inner {
    severity: Severity,
    code: String,
    message: String,
    span: Option<Span>,
    pointer: Option<String>,
    anchor: Anchor,
    label: Option<String>,
    /// Byte range inside the scalar value at `pointer` (e.g. a template's syntax error);
    /// narrows the span when the scalar's source text is the value itself.
    value_range: Option<Range<usize>>,
    notes: Vec<Note>,
    hint: Option<String>,
}

/// A note, optionally about another place in the plan: that place's line is added when the
/// diagnostic is located.
#[derive(Debug, Clone)]
struct Note {
    text: String,
    at: Option<String>,
}

impl Diagnostic {
    fn new(severity: Severity, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self(Box::new(Inner {
            severity,
            code: code.into(),
            message: message.into(),
            span: None,
            pointer: None,
            anchor: Anchor::Value,
            label: None,
            value_range: None,
            notes: Vec::new(),
            hint: None,
        }))
    }

    pub fn error(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Severity::Error, code, message)
    }

    pub fn warning(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, code, message)
    }

    pub fn note(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Severity::Note, code, message)
    }

    pub fn at(mut self, span: Span) -> Self {
        self.0.span = Some(span);
        self
    }

    pub fn with_pointer(mut self, pointer: impl Into<String>) -> Self {
        self.0.pointer = Some(pointer.into());
        self
    }

    /// Points at the key of the member at `pointer` rather than at its value.
    pub fn at_key(mut self) -> Self {
        self.0.anchor = Anchor::Key;
        self
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.0.label = Some(label.into());
        self
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.0.notes.push(Note {
            text: note.into(),
            at: None,
        });
        self
    }

    /// A note about the node at `pointer`; locating the diagnostic appends that node's line.
    pub fn with_note_at(mut self, note: impl Into<String>, pointer: impl Into<String>) -> Self {
        self.0.notes.push(Note {
            text: note.into(),
            at: Some(pointer.into()),
        });
        self
    }

    /// Points at bytes `range` of the scalar value at the pointer rather than at all of it.
    pub fn within_value(mut self, range: Range<usize>) -> Self {
        self.0.value_range = Some(range);
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.0.hint = Some(hint.into());
        self
    }

    pub fn severity(&self) -> Severity {
        self.0.severity
    }

    pub fn code(&self) -> &str {
        &self.0.code
    }

    pub fn message(&self) -> &str {
        &self.0.message
    }

    pub fn pointer(&self) -> Option<&str> {
        self.0.pointer.as_deref()
    }

    pub fn span(&self) -> Option<Span> {
        self.0.span
    }

    pub fn hint(&self) -> Option<&str> {
        self.0.hint.as_deref()
    }

    /// Fills in the span from the pointer, using the nearest node that has a span, and the
    /// lines of notes about other places.
    pub fn locate(mut self, spans: &SpanMap, source: &SourceFile) -> Self {
        if self.0.span.is_none()
            && let Some(pointer) = &self.0.pointer
            && let Some(node) = spans.nearest(pointer)
        {
            let exact = spans.get(pointer).is_some();
            self.0.span = Some(match (self.0.anchor, node.key) {
                (Anchor::Key, Some(key)) => key,
                _ => match &self.0.value_range {
                    Some(range) if exact => {
                        narrow(source, node.value, range.clone()).unwrap_or(node.value)
                    }
                    _ => node.value,
                },
            });
        }
        for note in &mut self.0.notes {
            if let Some(at) = note.at.take()
                && let Some(node) = spans.get(&at)
            {
                let line = node.key.unwrap_or(node.value).start.line;
                note.text.push_str(&format!(" (line {line})"));
            }
        }
        self
    }

    pub fn to_json(&self, source: &SourceFile) -> serde_json::Value {
        serde_json::json!({
            "file": source.name().display().to_string(),
            "line": self.0.span.map(|s| s.start.line),
            "column": self.0.span.map(|s| s.start.column),
            "end_line": self.0.span.map(|s| s.end.line),
            "end_column": self.0.span.map(|s| s.end.column),
            "severity": self.0.severity,
            "code": self.0.code,
            "message": self.0.message,
            "path": self.0.pointer.as_deref().map(display_pointer),
            "notes": self.0.notes.iter().map(|n| &n.text).collect::<Vec<_>>(),
            "hint": self.0.hint,
        })
    }
}

/// The part of a single-line scalar at `value` that holds bytes `range` of its value, when
/// the source text is the value itself (plain, or quoted without escapes).
fn narrow(source: &SourceFile, value: Span, range: Range<usize>) -> Option<Span> {
    if value.start.line != value.end.line {
        return None;
    }
    let written = source.text().get(value.start.offset..value.end.offset)?;
    // Positions without byte offsets would make this slice wrong; the widths must agree.
    if Some(written.chars().count()) != value.end.column.checked_sub(value.start.column) {
        return None;
    }
    let (quote, inner) = match written.chars().next()? {
        '"' if !written.contains('\\') => (1, written.get(1..written.len().checked_sub(1)?)?),
        '\'' if !written[1..].contains("''") => (1, written.get(1..written.len().checked_sub(1)?)?),
        '"' | '\'' => return None,
        _ => (0, written),
    };
    if range.start >= range.end || inner.get(range.clone()).is_none() {
        return None;
    }
    let at = |offset: usize| source.position_of(value.start.offset + quote + offset);
    Some(Span {
        start: at(range.start),
        end: at(range.end),
    })
}

/// Shown as the JSON pointer itself, `/` for the document root.
fn display_pointer(pointer: &str) -> String {
    if pointer.is_empty() {
        "/".to_owned()
    } else {
        pointer.to_owned()
    }
}

/// The message and its notes without source context (for logs and tests).
impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}[{}]: {}",
            self.0.severity, self.0.code, self.0.message
        )?;
        for note in &self.0.notes {
            write!(f, "; note: {}", note.text)?;
        }
        if let Some(hint) = &self.0.hint {
            write!(f, "; hint: {hint}")?;
        }
        Ok(())
    }
}

/// A set of diagnostics for one plan, in source order.
#[derive(Debug, Default, Clone)]
pub struct Diagnostics(Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.0.push(diagnostic);
    }

    pub fn extend(&mut self, more: impl IntoIterator<Item = Diagnostic>) {
        self.0.extend(more);
    }

    pub fn has_errors(&self) -> bool {
        self.0.iter().any(|d| d.0.severity == Severity::Error)
    }

    pub fn count(&self, severity: Severity) -> usize {
        self.0.iter().filter(|d| d.0.severity == severity).count()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }

    /// Locates every diagnostic and sorts them by position, errors first on a tie.
    pub fn finish(self, spans: Option<&SpanMap>, source: &SourceFile) -> Self {
        let mut all: Vec<Diagnostic> = match spans {
            Some(spans) => self
                .0
                .into_iter()
                .map(|d| d.locate(spans, source))
                .collect(),
            None => self.0,
        };
        all.sort_by_key(|d| {
            (
                d.0.span.map(|s| (s.start.line, s.start.column)),
                d.0.severity,
            )
        });
        Self(all)
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl FromIterator<Diagnostic> for Diagnostics {
    fn from_iter<I: IntoIterator<Item = Diagnostic>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Position;

    #[test]
    fn renders_location_source_line_and_caret() {
        let source = SourceFile::new("plan.yaml", "a: 1\nslots: 4\n");
        let start = Position {
            offset: 5,
            line: 2,
            column: 1,
        };
        let end = Position {
            offset: 10,
            line: 2,
            column: 6,
        };
        let text = Diagnostic::error("schema", "unknown key `slots`")
            .at(Span { start, end })
            .with_pointer("/slots")
            .with_hint("did you mean `slot`?")
            .render(&source);
        assert_eq!(
            text,
            "plan.yaml:2:1: error[schema]: unknown key `slots`\n  |\n2 | slots: 4\n  | ^^^^^\n  = path: /slots\n  = hint: did you mean `slot`?\n"
        );
    }
}
