//! Diagnostics: what is wrong, where (`file:line:col`, the source line, a caret, the JSON
//! path), and what to do about it. Rendered for people or as JSON for editors and CI.

use std::fmt::{self, Write as _};

use serde::Serialize;

use crate::plan::source::{SourceFile, Span};
use crate::plan::yaml::SpanMap;

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
    notes: Vec<String>,
    hint: Option<String>,
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
        self.0.notes.push(note.into());
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

    /// Fills in the span from the pointer, using the nearest node that has a span.
    pub fn locate(mut self, spans: &SpanMap) -> Self {
        if self.0.span.is_none()
            && let Some(pointer) = &self.0.pointer
            && let Some(node) = spans.nearest(pointer)
        {
            self.0.span = Some(match (self.0.anchor, node.key) {
                (Anchor::Key, Some(key)) => key,
                _ => node.value,
            });
        }
        self
    }

    /// `file:line:col: severity[code]: message`, the source line with a caret, then the
    /// path, notes and hint.
    pub fn render(&self, source: &SourceFile) -> String {
        let mut out = String::new();
        let name = source.name().display();
        match self.0.span {
            Some(span) => {
                let _ = write!(out, "{name}:{}:{}: ", span.start.line, span.start.column);
            }
            None => {
                let _ = write!(out, "{name}: ");
            }
        }
        let _ = writeln!(
            out,
            "{}[{}]: {}",
            self.0.severity, self.0.code, self.0.message
        );
        if let Some(span) = self.0.span
            && let Some(line) = source.line_text(span.start.line)
        {
            let number = span.start.line.to_string();
            let gutter = " ".repeat(number.len());
            let chars: Vec<char> = line
                .chars()
                .map(|c| if c == '\t' { ' ' } else { c })
                .collect();
            let start = span.start.column.saturating_sub(1).min(chars.len());
            let end = if span.end.line == span.start.line {
                span.end.column.saturating_sub(1)
            } else {
                chars.len()
            };
            let width = end.saturating_sub(start).max(1);
            let (shown, caret_at, width) = window(&chars, start, width);
            let _ = writeln!(out, "{gutter} |");
            let _ = writeln!(out, "{number} | {shown}");
            let _ = write!(
                out,
                "{gutter} | {}{}",
                " ".repeat(caret_at),
                "^".repeat(width)
            );
            match &self.0.label {
                Some(label) => {
                    let _ = writeln!(out, " {label}");
                }
                None => out.push('\n'),
            }
        }
        let indent = self
            .0
            .span
            .map_or(0, |span| span.start.line.to_string().len());
        let pad = " ".repeat(indent);
        if let Some(pointer) = &self.0.pointer {
            let _ = writeln!(out, "{pad} = path: {}", display_pointer(pointer));
        }
        for note in &self.0.notes {
            let _ = writeln!(out, "{pad} = note: {note}");
        }
        if let Some(hint) = &self.0.hint {
            let _ = writeln!(out, "{pad} = hint: {hint}");
        }
        out
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
            "notes": self.0.notes,
            "hint": self.0.hint,
        })
    }
}

/// Source lines longer than this are cut to a window around the caret.
const MAX_SHOWN_LINE: usize = 120;

/// The part of a line to show, the caret's column in it, and the caret's width.
fn window(chars: &[char], start: usize, width: usize) -> (String, usize, usize) {
    if chars.len() <= MAX_SHOWN_LINE {
        let width = width.min(chars.len().saturating_sub(start)).max(1);
        return (chars.iter().collect(), start, width);
    }
    let from = start.saturating_sub(MAX_SHOWN_LINE / 3);
    let to = (from + MAX_SHOWN_LINE).min(chars.len());
    let mut shown = String::new();
    let mut caret_at = start - from;
    if from > 0 {
        shown.push('…');
        caret_at += 1;
    }
    shown.extend(&chars[from..to]);
    if to < chars.len() {
        shown.push('…');
    }
    let width = width.min(to.saturating_sub(start)).max(1);
    (shown, caret_at, width)
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
            write!(f, "; note: {note}")?;
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
    pub fn finish(self, spans: Option<&SpanMap>) -> Self {
        let mut all: Vec<Diagnostic> = match spans {
            Some(spans) => self.0.into_iter().map(|d| d.locate(spans)).collect(),
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
    use crate::plan::source::Position;

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
