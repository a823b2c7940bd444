//! `ep11tok.conf`, read the way openCryptoki 3.19+ reads it (its generic config lexer, then the
//! EP11 token's keyword pass), and its `EXPECTED_WKVP` rewritten without touching anything else.
//!
//! opencryptoki-ep11.md 3.2. The token's lexer (`usr/lib/config/cfglex.l`): blanks separate
//! tokens, `#` starts a comment up to the end of the line, `"…"` is a string (it may span
//! lines), numbers are `0|[1-9][0-9]*` or `0x[0-9a-fA-F]+`, words are
//! `[a-zA-Z./][a-zA-Z0-9_\-./]*`. Where the token would silently split or drop text (`013` is
//! read as `0` and `13`), this parser refuses it instead.

use std::ops::Range;

use crate::model::{Apqn, Wkvp};

/// What mkplan needs from the token's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ep11Config {
    pub apqns: ApqnMode,
    pub expected_wkvp: Option<Wkvp>,
}

/// `APQN_ALLOWLIST … END` (in file order, duplicates dropped) or `APQN_ANY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApqnMode {
    Allowlist(Vec<Apqn>),
    Any,
}

/// Why the file is not a configuration the token would start with. The message names the
/// line; the caller adds the file's path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConfigError {
    /// The 1-based line, if the problem is on one.
    pub line: Option<usize>,
    pub message: String,
}

const WKVP_FORM: &str = "write `EXPECTED_WKVP \"0x<32 hex digits>\"`";

/// Parses `ep11tok.conf` text.
pub fn parse(text: &str) -> Result<Ep11Config, ConfigError> {
    Ok(analyse(text)?.0)
}

/// `text` with the hex inside the `EXPECTED_WKVP` quotes replaced by `new` (a `0x` prefix and
/// uppercase hex stay as they were; all old digits go, so a 64-digit value becomes the 32 that
/// count); every other byte is unchanged. `None` when the file has no `EXPECTED_WKVP`.
pub fn rewrite_expected_wkvp(text: &str, new: &Wkvp) -> Result<Option<String>, ConfigError> {
    let Some((line, span)) = analyse(text)?.1 else {
        return Ok(None);
    };
    let old = &text[span.clone()];
    let prefix = if old.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("0x")) {
        2
    } else {
        0
    };
    let digits = &old[prefix..];
    let upper = digits.bytes().any(|b| b.is_ascii_uppercase())
        && !digits.bytes().any(|b| b.is_ascii_lowercase());
    let hex = hex::encode(new.bytes());
    let hex = if upper { hex.to_uppercase() } else { hex };
    let out = format!("{}{hex}{}", &text[..span.start + prefix], &text[span.end..]);
    // Belt and braces: the rewritten file must read back as exactly the new WKVP.
    if analyse(&out)?.0.expected_wkvp.as_ref() != Some(new) {
        return Err(error(
            line,
            "EXPECTED_WKVP does not read back as the new WKVP",
        ));
    }
    Ok(Some(out))
}

pub(crate) fn error(line: usize, message: impl Into<String>) -> ConfigError {
    let (line, message) = (Some(line), message.into());
    ConfigError { line, message }
}

/// The token's own wording (opencryptoki-ep11.md 3.2).
fn unexpected(token: &str, line: usize, expected: Option<&str>) -> ConfigError {
    let expected = expected
        .map(|e| format!(", expected {e}"))
        .unwrap_or_default();
    let message = format!(
        "unexpected token '{token}' at line {line}{expected}; the EP11 token does not start \
         with this file either"
    );
    error(line, message)
}

pub(crate) fn end_of_file(line: usize, expected: &str) -> ConfigError {
    let message = format!("unexpected end of file after line {line}, expected {expected}");
    error(line, message)
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Tok {
    Eol,
    Equal,
    /// `{ } ( ) ,` and `1.2` versions: the generic parser knows them, EP11 uses none.
    Other,
    Number(u64),
    Word,
    /// A quoted string; the token's span is what is between the quotes.
    Str,
}

pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) line: usize,
    pub(crate) span: Range<usize>,
}

/// The lexer (cfglex.l), stricter where the token would guess.
pub(crate) fn lex(text: &str) -> Result<Vec<Token>, ConfigError> {
    let bytes = text.as_bytes();
    let word_start = |c: u8| c.is_ascii_alphabetic() || c == b'.' || c == b'/';
    let word_byte = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b'/');
    let (mut i, mut line, mut tokens) = (0, 1, Vec::new());
    while i < bytes.len() {
        let start = i;
        i += 1;
        let (tok, span) = match bytes[start] {
            // `\r` is no blank to the token, but its lexer drops it (flex's default rule), so
            // CRLF files work there: treat it as a blank.
            b' ' | b'\t' | b'\r' => continue,
            b'#' => {
                i = text[start..].find('\n').map_or(text.len(), |n| start + n);
                continue;
            }
            b'\n' => (Tok::Eol, start..i),
            b'=' => (Tok::Equal, start..i),
            b'{' | b'}' | b'(' | b')' | b',' => (Tok::Other, start..i),
            b'"' => {
                let end = text[i..].find('"').map(|n| i + n).ok_or_else(|| {
                    error(line, format!("unterminated string starting at line {line}"))
                })?;
                i = end + 1;
                (Tok::Str, start + 1..end)
            }
            b'0'..=b'9' => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'.') {
                    i += 1;
                }
                (number(&text[start..i], line)?, start..i)
            }
            c if word_start(c) => {
                while i < bytes.len() && word_byte(bytes[i]) {
                    i += 1;
                }
                (Tok::Word, start..i)
            }
            _ => {
                let end = text[start..]
                    .find(char::is_whitespace)
                    .map_or(text.len(), |n| start + n);
                return Err(bad_text(&text[start..end], line));
            }
        };
        tokens.push(Token { tok, line, span });
        line += text[start..i].matches('\n').count();
    }
    Ok(tokens)
}

fn bad_text(text: &str, line: usize) -> ConfigError {
    let message = format!(
        "`{text}` at line {line} is not a number, a word or a quoted string; quote values such \
         as paths and WKVPs"
    );
    error(line, message)
}

/// A run of characters that starts with a digit: one number, or an error where the token's
/// lexer would cut it into several tokens.
fn number(text: &str, line: usize) -> Result<Tok, ConfigError> {
    let digits = |s: &str, radix| !s.is_empty() && s.chars().all(|c| c.is_digit(radix));
    if let Some(hex) = text.strip_prefix("0x").filter(|hex| digits(hex, 16)) {
        // Too large for u64 is out of range 0..255 all the same.
        return Ok(Tok::Number(
            u64::from_str_radix(hex, 16).unwrap_or(u64::MAX),
        ));
    }
    if let Some((major, minor)) = text.split_once('.')
        && digits(major, 10)
        && digits(minor, 10)
    {
        return Ok(Tok::Other);
    }
    if !digits(text, 10) {
        return Err(bad_text(text, line));
    }
    if text.len() > 1 && text.starts_with('0') {
        // opencryptoki-ep11.md 3.2: 3.19+ has no octal; `013` lexes as `0` and `13`.
        let message = format!(
            "`{text}` at line {line} has a leading zero; openCryptoki 3.19+ reads it as two \
             numbers (`0` and the rest): write decimal without leading zeros, or `0x` hex (the \
             sample file's claim that octal works is stale)"
        );
        return Err(error(line, message));
    }
    Ok(Tok::Number(text.parse().unwrap_or(u64::MAX)))
}

/// One configuration element, as the generic parser builds them.
enum Elem<'t> {
    /// `WORD` alone.
    Bare(&'t Token),
    /// `"…"` alone: the value of a preceding `EXPECTED_WKVP`, `CPFILTER`, ….
    BareString(&'t Token),
    /// `KEY = value`, on one line.
    KeyValue(&'t Token, &'t Token),
    /// `KEY <n> <n> … WORD`: the allowlist shape.
    NumberList(&'t Token, Vec<&'t Token>, &'t Token),
}

impl Elem<'_> {
    /// The token that names this element in messages.
    fn head(&self) -> &Token {
        match self {
            Elem::Bare(t) | Elem::BareString(t) | Elem::KeyValue(t, _) => t,
            Elem::NumberList(t, ..) => t,
        }
    }
}

fn elements<'t>(text: &str, tokens: &'t [Token]) -> Result<Vec<Elem<'t>>, ConfigError> {
    let shown = |t: &Token| unexpected(&text[t.span.clone()], t.line, None);
    let mut out = Vec::new();
    let mut it = tokens.iter().filter(|t| t.tok != Tok::Eol).peekable();
    while let Some(t) = it.next() {
        match t.tok {
            Tok::Word => {}
            Tok::Str => {
                out.push(Elem::BareString(t));
                continue;
            }
            _ => return Err(shown(t)),
        }
        let next = it.peek().map(|next| next.tok);
        if out.is_empty() && &text[t.span.clone()] == "version" {
            // `version <word>` is a file version only as the first element (cfglex.l).
            match it.next() {
                Some(v) if v.tok == Tok::Word => continue,
                Some(other) => return Err(shown(other)),
                None => return Err(end_of_file(t.line, "a file version")),
            }
        }
        match next {
            Some(Tok::Equal) => {
                let equal = it.next().expect("peeked");
                match it.next() {
                    // The generic grammar allows no newline around `=`.
                    Some(v) if equal.line == t.line && v.line == t.line => {
                        out.push(Elem::KeyValue(t, v));
                    }
                    Some(other) => return Err(shown(other)),
                    None => return Err(end_of_file(t.line, "a value after `=`")),
                }
            }
            Some(Tok::Number(_)) => {
                let mut numbers = Vec::new();
                while let Some(n) = it.next_if(|n| matches!(n.tok, Tok::Number(_))) {
                    numbers.push(n);
                }
                match it.next() {
                    Some(end) if end.tok == Tok::Word => {
                        out.push(Elem::NumberList(t, numbers, end));
                    }
                    Some(other) => {
                        return Err(unexpected(
                            &text[other.span.clone()],
                            other.line,
                            Some("END"),
                        ));
                    }
                    None => return Err(end_of_file(t.line, "END")),
                }
            }
            _ => out.push(Elem::Bare(t)),
        }
    }
    Ok(out)
}

/// The configuration, and where `EXPECTED_WKVP`'s value is: its line and the bytes inside the
/// quotes.
type Analysis = (Ep11Config, Option<(usize, Range<usize>)>);

/// The EP11 token's keyword pass (`read_adapter_config_file`, opencryptoki-ep11.md 3.2).
fn analyse(text: &str) -> Result<Analysis, ConfigError> {
    let tokens = lex(text)?;
    let elems = elements(text, &tokens)?;
    let last_line = tokens.last().map_or(1, |t| t.line);
    let word = |t: &Token| &text[t.span.clone()];
    let (mut allowlist, mut any, mut fips, mut strict) = (None, None, None, false);
    let mut wkvp: Option<(usize, Range<usize>)> = None;
    let mut apqns: Vec<Apqn> = Vec::new();
    let mut iter = elems.iter();
    while let Some(elem) = iter.next() {
        let (key, line) = (word(elem.head()), elem.head().line);
        let value = match elem {
            Elem::KeyValue(_, value) if matches!(value.tok, Tok::Word | Tok::Str) => Some(*value),
            Elem::KeyValue(..) | Elem::BareString(_) => return Err(unexpected(key, line, None)),
            Elem::NumberList(_, numbers, end) => {
                if !matches!(key, "APQN_ALLOWLIST" | "APQN_WHITELIST") || word(end) != "END" {
                    return Err(unexpected(key, line, Some("APQN_ALLOWLIST ... END")));
                }
                allowlist.get_or_insert(line);
                add_pairs(&mut apqns, numbers, line)?;
                continue;
            }
            Elem::Bare(_) => match key {
                "APQN_ANY" => {
                    any.get_or_insert(line);
                    None
                }
                // No numbers before the next word: the token calls the keyword unexpected;
                // say what is wrong instead.
                "APQN_ALLOWLIST" | "APQN_WHITELIST" => {
                    let message = format!(
                        "At least one APQN needs to be defined in the config file: {key} at \
                         line {line} lists none"
                    );
                    return Err(error(line, message));
                }
                "FORCE_SENSITIVE" | "OPTIMIZE_SINGLE_PART_OPERATIONS" | "USE_PRANDOM" => None,
                "STRICT_MODE" | "VHSM_MODE" => {
                    strict = true;
                    None
                }
                "FIPS_SESSION_MODE" => {
                    fips.get_or_insert(line);
                    None
                }
                // The value is the next element, wherever it is (`ep11_config_next`).
                "CPFILTER" | "DIGEST_LIBICA" | "PKEY_MODE" | "EXPECTED_WKVP" => {
                    let (expected, string, bare) = match key {
                        "CPFILTER" => ("CP-Filter config file name", true, true),
                        "DIGEST_LIBICA" => ("libica path, 'DEFAULT', or 'OFF'", true, true),
                        "PKEY_MODE" => ("PKEY mode", false, true),
                        _ => ("WKID as quoted hex string", true, false),
                    };
                    let next = iter
                        .next()
                        .ok_or_else(|| end_of_file(last_line, expected))?;
                    match next {
                        Elem::BareString(v) if string => Some(*v),
                        Elem::Bare(v) if bare => Some(*v),
                        other => {
                            let head = other.head();
                            return Err(unexpected(word(head), head.line, Some(expected)));
                        }
                    }
                }
                _ => return Err(unexpected(key, line, None)),
            },
        };
        let Some(value) = value else { continue };
        match key {
            "CPFILTER" | "DIGEST_LIBICA" => {}
            "PKEY_MODE" => pkey_mode(word(value), line)?,
            "EXPECTED_WKVP" if value.tok == Tok::Str => {
                if let Some((first, _)) = &wkvp {
                    let message = format!(
                        "EXPECTED_WKVP appears at lines {first} and {line}; the token uses the \
                         last one: keep only one"
                    );
                    return Err(error(line, message));
                }
                wkvp_value(word(value), line)?;
                wkvp = Some((line, value.span.clone()));
            }
            "EXPECTED_WKVP" => {
                let message = format!("EXPECTED_WKVP at line {line} is not quoted; {WKVP_FORM}");
                return Err(error(line, message));
            }
            _ => return Err(unexpected(key, line, None)),
        }
    }

    // The token's start-up checks, in its words.
    if let Some(line) = fips.filter(|_| strict) {
        let message = "FIPS_SESSION_MODE can not be enabled together with STRICT_MODE or \
                       VHSM_MODE";
        return Err(error(line, format!("{message} (line {line})")));
    }
    let apqns = match (allowlist, any) {
        (None, None) => {
            let message = "At least one APQN mode needs to be present in config file: \
                           APQN_ALLOWLIST or APQN_ANY";
            return Err(ConfigError {
                line: None,
                message: message.into(),
            });
        }
        (Some(a), Some(b)) => {
            let message = format!(
                "Only one APQN mode can be present in config file: APQN_ALLOWLIST (line {a}) \
                 or APQN_ANY (line {b})"
            );
            return Err(error(a.max(b), message));
        }
        (Some(_), None) => ApqnMode::Allowlist(apqns),
        (None, Some(_)) => ApqnMode::Any,
    };
    let expected_wkvp = match &wkvp {
        Some((line, span)) => Some(wkvp_value(&text[span.clone()], *line)?),
        None => None,
    };
    let config = Ep11Config {
        apqns,
        expected_wkvp,
    };
    Ok((config, wkvp))
}

/// `<adapter> <domain>` pairs, each 0..255 (`ep11_config_add_apqn`); they may run across lines.
fn add_pairs(apqns: &mut Vec<Apqn>, numbers: &[&Token], line: usize) -> Result<(), ConfigError> {
    let value = |what: &str, t: &Token| {
        let Tok::Number(n) = t.tok else {
            unreachable!("only numbers are collected")
        };
        u8::try_from(n).map_err(|_| {
            error(
                t.line,
                format!("{what} {n} at line {} is out of range 0..255", t.line),
            )
        })
    };
    for pair in numbers.chunks(2) {
        let [adapter, domain] = pair else {
            let message = format!(
                "the APQN list at line {line} ends with an adapter without a domain (line {}): \
                 list `<adapter> <domain>` pairs",
                pair[0].line
            );
            return Err(error(pair[0].line, message));
        };
        let apqn = Apqn::new(value("adapter", adapter)?, value("domain", domain)?);
        if !apqns.contains(&apqn) {
            apqns.push(apqn);
        }
    }
    Ok(())
}

fn pkey_mode(mode: &str, line: usize) -> Result<(), ConfigError> {
    const MODES: [&str; 5] = [
        "DISABLED",
        "DEFAULT",
        "ENABLE4NONEXTR",
        "ENABLE4EXTR",
        "ENABLE4ALL",
    ];
    if MODES.contains(&mode) {
        return Ok(());
    }
    let message = format!(
        "unsupported PKEY mode '{mode}' at line {line}; use one of {}",
        MODES.join(", ")
    );
    Err(error(line, message))
}

/// `ep11_config_set_wkvp`: an optional `0x` (any case), then at least 32 hex digits, of which
/// the first 32 count; the token ignores anything after them (opencryptoki-ep11.md 3.2).
fn wkvp_value(value: &str, line: usize) -> Result<Wkvp, ConfigError> {
    let hex = match value.get(..2) {
        Some(p) if p.eq_ignore_ascii_case("0x") => &value[2..],
        _ => value,
    };
    let problem = match hex.get(..32) {
        None => "is shorter than 32 hex digits",
        Some(first) if !first.bytes().all(|b| b.is_ascii_hexdigit()) => {
            "is not hex in its first 32 digits"
        }
        Some(first) => return Ok(Wkvp::parse(first).expect("32 hex digits").0),
    };
    let message = format!("EXPECTED_WKVP `{value}` at line {line} {problem}; {WKVP_FORM}");
    Err(error(line, message))
}
#[cfg(test)]
mod tests {
    use super::*;

    const WKVP: &str = "00112233445566778899aabbccddeeff";
    const NEW: &str = "ffeeddccbbaa99887766554433221100";

    /// The shape of the shipped sample: every keyword documented in comments, `APQN_ANY` set.
    const SAMPLE: &str = "#\n# EP11 token configuration\n#\n#      FORCE_SENSITIVE\n#\n\
        #      CPFILTER /etc/opencryptoki/ep11cpfilter.conf\n#\n\
        #       EXPECTED_WKVP \"<wkvp as 16 bytes hex string>\"\n#\n\
        #      APQN_ALLOWLIST\n#       8 13\n#      10 13\n#      END\n#\n\
        #      The adapter and domain may be given in decimal,\n\
        #      octal (with leading 0) or hexadecimal (with leading 0x):\n#\n\
        #      APQN_ALLOWLIST\n#       8    0x0d\n#       0x0a 13\n#      END\n#\n\
        #      APQN_ANY\n#\n\nAPQN_ANY\n";

    fn wkvp(hex: &str) -> Wkvp {
        Wkvp::parse(hex).unwrap().0
    }

    fn allowlist(pairs: &[(u8, u8)]) -> ApqnMode {
        ApqnMode::Allowlist(pairs.iter().map(|&(a, d)| Apqn::new(a, d)).collect())
    }

    fn error(text: &str) -> ConfigError {
        parse(text).unwrap_err()
    }

    #[test]
    fn the_sample_and_allowlist_shapes_parse() {
        let sample = parse(SAMPLE).unwrap();
        assert_eq!(sample.apqns, ApqnMode::Any);
        assert_eq!(sample.expected_wkvp, None);

        let text = "APQN_ALLOWLIST\n 8 13\n10 13\nEND\n";
        assert_eq!(parse(text).unwrap().apqns, allowlist(&[(8, 13), (10, 13)]));
        // Hex, several pairs on a line, a pair split across lines, comments anywhere, the
        // old keyword, CRLF line ends, and a duplicate dropped.
        let text = "# tokens\r\nAPQN_WHITELIST # list\r\n 8    0x0d 0x0a 13 # two\r\n\
                    0xff\r\n 255\r\n8 13\r\nEND # done\r\n";
        assert_eq!(
            parse(text).unwrap().apqns,
            allowlist(&[(8, 13), (10, 13), (255, 255)])
        );
        assert_eq!(
            parse("APQN_ALLOWLIST 0 0 END").unwrap().apqns,
            allowlist(&[(0, 0)])
        );
    }

    #[test]
    fn the_other_keywords_are_accepted() {
        let text = "version opencryptoki-3.27\nFORCE_SENSITIVE\nSTRICT_MODE\nVHSM_MODE\n\
                    OPTIMIZE_SINGLE_PART_OPERATIONS\nCPFILTER /etc/opencryptoki/ep11cpfilter.conf\n\
                    DIGEST_LIBICA OFF\nUSE_PRANDOM\nPKEY_MODE ENABLE4NONEXTR\n\
                    CPFILTER = \"/etc/opencryptoki/my filter.conf\"\nPKEY_MODE = DISABLED\n\
                    DIGEST_LIBICA = DEFAULT\nDIGEST_LIBICA \"/usr/lib/libica.so.4\"\nAPQN_ANY\n";
        assert_eq!(parse(text).unwrap().apqns, ApqnMode::Any);
        assert!(parse("FIPS_SESSION_MODE\nAPQN_ANY\n").is_ok());
    }

    #[test]
    fn expected_wkvp_in_both_forms() {
        for text in [
            format!("APQN_ANY\nEXPECTED_WKVP \"0x{WKVP}\"\n"),
            format!("APQN_ANY\nEXPECTED_WKVP \"{WKVP}\"\n"),
            format!("APQN_ANY\nEXPECTED_WKVP = \"0X{}\"\n", WKVP.to_uppercase()),
            format!(
                "EXPECTED_WKVP\n  \"{WKVP}\" # on the next line, as the token allows\nAPQN_ANY"
            ),
            // Extra characters after 32 hex digits are ignored, as the token does.
            format!("APQN_ANY\nEXPECTED_WKVP \"0x{WKVP}{NEW}\"\n"),
            format!("APQN_ANY\nEXPECTED_WKVP \"{WKVP} trailing\"\n"),
        ] {
            assert_eq!(
                parse(&text).unwrap().expected_wkvp,
                Some(wkvp(WKVP)),
                "{text}"
            );
        }
    }

    #[test]
    fn errors_carry_the_line_and_the_tokens_wording() {
        let e = error("APQN_ANY\n# fine\nFOO\n");
        assert_eq!(e.line, Some(3));
        assert!(
            e.to_string()
                .starts_with("unexpected token 'FOO' at line 3"),
            "{e}"
        );
        let e = error("APQN_ANY\nFOO = bar\n");
        assert!(
            e.to_string()
                .starts_with("unexpected token 'FOO' at line 2"),
            "{e}"
        );
        let e = error("APQN_ANY\nSTRICT_MODE = 1\n");
        assert!(
            e.to_string()
                .starts_with("unexpected token 'STRICT_MODE' at line 2"),
            "{e}"
        );
        let e = error("APQN_ANY\n\"stray\"\n");
        assert!(
            e.to_string()
                .starts_with("unexpected token 'stray' at line 2"),
            "{e}"
        );
        let e = error("APQN_ANY\nLIST 1 2 END\n");
        assert!(
            e.to_string().contains("expected APQN_ALLOWLIST ... END"),
            "{e}"
        );
        let e = error("APQN_ALLOWLIST 8 13 STOP\n");
        assert!(
            e.to_string()
                .contains("'APQN_ALLOWLIST' at line 1, expected APQN_ALLOWLIST")
        );
        let e = error("APQN_ANY\nslot { x = 1 }\n");
        assert_eq!(e.line, Some(2), "{e}");
        let e = error("APQN_ANY\nPKEY_MODE\n");
        assert!(
            e.to_string()
                .contains("end of file after line 2, expected PKEY mode"),
            "{e}"
        );
        let e = error("APQN_ANY\nPKEY_MODE\n\"DEFAULT\"\n");
        assert!(e.to_string().contains("expected PKEY mode"), "{e}");
        let e = error("APQN_ANY\nPKEY_MODE FAST\n");
        assert!(
            e.to_string()
                .starts_with("unsupported PKEY mode 'FAST' at line 2"),
            "{e}"
        );
        let e = error("APQN_ANY\nFIPS_SESSION_MODE\nSTRICT_MODE\n");
        assert_eq!(e.line, Some(2), "{e}");
        assert!(
            e.to_string()
                .starts_with("FIPS_SESSION_MODE can not be enabled"),
            "{e}"
        );
        let e = error("APQN_ANY @x\n");
        assert_eq!(e.line, Some(1));
        assert!(
            e.to_string().starts_with("`@x` at line 1 is not a number"),
            "{e}"
        );
        let e = error("APQN_ANY\nCPFILTER \"/etc/x\n");
        assert_eq!(e.to_string(), "unterminated string starting at line 2");
    }

    #[test]
    fn apqn_modes_and_numbers_are_checked() {
        let e = error("FORCE_SENSITIVE\n");
        assert_eq!(
            e.to_string(),
            "At least one APQN mode needs to be present in config file: APQN_ALLOWLIST or APQN_ANY"
        );
        assert_eq!(e.line, None);
        let e = error("APQN_ALLOWLIST 8 13 END\nAPQN_ANY\n");
        assert!(
            e.to_string()
                .starts_with("Only one APQN mode can be present"),
            "{e}"
        );
        let e = error("APQN_ALLOWLIST\nEND\n");
        assert_eq!(e.line, Some(1), "{e}");
        assert!(
            e.to_string()
                .starts_with("At least one APQN needs to be defined")
        );
        // A leading zero is not octal in 3.19+ (opencryptoki-ep11.md 3.2).
        let e = error("APQN_ALLOWLIST\n 8 13\n 10 013\nEND\n");
        assert_eq!(e.line, Some(3));
        assert!(
            e.to_string().contains("`013`") && e.to_string().contains("stale"),
            "{e}"
        );
        let e = error("APQN_ALLOWLIST 08 1 END");
        assert!(e.to_string().contains("leading zero"), "{e}");
        let e = error("APQN_ALLOWLIST\n256 1\nEND\n");
        assert_eq!(
            e.to_string(),
            "adapter 256 at line 2 is out of range 0..255"
        );
        let e = error("APQN_ALLOWLIST 1\n0x100 END\n");
        assert_eq!(e.to_string(), "domain 256 at line 2 is out of range 0..255");
        let e = error("APQN_ALLOWLIST 1 0xfffffffffffffffffff END\n");
        assert!(e.to_string().contains("is out of range 0..255"), "{e}");
        let e = error("APQN_ALLOWLIST 8 END");
        assert!(e.to_string().contains("an adapter without a domain"), "{e}");
        let e = error("APQN_ALLOWLIST 8 13\n");
        assert_eq!(
            e.to_string(),
            "unexpected end of file after line 1, expected END"
        );
        for bad in ["0X0a", "10abc", "0xg1", "1.2.3"] {
            let text = format!("APQN_ALLOWLIST {bad} 1 END");
            let e = error(&text);
            assert!(
                e.to_string().contains("is not a number, a word"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn bad_expected_wkvp_is_refused() {
        let cases = [
            ("EXPECTED_WKVP \"0x0011\"", "shorter than 32"),
            (&*format!("EXPECTED_WKVP \"{}zz\"", &WKVP[..30]), "not hex"),
            (
                &*format!("EXPECTED_WKVP = {WKVP}"),
                "not a number, a word or a quoted string",
            ),
            ("EXPECTED_WKVP = abcdef", "not quoted"),
            ("EXPECTED_WKVP\n", "expected WKID as quoted hex string"),
            ("EXPECTED_WKVP FOO", "expected WKID as quoted hex string"),
            (
                &*format!("EXPECTED_WKVP \"{WKVP}\"\nEXPECTED_WKVP \"{NEW}\""),
                "lines 2 and 3",
            ),
        ];
        for (line, want) in cases {
            let e = error(&format!("APQN_ANY\n{line}\n"));
            assert!(e.to_string().contains(want), "{line}: {e}");
        }
    }

    #[test]
    fn rewrite_changes_only_the_hex() {
        let text = format!(
            "# keep   this\r\nAPQN_ALLOWLIST\t8 13 # x\r\nEND\r\n\r\n  EXPECTED_WKVP   =  \"0x{WKVP}\"  # old\r\n\tFORCE_SENSITIVE\r\n"
        );
        let out = rewrite_expected_wkvp(&text, &wkvp(NEW)).unwrap().unwrap();
        assert_eq!(out, text.replace(WKVP, NEW));
        assert_eq!(out.len(), text.len());
        assert_eq!(parse(&out).unwrap().expected_wkvp, Some(wkvp(NEW)));

        // No `0x` stays without; uppercase stays uppercase; 64 digits become the 32 that count.
        let plain = format!("APQN_ANY\nEXPECTED_WKVP \"{WKVP}\"\n");
        let out = rewrite_expected_wkvp(&plain, &wkvp(NEW)).unwrap().unwrap();
        assert_eq!(out, format!("APQN_ANY\nEXPECTED_WKVP \"{NEW}\"\n"));
        let upper = format!("APQN_ANY\nEXPECTED_WKVP \"0X{}\"\n", WKVP.to_uppercase());
        let out = rewrite_expected_wkvp(&upper, &wkvp(NEW)).unwrap().unwrap();
        assert_eq!(
            out,
            format!("APQN_ANY\nEXPECTED_WKVP \"0X{}\"\n", NEW.to_uppercase())
        );
        let long = format!("APQN_ANY\nEXPECTED_WKVP \"0x{WKVP}{WKVP}\"\n");
        let out = rewrite_expected_wkvp(&long, &wkvp(NEW)).unwrap().unwrap();
        assert_eq!(out, format!("APQN_ANY\nEXPECTED_WKVP \"0x{NEW}\"\n"));
    }

    #[test]
    fn rewrite_leaves_comments_alone_and_refuses_bad_files() {
        // The sample mentions EXPECTED_WKVP only in a comment.
        assert_eq!(rewrite_expected_wkvp(SAMPLE, &wkvp(NEW)).unwrap(), None);
        let with = format!("{SAMPLE}EXPECTED_WKVP \"{WKVP}\"\n");
        let out = rewrite_expected_wkvp(&with, &wkvp(NEW)).unwrap().unwrap();
        assert_eq!(out, format!("{SAMPLE}EXPECTED_WKVP \"{NEW}\"\n"));
        assert!(out.contains("#       EXPECTED_WKVP \"<wkvp as 16 bytes hex string>\""));
        let bad = format!("APQN_ANY\nAPQN_ALLOWLIST 1 2 END\nEXPECTED_WKVP \"{WKVP}\"\n");
        assert!(rewrite_expected_wkvp(&bad, &wkvp(NEW)).is_err());
    }
}
