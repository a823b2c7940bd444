//! The human rendering of a diagnostic: `file:line:col`, the source line with a caret, then
//! the path, notes and hint. Plan text reaches the operator's terminal here, so every
//! control character in it is escaped (a plan must not be able to move the cursor or clear
//! the screen), tabs are shown as `→`, and carets are placed by displayed width.

use std::borrow::Cow;
use std::fmt::Write as _;

use crate::diagnostic::{Diagnostic, display_pointer};
use crate::source::SourceFile;

/// Source lines longer than this (in displayed columns) are cut to a window around the caret.
const MAX_SHOWN_LINE: usize = 120;

impl Diagnostic {
    /// `file:line:col: severity[code]: message`, the source line with a caret, then the
    /// path, notes and hint.
    pub fn render(&self, source: &SourceFile) -> String {
        let mut out = String::new();
        let name = source.name().display().to_string();
        let name = escape_for_terminal(&name);
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
            self.0.severity,
            self.0.code,
            escape_for_terminal(&self.0.message)
        );
        if let Some(span) = self.0.span
            && let Some(line) = source.line_text(span.start.line)
        {
            let number = span.start.line.to_string();
            let gutter = " ".repeat(number.len());
            let start = span.start.column.saturating_sub(1);
            let end = if span.end.line == span.start.line {
                span.end.column.saturating_sub(1)
            } else {
                usize::MAX
            };
            let excerpt = Excerpt::new(line, start, end);
            let _ = writeln!(out, "{gutter} |");
            let _ = writeln!(out, "{number} | {}", excerpt.shown);
            let _ = write!(
                out,
                "{gutter} | {}{}",
                " ".repeat(excerpt.caret_at),
                "^".repeat(excerpt.caret_width)
            );
            match &self.0.label {
                Some(label) => {
                    let _ = writeln!(out, " {}", escape_for_terminal(label));
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
            let _ = writeln!(
                out,
                "{pad} = path: {}",
                escape_for_terminal(&display_pointer(pointer))
            );
        }
        for note in &self.0.notes {
            let _ = writeln!(out, "{pad} = note: {}", escape_for_terminal(&note.text));
        }
        if let Some(hint) = &self.0.hint {
            let _ = writeln!(out, "{pad} = hint: {}", escape_for_terminal(hint));
        }
        out
    }
}

/// `text` safe to print on a terminal: tabs as `→`, control characters (C0, DEL, C1), line
/// separators and bidirectional overrides as `\u{…}`.
pub fn escape_for_terminal(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(text.chars().map(shown).collect())
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}' | '\u{202a}'
                ..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// How one character is displayed.
fn shown(c: char) -> Cow<'static, str> {
    match c {
        '\t' => Cow::Borrowed("→"),
        c if needs_escape(c) => Cow::Owned(format!("\\u{{{:x}}}", u32::from(c))),
        c => Cow::Owned(c.to_string()),
    }
}

/// Displayed columns of a character as [`shown`] prints it (escapes are ASCII; other
/// characters count one column, which is exact for the Latin text plans are written in).
fn width(c: char) -> usize {
    if needs_escape(c) && c != '\t' {
        shown(c).len()
    } else {
        1
    }
}

/// The part of a source line to show and where the caret goes under it.
#[derive(Debug, PartialEq, Eq)]
struct Excerpt {
    shown: String,
    caret_at: usize,
    caret_width: usize,
}

impl Excerpt {
    /// The line with a caret under characters `start..end` (0-based, clamped to the line;
    /// at least one column wide).
    fn new(line: &str, start: usize, end: usize) -> Self {
        let chars: Vec<char> = line.chars().collect();
        let start = start.min(chars.len());
        let end = end.clamp(start, chars.len());
        let columns = |cs: &[char]| cs.iter().copied().map(width).sum::<usize>();
        let total = columns(&chars);
        let (from, to) = if total <= MAX_SHOWN_LINE {
            (0, chars.len())
        } else {
            // Keep about a third of the window before the caret.
            let mut from = start;
            let mut before = 0;
            while from > 0 && before + width(chars[from - 1]) <= MAX_SHOWN_LINE / 3 {
                from -= 1;
                before += width(chars[from]);
            }
            let mut to = from;
            let mut shown_columns = 0;
            while to < chars.len() && shown_columns + width(chars[to]) <= MAX_SHOWN_LINE {
                shown_columns += width(chars[to]);
                to += 1;
            }
            (from, to.max(start))
        };
        let mut shown = String::new();
        let mut caret_at = columns(&chars[from..start]);
        if from > 0 {
            shown.push('…');
            caret_at += 1;
        }
        shown.extend(chars[from..to].iter().map(|&c| self::shown(c)));
        if to < chars.len() {
            shown.push('…');
        }
        let caret_width = columns(&chars[start..end.min(to)]).max(1);
        Self {
            shown,
            caret_at,
            caret_width,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_the_caret_stays_aligned() {
        // ESC and NUL before the span, a tab inside it.
        let e = Excerpt::new("a\u{1b}[2Jb\0: x\ty", 9, 12);
        assert_eq!(e.shown, "a\\u{1b}[2Jb\\u{0}: x→y");
        assert_eq!((e.caret_at, e.caret_width), (18, 3));
        // Every shown character is one column, so the caret's columns index the characters.
        let under: String = e
            .shown
            .chars()
            .skip(e.caret_at)
            .take(e.caret_width)
            .collect();
        assert_eq!(under, "x→y");
    }

    #[test]
    fn long_lines_are_windowed_around_the_caret() {
        let line = format!("{}X{}", "a".repeat(200), "b".repeat(200));
        let e = Excerpt::new(&line, 200, 201);
        assert!(e.shown.starts_with('…') && e.shown.ends_with('…'));
        assert_eq!(e.shown.chars().nth(e.caret_at), Some('X'));
        assert_eq!(e.caret_width, 1);
    }

    #[test]
    fn messages_are_escaped() {
        assert_eq!(
            escape_for_terminal("key `\u{1b}[31m` \u{202e}x"),
            "key `\\u{1b}[31m` \\u{202e}x"
        );
        assert!(matches!(escape_for_terminal("plain"), Cow::Borrowed(_)));
    }
}
