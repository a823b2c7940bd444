//! Plan source text and positions inside it, shared by every diagnostic.

use std::fmt;
use std::path::{Path, PathBuf};

/// A plan's text as read from disk, with the name it is reported under.
#[derive(Debug, Clone)]
pub struct SourceFile {
    name: PathBuf,
    text: String,
}

impl SourceFile {
    pub fn new(name: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            text: text.into(),
        }
    }

    pub fn name(&self) -> &Path {
        &self.name
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// The full text of 1-based line `line`, without its line break.
    pub fn line_text(&self, line: usize) -> Option<&str> {
        self.text
            .split('\n')
            .nth(line.checked_sub(1)?)
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
    }

    /// The byte offset where 1-based line `line` starts.
    pub fn line_start(&self, line: usize) -> Option<usize> {
        if line == 1 {
            return Some(0);
        }
        self.text
            .match_indices('\n')
            .nth(line.checked_sub(2)?)
            .map(|(i, _)| i + 1)
    }

    /// The position of byte offset `offset` (clamped to the text).
    pub fn position_of(&self, offset: usize) -> Position {
        let offset = offset.min(self.text.len());
        let before = &self.text[..floor_char_boundary(&self.text, offset)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Position {
            offset,
            line,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// A point in the source: byte offset, 1-based line and 1-based column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub offset: usize,
    pub line: usize,
    pub column: usize,
}

/// A range of the source text: `start` inclusive, `end` exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: Position,
    pub end: Position,
}

impl Span {
    pub fn point(at: Position) -> Self {
        Self { start: at, end: at }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_characters() {
        let source = SourceFile::new("p.yaml", "a: 1\nname: \"ü x\"\n");
        let at = source.position_of(source.text().find('x').unwrap());
        assert_eq!((at.line, at.column), (2, 10));
        assert_eq!(source.line_text(2), Some("name: \"ü x\""));
        assert_eq!(source.line_text(9), None);
        assert_eq!(source.line_start(2), Some(5));
        assert_eq!(source.line_start(3), Some(source.text().len()));
        assert_eq!(source.line_start(4), None);
    }
}
