//! `opencryptoki.conf`, read as pkcsslotd reads it (opencryptoki-ep11.md 3.1; man 5
//! opencryptoki.conf): an optional `version`, the globals `disable-event-support` and
//! `statistics (…)`, and `slot N { key = value … }` blocks. `#` starts a comment; values are
//! bare words or `"…"` strings. What pkcsslotd would refuse is refused here, with its line.

use std::path::{Path, PathBuf};

use mkplan_plan::init::inventory::TokenKind;

/// Where openCryptoki keeps its configuration and token stores (OCK_CONFDIR, CONFIG_PATH).
pub const CONF_DIR: &str = "/etc/opencryptoki";
pub const STORE_DIR: &str = "/var/lib/opencryptoki";
/// The slot numbers pkcsslotd manages (NUMBER_SLOTS_MANAGED).
const SLOTS_MANAGED: u64 = 1024;
const SLOT_KEYS: [&str; 9] = [
    "stdll",
    "confname",
    "tokname",
    "tokversion",
    "description",
    "manufacturer",
    "hwversion",
    "firmwareversion",
    "usergroup",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OckConfig {
    /// `version opencryptoki-3.x`: the file's format, not the installed release.
    pub version: Option<String>,
    pub event_support: bool,
    pub slots: Vec<SlotEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotEntry {
    pub slot: u16,
    pub line: usize,
    pub stdll: String,
    pub confname: Option<String>,
    pub tokname: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct OckConfError {
    pub line: usize,
    pub message: String,
}

impl SlotEntry {
    pub fn kind(&self) -> TokenKind {
        match self.stdll_stem().as_str() {
            "ep11" => TokenKind::Ep11,
            "cca" => TokenKind::Cca,
            _ => TokenKind::Other,
        }
    }

    /// `ep11` of `libpkcs11_ep11.so` (any directory, any `.so.N` suffix).
    fn stdll_stem(&self) -> String {
        let name = Path::new(&self.stdll)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let stem = name.split(".so").next().unwrap_or_default();
        stem.strip_prefix("libpkcs11_").unwrap_or(stem).to_owned()
    }

    /// The token's store: `/var/lib/opencryptoki/<tokname>`, else the STDLL's default
    /// directory (`ep11tok`, `ccatok`; opencryptoki-ep11.md 3.3).
    pub fn store(&self) -> PathBuf {
        let default = match self.kind() {
            TokenKind::Ep11 => "ep11tok".to_owned(),
            TokenKind::Cca => "ccatok".to_owned(),
            TokenKind::Other => self.stdll_stem(),
        };
        Path::new(STORE_DIR).join(self.tokname.clone().unwrap_or(default))
    }

    /// The token's configuration file: `confname` under `/etc/opencryptoki` (or as given,
    /// if absolute), else `ep11tok.conf` / `ccatok.conf` (opencryptoki-ep11.md 3.1, 3.2).
    pub fn config(&self) -> PathBuf {
        let default = format!("{}tok.conf", self.stdll_stem());
        let name = self.confname.clone().unwrap_or(default);
        Path::new(CONF_DIR).join(name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Str(String),
    Punct(char),
}

fn lex(text: &str) -> Result<Vec<(Tok, usize)>, OckConfError> {
    let mut out = Vec::new();
    let mut line = 1;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            c if c.is_whitespace() => {}
            '#' => while chars.next_if(|c| *c != '\n').is_some() {},
            '{' | '}' | '=' | '(' | ')' | ',' => out.push((Tok::Punct(c), line)),
            '"' => {
                let start = line;
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some(c) => {
                            line += usize::from(c == '\n');
                            value.push(c);
                        }
                        None => {
                            return Err(OckConfError {
                                line: start,
                                message: "a `\"` string is not closed".to_owned(),
                            });
                        }
                    }
                }
                out.push((Tok::Str(value), start));
            }
            c => {
                let mut word = c.to_string();
                while let Some(c) =
                    chars.next_if(|c| !c.is_whitespace() && !"{}=(),#\"".contains(*c))
                {
                    word.push(c);
                }
                out.push((Tok::Word(word), line));
            }
        }
    }
    Ok(out)
}

/// Parses the text of `opencryptoki.conf`.
pub fn parse(text: &str) -> Result<OckConfig, OckConfError> {
    let tokens = lex(text)?;
    let mut config = OckConfig {
        version: None,
        event_support: true,
        slots: Vec::new(),
    };
    let mut at = tokens.iter().peekable();
    let last_line = tokens.last().map_or(1, |(_, l)| *l);
    let err = |line: usize, message: String| OckConfError { line, message };
    while let Some((tok, line)) = at.next() {
        let line = *line;
        match tok {
            Tok::Word(w) if w == "version" => match at.next() {
                Some((Tok::Word(v), _)) => config.version = Some(v.clone()),
                _ => {
                    return Err(err(
                        line,
                        "`version` needs a value (e.g. `version opencryptoki-3.27`)".to_owned(),
                    ));
                }
            },
            Tok::Word(w) if w == "disable-event-support" => config.event_support = false,
            Tok::Word(w) if w == "statistics" => {
                if !matches!(at.next(), Some((Tok::Punct('('), _))) {
                    return Err(err(
                        line,
                        "`statistics` needs a list in parentheses, e.g. `statistics (off)`"
                            .to_owned(),
                    ));
                }
                loop {
                    match at.next() {
                        Some((Tok::Punct(')'), _)) => break,
                        Some((Tok::Word(_) | Tok::Punct(','), _)) => {}
                        _ => {
                            return Err(err(
                                line,
                                "`statistics (` is not closed by `)`".to_owned(),
                            ));
                        }
                    }
                }
            }
            Tok::Word(w) if w == "slot" => {
                let slot = slot_block(&mut at, line, last_line)?;
                if config.slots.iter().any(|s| s.slot == slot.slot) {
                    return Err(err(line, format!("slot {} is defined twice", slot.slot)));
                }
                config.slots.push(slot);
            }
            other => {
                return Err(err(
                    line,
                    format!(
                        "unexpected {} at the top level (pkcsslotd refuses the file)",
                        shown(other)
                    ),
                ));
            }
        }
    }
    Ok(config)
}

fn shown(tok: &Tok) -> String {
    match tok {
        Tok::Word(w) => format!("`{w}`"),
        Tok::Str(s) => format!("\"{s}\""),
        Tok::Punct(c) => format!("`{c}`"),
    }
}

fn slot_block<'t>(
    at: &mut std::iter::Peekable<impl Iterator<Item = &'t (Tok, usize)>>,
    line: usize,
    last_line: usize,
) -> Result<SlotEntry, OckConfError> {
    let err = |line: usize, message: String| OckConfError { line, message };
    let slot = match at.next() {
        Some((Tok::Word(n), _)) => n
            .parse::<u64>()
            .ok()
            .filter(|v| *v < SLOTS_MANAGED && v.to_string() == *n)
            .ok_or_else(|| {
                err(
                    line,
                    format!(
                        "`slot {n}`: a slot number is decimal, 0 to {}",
                        SLOTS_MANAGED - 1
                    ),
                )
            })?,
        _ => return Err(err(line, "`slot` needs a number".to_owned())),
    };
    let slot = u16::try_from(slot).expect("below 1024");
    if !matches!(at.next(), Some((Tok::Punct('{'), _))) {
        return Err(err(line, format!("`slot {slot}` needs a `{{ … }}` block")));
    }
    let mut entry = SlotEntry {
        slot,
        line,
        stdll: String::new(),
        confname: None,
        tokname: None,
    };
    loop {
        let (key, key_line) = match at.next() {
            Some((Tok::Punct('}'), _)) => break,
            Some((Tok::Word(k), l)) => (k.clone(), *l),
            Some((other, l)) => {
                return Err(err(
                    *l,
                    format!("unexpected {} in slot {slot}", shown(other)),
                ));
            }
            None => {
                return Err(err(
                    last_line,
                    format!("slot {slot} (line {line}) is not closed by `}}`"),
                ));
            }
        };
        if !SLOT_KEYS.contains(&key.as_str()) {
            return Err(err(
                key_line,
                format!(
                    "unknown keyword `{key}` in slot {slot} (known: {})",
                    SLOT_KEYS.join(", ")
                ),
            ));
        }
        if !matches!(at.next(), Some((Tok::Punct('='), _))) {
            return Err(err(key_line, format!("`{key}` needs `= value`")));
        }
        let value = match at.next() {
            Some((Tok::Word(v) | Tok::Str(v), _)) => v.clone(),
            _ => return Err(err(key_line, format!("`{key} =` needs a value"))),
        };
        match key.as_str() {
            "stdll" => entry.stdll = value,
            "confname" => entry.confname = Some(value),
            "tokname" => entry.tokname = Some(value),
            _ => {}
        }
    }
    if entry.stdll.is_empty() {
        return Err(err(line, format!("slot {slot} has no `stdll`")));
    }
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Debian 12's shipped file (openCryptoki 3.8.1), as installed on the test machine.
    const DEBIAN: &str =
        include_str!("../../../../tests/fixtures/init/opencryptoki.conf.debian-3.8");
    /// The layout of the upstream sample and man 5 opencryptoki.conf (3.27): globals, a
    /// quoted description, tokname, usergroup.
    const UPSTREAM: &str = include_str!("../../../../tests/fixtures/init/opencryptoki.conf.3.27");

    #[test]
    fn reads_the_debian_file() {
        let config = parse(DEBIAN).unwrap();
        assert_eq!(config.version.as_deref(), Some("opencryptoki-3.1"));
        let kinds: Vec<(u16, TokenKind)> =
            config.slots.iter().map(|s| (s.slot, s.kind())).collect();
        assert_eq!(
            kinds,
            [
                (0, TokenKind::Other),
                (1, TokenKind::Other),
                (2, TokenKind::Cca),
                (3, TokenKind::Other),
                (4, TokenKind::Ep11)
            ]
        );
        let ep11 = &config.slots[4];
        assert_eq!(ep11.store(), Path::new("/var/lib/opencryptoki/ep11tok"));
        assert_eq!(ep11.config(), Path::new("/etc/opencryptoki/ep11tok.conf"));
        assert_eq!(
            config.slots[2].config(),
            Path::new("/etc/opencryptoki/ccatok.conf")
        );
    }

    #[test]
    fn reads_the_upstream_layout() {
        let config = parse(UPSTREAM).unwrap();
        assert!(!config.event_support);
        let ep11: Vec<&SlotEntry> = config
            .slots
            .iter()
            .filter(|s| s.kind() == TokenKind::Ep11)
            .collect();
        assert_eq!(ep11.len(), 2);
        assert_eq!(ep11[0].store(), Path::new("/var/lib/opencryptoki/ep11pay"));
        assert_eq!(
            ep11[0].config(),
            Path::new("/etc/opencryptoki/ep11pay.conf")
        );
    }

    #[test]
    fn refuses_what_pkcsslotd_refuses_with_the_line() {
        for (text, line, says) in [
            (
                "slot 4\n{\nstdll = libpkcs11_ep11.so\nbogus = 1\n}\n",
                4,
                "unknown keyword `bogus`",
            ),
            ("slot 04 { stdll = x.so }", 1, "decimal"),
            ("slot 1024 { stdll = x.so }", 1, "0 to 1023"),
            ("slot 4 { confname = a.conf }", 1, "no `stdll`"),
            (
                "slot 4 { stdll = a.so }\nslot 4 { stdll = b.so }",
                2,
                "twice",
            ),
            ("\n\nslot 4 { stdll = a.so", 3, "not closed"),
            ("frobnicate", 1, "unexpected `frobnicate`"),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text}: {e}");
            assert!(e.message.contains(says), "{text}: {e}");
        }
    }
}
