//! `ccatok.conf`, read the way the CCA token reads it (openCryptoki's generic config lexer,
//! then `cca_config_parse_exp_mkvps` and the token's keyword pass in `cca_specific.c`), and
//! its `EXPECTED_MKVPS` patterns rewritten without touching anything else (the CCA side of
//! [`crate::ep11conf`]; opencryptoki-ep11.md 5: the concurrent path of 3.21+).
//!
//! ```text
//! version cca-0
//! EXPECTED_MKVPS
//! {
//!   SYM = "<8 bytes hex>"
//!   AES = "<8 bytes hex>"
//!   APKA = "<8 bytes hex>"
//! }
//! ```
//! Keys are case-insensitive; a value is a quoted string of 16 hex digits, `0x` optional
//! (`cca_parse_hex`). The token does not use the ASYM master key, so `ASYM` in the block is an
//! unexpected token and the token does not start. Outside the block the token knows
//! `FORCE_SENSITIVE`, `PKEY_MODE =`, `AES_KEY_MODE =` and `ML_DSA_KEY_MODE =`.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use crate::ep11conf::{ConfigError, Tok, Token, end_of_file, error, lex};

/// The master-key types `EXPECTED_MKVPS` can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConfMkType {
    Sym,
    Aes,
    Apka,
}

impl ConfMkType {
    fn from_key(key: &str) -> Option<Self> {
        [Self::Sym, Self::Aes, Self::Apka]
            .into_iter()
            .find(|mk| mk.name().eq_ignore_ascii_case(key))
    }

    /// As the file spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sym => "SYM",
            Self::Aes => "AES",
            Self::Apka => "APKA",
        }
    }
}

impl fmt::Display for ConfMkType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What mkplan needs from the token's configuration: the expected pattern per MK type (none
/// when the file sets none: the token then checks nothing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CcaConfig {
    pub expected_mkvps: BTreeMap<ConfMkType, [u8; 8]>,
}

/// Parses `ccatok.conf` text.
pub fn parse(text: &str) -> Result<CcaConfig, ConfigError> {
    Ok(analyse(text)?.0)
}

/// `text` with the hex inside each named type's `EXPECTED_MKVPS` quotes replaced by its new
/// pattern (a `0x` prefix and uppercase hex stay as they were); every other byte unchanged.
/// A type the file does not name is left out, as the token checks only what it names: the
/// second value says which types were rewritten.
pub fn rewrite_expected_mkvps(
    text: &str,
    new: &BTreeMap<ConfMkType, [u8; 8]>,
) -> Result<(String, Vec<ConfMkType>), ConfigError> {
    let (_, spans) = analyse(text)?;
    let mut edits: Vec<(ConfMkType, usize, Range<usize>)> = spans
        .into_iter()
        .filter(|(mk, _)| new.contains_key(mk))
        .map(|(mk, (line, span))| (mk, line, span))
        .collect();
    edits.sort_by_key(|(_, _, span)| span.start);
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for (mk, _, span) in &edits {
        let old = &text[span.clone()];
        let prefix = if old.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("0x")) {
            2
        } else {
            0
        };
        let digits = &old[prefix..];
        let upper = digits.bytes().any(|b| b.is_ascii_uppercase())
            && !digits.bytes().any(|b| b.is_ascii_lowercase());
        let hex = hex::encode(new[mk]);
        out.push_str(&text[copied..span.start + prefix]);
        out.push_str(&if upper { hex.to_uppercase() } else { hex });
        copied = span.end;
    }
    out.push_str(&text[copied..]);
    // Belt and braces: the rewritten file reads back as the new patterns, the rest as before.
    let before = parse(text)?.expected_mkvps;
    let after = parse(&out)?.expected_mkvps;
    let changed: Vec<ConfMkType> = edits.iter().map(|(mk, ..)| *mk).collect();
    for (mk, vp) in &before {
        let want = if changed.contains(mk) { &new[mk] } else { vp };
        if after.get(mk) != Some(want) {
            let line = edits.first().map_or(1, |(_, line, _)| *line);
            return Err(error(
                line,
                format!("EXPECTED_MKVPS {mk} does not read back as intended"),
            ));
        }
    }
    Ok((out, changed))
}

/// The token's wording for a token it does not expect.
fn unexpected(token: &str, line: usize, expected: &str) -> ConfigError {
    let message = format!(
        "unexpected token '{token}' at line {line}, expected {expected}; the CCA token does not \
         start with this file either"
    );
    error(line, message)
}

/// The configuration, and where each pattern is: its line and the bytes inside the quotes.
type Analysis = (CcaConfig, BTreeMap<ConfMkType, (usize, Range<usize>)>);

fn analyse(text: &str) -> Result<Analysis, ConfigError> {
    let tokens = lex(text)?;
    let word = |t: &Token| &text[t.span.clone()];
    let mut it = tokens.iter().filter(|t| t.tok != Tok::Eol).peekable();
    let mut config = CcaConfig::default();
    let mut spans = BTreeMap::new();
    let mut first = true;
    let mut seen_block = false;
    let last_line = tokens.last().map_or(1, |t| t.line);
    while let Some(t) = it.next() {
        if t.tok != Tok::Word {
            return Err(unexpected(word(t), t.line, "a keyword"));
        }
        let key = word(t);
        if std::mem::take(&mut first) && key == "version" {
            match it.next() {
                Some(v) if v.tok == Tok::Word => continue,
                Some(other) => return Err(unexpected(word(other), other.line, "a file version")),
                None => return Err(end_of_file(t.line, "a file version")),
            }
        }
        if key.eq_ignore_ascii_case("FORCE_SENSITIVE") {
            continue;
        }
        let modes: [(&str, &[&str]); 3] = [
            ("PKEY_MODE", &["DISABLED", "DEFAULT", "ENABLED"]),
            ("AES_KEY_MODE", &["DATA", "CIPHER"]),
            ("ML_DSA_KEY_MODE", &["PURE", "PREHASH"]),
        ];
        if let Some((name, values)) = modes.iter().find(|(n, _)| key.eq_ignore_ascii_case(n)) {
            let shown = values.join(" | ");
            match (it.next(), it.next()) {
                (Some(eq), Some(v))
                    if eq.tok == Tok::Equal && v.tok == Tok::Word && values.contains(&word(v)) => {}
                (Some(_), Some(v)) => {
                    return Err(unexpected(word(v), v.line, &format!("`{name} = {shown}`")));
                }
                _ => return Err(end_of_file(t.line, &format!("`{name} = {shown}`"))),
            }
            continue;
        }
        if !key.eq_ignore_ascii_case("EXPECTED_MKVPS") {
            return Err(unexpected(
                key,
                t.line,
                "EXPECTED_MKVPS, FORCE_SENSITIVE, PKEY_MODE, AES_KEY_MODE or ML_DSA_KEY_MODE",
            ));
        }
        if std::mem::replace(&mut seen_block, true) {
            let message = format!(
                "a second EXPECTED_MKVPS at line {}: keep one block, so that it is clear which \
                 patterns the token checks",
                t.line
            );
            return Err(error(t.line, message));
        }
        match it.next() {
            Some(open) if word(open) == "{" => {}
            Some(other) => return Err(unexpected(word(other), other.line, "`{`")),
            None => return Err(end_of_file(t.line, "`{`")),
        }
        loop {
            let Some(entry) = it.next() else {
                return Err(end_of_file(last_line, "`}` closing EXPECTED_MKVPS"));
            };
            if word(entry) == "}" {
                break;
            }
            let form = "`SYM`, `AES` or `APKA` = \"<16 hex digits>\", or `}`";
            let Some(mk) = (entry.tok == Tok::Word)
                .then(|| ConfMkType::from_key(word(entry)))
                .flatten()
            else {
                return Err(unexpected(word(entry), entry.line, form));
            };
            let value = match (it.next(), it.next()) {
                (Some(eq), Some(v)) if eq.tok == Tok::Equal && v.tok == Tok::Str => v,
                (Some(_), Some(v)) => return Err(unexpected(word(v), v.line, form)),
                _ => return Err(end_of_file(entry.line, form)),
            };
            let raw = word(value);
            let digits = raw
                .get(..2)
                .filter(|p| p.eq_ignore_ascii_case("0x"))
                .map_or(raw, |_| &raw[2..]);
            let mut vp = [0u8; 8];
            if digits.len() != 16 || hex::decode_to_slice(digits, &mut vp).is_err() {
                let message = format!(
                    "invalid hex value '{raw}' at line {}: {mk} takes 16 hex digits (8 bytes), \
                     `0x` optional; the CCA token does not start with this file either",
                    value.line
                );
                return Err(error(value.line, message));
            }
            if config.expected_mkvps.insert(mk, vp).is_some() {
                let message = format!(
                    "{mk} is named twice in EXPECTED_MKVPS (line {}): the token takes the last, \
                     a rewrite would be ambiguous",
                    value.line
                );
                return Err(error(value.line, message));
            }
            spans.insert(mk, (value.line, value.span.clone()));
        }
    }
    Ok((config, spans))
}

#[cfg(test)]
mod tests {
    use super::*;

    const AES_OLD: [u8; 8] = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];
    const AES_NEW: [u8; 8] = [0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10];
    const APKA_NEW: [u8; 8] = [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88];

    /// The shape of openCryptoki's sample file, with the block in use and other options.
    const FILE: &str = "version cca-0\n\
        \n\
        # Optionally specify the expected master key verification patterns.\n\
        EXPECTED_MKVPS\n\
        {\n\
        \x20 SYM = \"0x0011223344556677\"   # from panel.exe [RND]\n\
        \x20 aes = \"0123456789ABCDEF\"\n\
        \x20 APKA = \"0x755cb8e7740dae51\"\n\
        }\n\
        PKEY_MODE = ENABLED\n\
        FORCE_SENSITIVE\n\
        AES_KEY_MODE = CIPHER\n";

    fn mkvps(pairs: &[(ConfMkType, [u8; 8])]) -> BTreeMap<ConfMkType, [u8; 8]> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn reads_the_patterns_and_the_options() {
        let config = parse(FILE).unwrap();
        assert_eq!(
            config.expected_mkvps,
            mkvps(&[
                (
                    ConfMkType::Sym,
                    [0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77]
                ),
                (ConfMkType::Aes, AES_OLD),
                (
                    ConfMkType::Apka,
                    [0x75, 0x5c, 0xb8, 0xe7, 0x74, 0x0d, 0xae, 0x51]
                ),
            ])
        );
        // No block: nothing expected. The simulator's form (`{` on the keyword's line).
        assert_eq!(
            parse("version cca-0\n# EXPECTED_MKVPS\n").unwrap(),
            CcaConfig::default()
        );
        let sim = "# written by mkplan-sim\nversion cca-0\n\nEXPECTED_MKVPS {\n    AES = \
                   \"0x0123456789abcdef\"\n}\n";
        assert_eq!(
            parse(sim).unwrap().expected_mkvps,
            mkvps(&[(ConfMkType::Aes, AES_OLD)])
        );
    }

    #[test]
    fn rewrites_only_the_hex_of_the_named_types() {
        let (out, changed) = rewrite_expected_mkvps(
            FILE,
            &mkvps(&[(ConfMkType::Aes, AES_NEW), (ConfMkType::Apka, APKA_NEW)]),
        )
        .unwrap();
        assert_eq!(changed, [ConfMkType::Aes, ConfMkType::Apka]);
        let expected = FILE
            .replace("\"0123456789ABCDEF\"", "\"FEDCBA9876543210\"")
            .replace("\"0x755cb8e7740dae51\"", "\"0x1122334455667788\"");
        assert_eq!(out, expected);
        assert_eq!(out.len(), FILE.len());
        let read = parse(&out).unwrap().expected_mkvps;
        assert_eq!(read[&ConfMkType::Aes], AES_NEW);
        assert_eq!(
            read[&ConfMkType::Sym],
            parse(FILE).unwrap().expected_mkvps[&ConfMkType::Sym]
        );
        // A type the file does not name is not added; without a block nothing changes.
        let only_aes = "version cca-0\r\nEXPECTED_MKVPS {\r\n AES = \"0x0123456789abcdef\"\r\n}";
        let (out, changed) = rewrite_expected_mkvps(
            only_aes,
            &mkvps(&[(ConfMkType::Aes, AES_NEW), (ConfMkType::Sym, APKA_NEW)]),
        )
        .unwrap();
        assert_eq!(changed, [ConfMkType::Aes]);
        assert_eq!(
            out,
            only_aes.replace("0123456789abcdef", "fedcba9876543210")
        );
        let none = "version cca-0\nPKEY_MODE = DISABLED\n";
        let (out, changed) =
            rewrite_expected_mkvps(none, &mkvps(&[(ConfMkType::Aes, AES_NEW)])).unwrap();
        assert_eq!((out.as_str(), changed.len()), (none, 0));
    }

    #[test]
    fn files_the_token_would_not_start_with_are_refused_naming_the_line() {
        let block = |entry: &str| format!("version cca-0\nEXPECTED_MKVPS {{\n  {entry}\n}}\n");
        let cases = [
            (
                block("ASYM = \"0x0123456789abcdef\""),
                3,
                "unexpected token 'ASYM'",
            ),
            (block("AES = \"0x0123456789abcd\""), 3, "16 hex digits"),
            (
                block("AES = \"0x0123456789abcdeg\""),
                3,
                "invalid hex value",
            ),
            (
                block("AES = 0x0123456789abcdef"),
                3,
                "unexpected token '0x0123456789abcdef'",
            ),
            (
                block("AES = \"0x0123456789abcdef\"\n  AES = \"0x0123456789abcdef\""),
                4,
                "named twice",
            ),
            (
                "version cca-0\nEXPECTED_MKVPS {\n AES = \"0x0123456789abcdef\"\n".into(),
                3,
                "`}`",
            ),
            (
                "version cca-0\nEXPECTED_WKVP \"0x00\"\n".into(),
                2,
                "unexpected token 'EXPECTED_WKVP'",
            ),
            (
                "PKEY_MODE = SOMETIMES\n".into(),
                1,
                "DISABLED | DEFAULT | ENABLED",
            ),
            (
                format!(
                    "{}{}",
                    block("AES = \"0x0123456789abcdef\""),
                    "EXPECTED_MKVPS {\n}\n"
                ),
                5,
                "a second EXPECTED_MKVPS",
            ),
        ];
        for (text, line, what) in cases {
            let e = parse(&text).unwrap_err();
            assert_eq!(e.line, Some(line), "{text:?}: {e}");
            assert!(e.to_string().contains(what), "{text:?}: {e}");
            let rewrite = rewrite_expected_mkvps(&text, &mkvps(&[(ConfMkType::Aes, AES_NEW)]));
            assert_eq!(rewrite.unwrap_err(), e);
        }
    }
}
