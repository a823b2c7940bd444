//! Text as a printed page needs it: summaries written for the terminal (with `backticks`)
//! as code, long paths and digests breakable only where a reader expects a break.

use super::escape;

/// Escapes `text` and turns each pair of backticks into `<code>`; a lone backtick stays as
/// it is. Inside code, a line may break after `/`, `-`, `_` and `.` — never inside a word.
pub fn rich(text: &str) -> String {
    let parts: Vec<&str> = text.split('`').collect();
    let mut out = String::with_capacity(text.len() + 16);
    // An odd number of backticks leaves the last one without a pair: kept literal.
    let paired = if parts.len().is_multiple_of(2) {
        parts.len() - 2
    } else {
        parts.len() - 1
    };
    for (i, part) in parts.iter().enumerate() {
        if i % 2 == 1 && i <= paired {
            out.push_str("<code>");
            out.push_str(&breakable(part));
            out.push_str("</code>");
        } else if i > paired && part.ends_with('…') {
            // A summary cut short inside its code: the code runs to the cut.
            out.push_str("<code>");
            out.push_str(&breakable(part));
            out.push_str("</code>");
        } else {
            if i > paired {
                out.push('`');
            }
            out.push_str(&escape(part));
        }
    }
    out
}

/// `text` escaped, with a break opportunity after each path or name separator.
pub fn breakable(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        out.push_str(&escape(c.encode_utf8(&mut [0; 4])));
        if matches!(c, '/' | '-' | '_' | '.') {
            out.push_str("<wbr>");
        }
    }
    out
}

/// A hex digest in groups of 16, which wrap whole (a search without spaces still finds it).
pub fn digest(hex: &str) -> String {
    let groups: Vec<String> = hex
        .as_bytes()
        .chunks(16)
        .map(|c| escape(&String::from_utf8_lossy(c)))
        .collect();
    format!("<span class=\"digest\">{}</span>", groups.join("<wbr>"))
}

/// A path as code that breaks after its slashes.
pub fn path(p: &str) -> String {
    format!("<code>{}</code>", breakable(p))
}

/// A time that may break after its `T` (narrow columns).
pub fn time(t: &str) -> String {
    escape(t).replacen('T', "T<wbr>", 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rich_renders_backticks_as_code() {
        assert_eq!(
            rich("stopped `apps` for token `ep11`"),
            "stopped <code>apps</code> for token <code>ep11</code>"
        );
        assert_eq!(rich("a lone ` stays"), "a lone ` stays");
        assert_eq!(rich("`a` and ` lone"), "<code>a</code> and ` lone");
        assert_eq!(
            rich("kept at `/a/b…"),
            "kept at <code>/<wbr>a/<wbr>b…</code>"
        );
        assert_eq!(rich("<b>`&`</b>"), "&lt;b&gt;<code>&amp;</code>&lt;/b&gt;");
    }

    #[test]
    fn paths_break_after_slashes() {
        assert_eq!(rich("`/var/lib`"), "<code>/<wbr>var/<wbr>lib</code>");
        assert_eq!(path("/a/b"), "<code>/<wbr>a/<wbr>b</code>");
    }

    #[test]
    fn digests_break_between_groups() {
        let hex = "0123456789abcdef".repeat(4);
        let html = digest(&hex);
        assert_eq!(html.matches("<wbr>").count(), 3);
        assert_eq!(
            html.replace("<wbr>", "")
                .replace("<span class=\"digest\">", "")
                .replace("</span>", ""),
            hex
        );
    }
}
