//! The kernel's `mkvps` attribute, parsed exactly: EP11 (zcrypt-sysfs.md 1.5) and CCA (1.6,
//! with the forms captured from real cards, 1.6b). Anything the kernel does not print is an
//! error, so an unknown format can never pass as a known state.

use mkplan_engine::record::wk::{
    CcaKeyState, CcaMasterKeys, CcaMkRegisters, CcaMkType, CcaNewState, CcaRegister, CcaVp,
    CurState, NewState, WkRegister,
};

/// `mkvps` text that is not the kernel's EP11 format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MkvpsError {
    #[error(
        "`mkvps` has {found} line(s), but the EP11 format has exactly two (`WK CUR: …`, then \
         `WK NEW: …`); the card may not be EP11 (a CCA card prints `AES NEW:` lines), or the \
         kernel prints a format mkplan does not know"
    )]
    LineCount { found: usize },
    #[error("`mkvps` line {line} `{text}`: {problem}; the card may not be EP11")]
    Line {
        line: usize,
        text: String,
        problem: String,
    },
}

/// Parses the kernel's EP11 `mkvps` (zcrypt-sysfs.md 1.5, 1.7 rule 2): exactly two lines, CUR
/// then NEW, each exactly `WK`, `CUR:`/`NEW:`, a state word and `-` or `0x` + 64 hex digits.
/// Only the combinations the kernel prints are accepted.
pub fn parse_ep11_mkvps(
    text: &str,
) -> Result<(WkRegister<CurState>, WkRegister<NewState>), MkvpsError> {
    let body = text.strip_suffix('\n').unwrap_or(text);
    let lines: Vec<&str> = match body {
        "" => Vec::new(),
        _ => body.split('\n').collect(),
    };
    // zcrypt-sysfs.md 1.6: CCA prints `AES NEW: …` (and APKA, ASYM) lines instead.
    if let Some(first) = lines.first()
        && matches!(
            first.split_whitespace().next(),
            Some("AES" | "APKA" | "ASYM")
        )
    {
        let problem = "this is the CCA format (AES/APKA/ASYM master keys), not EP11";
        return Err(line_error(1, first, problem));
    }
    let [cur_line, new_line] = lines[..] else {
        return Err(MkvpsError::LineCount { found: lines.len() });
    };
    let (cur, cur_vp) = match split_line(1, cur_line, "CUR:")? {
        ("valid", vp @ Some(_)) => (CurState::Valid, vp),
        ("invalid", None) => (CurState::Invalid, None),
        ("-", None) => (CurState::Unknown, None),
        _ => {
            let problem = "the CUR register must be `valid 0x…`, `invalid -` or `- -`";
            return Err(line_error(1, cur_line, problem));
        }
    };
    let (new, new_vp) = match split_line(2, new_line, "NEW:")? {
        ("empty", None) => (NewState::Empty, None),
        ("uncommitted", vp @ Some(_)) => (NewState::Uncommitted, vp),
        ("committed", vp @ Some(_)) => (NewState::Committed, vp),
        ("-", None) => (NewState::Unknown, None),
        _ => {
            let problem = "the NEW register must be `empty -`, `uncommitted 0x…`, \
                           `committed 0x…` or `- -`";
            return Err(line_error(2, new_line, problem));
        }
    };
    Ok((register(cur, cur_vp), register(new, new_vp)))
}

pub(super) fn register<S>(state: S, vp: Option<[u8; 32]>) -> WkRegister<S> {
    WkRegister { state, vp }
}

fn line_error(line: usize, text: &str, problem: impl Into<String>) -> MkvpsError {
    let (text, problem) = (text.to_owned(), problem.into());
    MkvpsError::Line {
        line,
        text,
        problem,
    }
}

/// Splits one `mkvps` line into its state word and VP (`-` = none).
fn split_line<'a>(
    number: usize,
    line: &'a str,
    register: &str,
) -> Result<(&'a str, Option<[u8; 32]>), MkvpsError> {
    let tokens: Vec<&str> = line.split_whitespace().collect();
    let [wk, reg, state, vp] = tokens[..] else {
        let problem = format!(
            "{} token(s), expected 4: `WK {register} <state> <vp>`",
            tokens.len()
        );
        return Err(line_error(number, line, problem));
    };
    if wk != "WK" || reg != register {
        let problem = format!("expected `WK {register}` (the kernel prints CUR, then NEW)");
        return Err(line_error(number, line, problem));
    }
    if vp == "-" {
        return Ok((state, None));
    }
    let mut bytes = [0u8; 32];
    let hex = vp.strip_prefix("0x").or_else(|| vp.strip_prefix("0X"));
    match hex.map(|hex| hex::decode_to_slice(hex, &mut bytes)) {
        Some(Ok(())) => Ok((state, Some(bytes))),
        _ => {
            let problem = format!("the VP `{vp}` is neither `-` nor `0x` and 64 hex digits");
            Err(line_error(number, line, problem))
        }
    }
}

/// `mkvps` text that is not the kernel's CCA format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CcaMkvpsError {
    #[error(
        "`mkvps` has {found} line(s), but the CCA format has 3, 6 or 9 (NEW, CUR, OLD of AES, \
         then APKA since 5.10, then ASYM since 5.19); the card may not be CCA (an EP11 card \
         prints `WK CUR:`), or the kernel prints a format mkplan does not know"
    )]
    LineCount { found: usize },
    #[error("`mkvps` line {line} `{text}`: {problem}; expected the kernel's CCA format")]
    Line {
        line: usize,
        text: String,
        problem: String,
    },
}

/// The register names in the kernel's order within each MK type.
const CCA_REGISTERS: [&str; 3] = ["NEW:", "CUR:", "OLD:"];

/// Parses the kernel's CCA `mkvps` (zcrypt-sysfs.md 1.6): AES, then APKA, then ASYM, each as
/// NEW, CUR, OLD; each line exactly `<type> <register>: <state> <pattern>`.
///
/// * NEW is `empty`/`partial` with zeros, or `full` with its pattern; CUR and OLD are
///   `invalid` with zeros, or `valid` with the pattern. The pattern has 16 hex digits (AES,
///   APKA) or 32 (ASYM).
/// * `-` for the pattern means "no pattern" (1.6b: real cards print `ASYM NEW: empty -`), so
///   it is accepted where a state has none, never after `full` or `valid`. `empty` on CUR/OLD
///   is accepted for ASYM only, with `-`, as captured from a card without an ASYM MK.
/// * `- -` is an unknown register (offline, or an interrupted read): kept as `Unknown`.
pub fn parse_cca_mkvps(text: &str) -> Result<CcaMasterKeys, CcaMkvpsError> {
    let body = text.strip_suffix('\n').unwrap_or(text);
    let lines: Vec<&str> = match body {
        "" => Vec::new(),
        _ => body.split('\n').collect(),
    };
    if let Some(first) = lines.first()
        && first.split_whitespace().next() == Some("WK")
    {
        let problem = "this is the EP11 format (`WK CUR:`/`WK NEW:`), not CCA";
        return Err(cca_error(1, first, problem));
    }
    if !matches!(lines.len(), 3 | 6 | 9) {
        return Err(CcaMkvpsError::LineCount { found: lines.len() });
    }
    let mut types = Vec::new();
    for (index, chunk) in lines.chunks(3).enumerate() {
        let mk = CcaMkType::ALL[index];
        let first = 3 * index + 1;
        let [new, cur, old] =
            [0, 1, 2].map(|i| cca_line(first + i, chunk[i], mk, CCA_REGISTERS[i]));
        let (new, cur, old) = (new?, cur?, old?);
        let new_state = match new.0 {
            "empty" if new.1.is_none() => CcaNewState::Empty,
            "partial" if new.1.is_none() => CcaNewState::Partial,
            "full" if new.1.is_some() => CcaNewState::Full,
            "-" if new.2 => CcaNewState::Unknown,
            _ => {
                let problem = format!(
                    "the NEW register must be `empty`/`partial` with zeros or `-`, `full` with \
                     its pattern ({} hex digits), or `- -`",
                    2 * mk.vp_len()
                );
                return Err(cca_error(first, chunk[0], problem));
            }
        };
        let key = |number: usize, (word, vp, dashes): (&str, Option<CcaVp>, bool)| {
            let state = match word {
                "valid" if vp.is_some() => CcaKeyState::Valid,
                "invalid" if vp.is_none() => CcaKeyState::Invalid,
                "empty" if mk == CcaMkType::Asym && dashes => CcaKeyState::Empty,
                "-" if dashes => CcaKeyState::Unknown,
                _ => {
                    let register = CCA_REGISTERS[number - first];
                    let problem = format!(
                        "the {} register must be `invalid` with zeros or `-`, `valid` with its \
                         pattern ({} hex digits), or `- -`{}",
                        &register[..3],
                        2 * mk.vp_len(),
                        if mk == CcaMkType::Asym {
                            " (or `empty -`)"
                        } else {
                            ""
                        }
                    );
                    return Err(cca_error(number, chunk[number - first], problem));
                }
            };
            Ok(CcaRegister { state, vp })
        };
        types.push(CcaMkRegisters {
            new: CcaRegister {
                state: new_state,
                vp: new.1,
            },
            cur: key(first + 1, cur)?,
            old: key(first + 2, old)?,
        });
    }
    let mut types = types.into_iter();
    Ok(CcaMasterKeys {
        aes: types.next().expect("at least three lines"),
        apka: types.next(),
        asym: types.next(),
    })
}

fn cca_error(line: usize, text: &str, problem: impl Into<String>) -> CcaMkvpsError {
    let (text, problem) = (text.to_owned(), problem.into());
    CcaMkvpsError::Line {
        line,
        text,
        problem,
    }
}

/// Splits one CCA line into its state word, its pattern (`None` for `-` or all zeros) and
/// whether the pattern token was `-`.
fn cca_line<'a>(
    number: usize,
    line: &'a str,
    mk: CcaMkType,
    register: &str,
) -> Result<(&'a str, Option<CcaVp>, bool), CcaMkvpsError> {
    let tokens: Vec<&str> = line.split_whitespace().collect();
    let [name, reg, state, vp] = tokens[..] else {
        let problem = format!(
            "{} token(s), expected 4: `{mk} {register} <state> <pattern>`",
            tokens.len()
        );
        return Err(cca_error(number, line, problem));
    };
    if name != mk.name() || reg != register {
        let problem = format!(
            "expected `{mk} {register}` here (the kernel prints AES, APKA, ASYM, each as NEW, \
             CUR, OLD)"
        );
        return Err(cca_error(number, line, problem));
    }
    if vp == "-" {
        return Ok((state, None, true));
    }
    let digits = vp.strip_prefix("0x").or_else(|| vp.strip_prefix("0X"));
    match digits.and_then(|d| {
        (d.len() == 2 * mk.vp_len())
            .then(|| hex::decode(d).ok())
            .flatten()
    }) {
        Some(bytes) if bytes.iter().all(|b| *b == 0) => Ok((state, None, false)),
        Some(bytes) => Ok((state, CcaVp::new(bytes), false)),
        None => {
            let problem = format!(
                "the pattern `{vp}` is neither `-` nor `0x` and {} hex digits",
                2 * mk.vp_len()
            );
            Err(cca_error(number, line, problem))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// zcrypt-sysfs.md 1.6b, verbatim: a CEX6 queue with an APKA MK only.
    const CAPTURED: &str = "AES NEW: empty 0x0000000000000000
AES CUR: invalid 0x0000000000000000
AES OLD: invalid 0x0000000000000000
APKA NEW: empty 0x0000000000000000
APKA CUR: valid 0x755cb8e7740dae51
APKA OLD: invalid 0x0000000000000000
ASYM NEW: empty -
ASYM CUR: empty -
ASYM OLD: empty -
";

    /// 1.6b: a read interrupted by a signal, every line.
    const INTERRUPTED_ALL: &str = "AES NEW: - -
AES CUR: - -
AES OLD: - -
APKA NEW: - -
APKA CUR: - -
APKA OLD: - -
ASYM NEW: - -
ASYM CUR: - -
ASYM OLD: - -
";

    /// 1.6b: the second card query (APKA) interrupted; AES and ASYM real.
    const INTERRUPTED_APKA: &str = "AES NEW: empty 0x0000000000000000
AES CUR: invalid 0x0000000000000000
AES OLD: invalid 0x0000000000000000
APKA NEW: - -
APKA CUR: - -
APKA OLD: - -
ASYM NEW: empty -
ASYM CUR: empty -
ASYM OLD: empty -
";

    fn states(r: &CcaMkRegisters) -> (CcaNewState, CcaKeyState, CcaKeyState) {
        (r.new.state, r.cur.state, r.old.state)
    }

    #[test]
    fn every_captured_form_parses() {
        use CcaKeyState::{Empty as KEmpty, Invalid, Unknown as KUnknown, Valid};
        use CcaNewState::{Empty, Unknown};
        let keys = parse_cca_mkvps(CAPTURED).unwrap();
        assert_eq!(states(&keys.aes), (Empty, Invalid, Invalid));
        assert!(keys.aes.cur.vp.is_none() && keys.aes.new.vp.is_none());
        let apka = keys.apka.as_ref().unwrap();
        assert_eq!(states(apka), (Empty, Valid, Invalid));
        assert_eq!(
            apka.cur.vp.as_ref().unwrap().to_string(),
            "0x755cb8e7740dae51"
        );
        let asym = keys.asym.as_ref().unwrap();
        assert_eq!(states(asym), (Empty, KEmpty, KEmpty));
        assert!(asym.cur.vp.is_none());
        assert!(!keys.any_unknown());

        let keys = parse_cca_mkvps(INTERRUPTED_ALL).unwrap();
        for mk in CcaMkType::ALL {
            assert_eq!(states(keys.get(mk).unwrap()), (Unknown, KUnknown, KUnknown));
        }
        assert!(keys.any_unknown());

        let keys = parse_cca_mkvps(INTERRUPTED_APKA).unwrap();
        assert_eq!(states(&keys.aes), (Empty, Invalid, Invalid));
        assert_eq!(
            states(keys.apka.as_ref().unwrap()),
            (Unknown, KUnknown, KUnknown)
        );
        assert_eq!(states(keys.asym.as_ref().unwrap()), (Empty, KEmpty, KEmpty));
        assert!(keys.any_unknown());
    }

    #[test]
    fn every_state_and_older_kernels_parse() {
        let asym_vp = "0x0123456789abcdef00112233445566ff";
        let text = format!(
            "AES NEW: full 0x0123456789abcdef\nAES CUR: valid 0xfedcba9876543210\n\
             AES OLD: valid 0x1111111111111111\nAPKA NEW: partial 0x0000000000000000\n\
             APKA CUR: valid 0x755cb8e7740dae51\nAPKA OLD: invalid 0x0000000000000000\n\
             ASYM NEW: full {asym_vp}\nASYM CUR: valid {asym_vp}\nASYM OLD: invalid {}",
            format_args!("0x{}", "0".repeat(32))
        );
        let keys = parse_cca_mkvps(&text).unwrap();
        assert_eq!(keys.aes.new.state, CcaNewState::Full);
        assert_eq!(keys.aes.new.vp.as_ref().unwrap().bytes().len(), 8);
        assert_eq!(keys.aes.old.state, CcaKeyState::Valid);
        assert_eq!(keys.apka.as_ref().unwrap().new.state, CcaNewState::Partial);
        let asym = keys.asym.unwrap();
        assert_eq!(asym.new.vp.as_ref().unwrap().to_string(), asym_vp);
        assert_eq!(asym.cur.vp.as_ref().unwrap().bytes().len(), 16);
        assert_eq!(asym.old.state, CcaKeyState::Invalid);
        // 5.10 - 5.18: AES and APKA; 5.4 - 5.9: AES only.
        let six: String = CAPTURED.lines().take(6).map(|l| format!("{l}\n")).collect();
        let keys = parse_cca_mkvps(&six).unwrap();
        assert!(keys.apka.is_some() && keys.asym.is_none());
        let three: String = CAPTURED.lines().take(3).collect::<Vec<_>>().join("\n");
        let keys = parse_cca_mkvps(&three).unwrap();
        assert!(keys.apka.is_none() && keys.asym.is_none());
        // `-` for "no pattern" on any register that has none (1.6b).
        let dashes = CAPTURED.replace("invalid 0x0000000000000000", "invalid -");
        assert_eq!(
            parse_cca_mkvps(&dashes).unwrap(),
            parse_cca_mkvps(CAPTURED).unwrap()
        );
    }

    #[test]
    fn malformed_input_names_the_line_and_what_was_expected() {
        let replace = |line: usize, with: &str| {
            let mut lines: Vec<String> = CAPTURED.lines().map(str::to_owned).collect();
            lines[line - 1] = with.to_owned();
            lines.join("\n")
        };
        let cases = [
            (
                replace(1, "AES NEW: full 0x0000000000000000"),
                1,
                "NEW register must be",
            ),
            (replace(1, "AES NEW: full -"), 1, "NEW register must be"),
            (
                replace(1, "AES NEW: empty 0x0123456789abcdef"),
                1,
                "NEW register must be",
            ),
            (
                replace(1, "AES NEW: committed 0x0000000000000000"),
                1,
                "NEW register must be",
            ),
            (replace(2, "AES CUR: valid -"), 2, "CUR register must be"),
            (replace(2, "AES CUR: empty -"), 2, "CUR register must be"),
            (
                replace(3, "AES OLD: invalid 0x0123456789abcdef"),
                3,
                "OLD register must be",
            ),
            (
                replace(5, "APKA CUR: valid 0x755cb8e7740dae"),
                5,
                "16 hex digits",
            ),
            (
                replace(5, "APKA CUR: valid 755cb8e7740dae51"),
                5,
                "16 hex digits",
            ),
            (
                replace(5, "APKA CUR: valid 0x755cb8e7740dae5z"),
                5,
                "16 hex digits",
            ),
            (
                replace(5, "APKA CUR: - 0x755cb8e7740dae51"),
                5,
                "CUR register must be",
            ),
            (replace(5, "APKA CUR:  valid"), 5, "expected 4"),
            (
                replace(5, "APKA CUR: valid 0x755cb8e7740dae51 x"),
                5,
                "expected 4",
            ),
            (
                replace(5, "APKA OLD: valid 0x755cb8e7740dae51"),
                5,
                "expected `APKA CUR:`",
            ),
            (
                replace(4, "AES NEW: empty 0x0000000000000000"),
                4,
                "expected `APKA NEW:`",
            ),
            (
                replace(7, "ASYM NEW: full 0x0123456789abcdef"),
                7,
                "32 hex digits",
            ),
            (replace(8, "ASYM CUR: - 0x0"), 8, "32 hex digits"),
            (replace(9, "SYM OLD: empty -"), 9, "expected `ASYM OLD:`"),
        ];
        for (text, line, what) in cases {
            let e = parse_cca_mkvps(&text).unwrap_err();
            let CcaMkvpsError::Line { line: at, .. } = &e else {
                panic!("{text}: {e}");
            };
            assert_eq!(*at, line, "{e}");
            let message = e.to_string();
            assert!(
                message.starts_with(&format!("`mkvps` line {line} `")),
                "{message}"
            );
            assert!(message.contains(what), "{what}: {message}");
        }
        for (text, found) in [
            (String::new(), 0),
            (CAPTURED.lines().take(4).collect::<Vec<_>>().join("\n"), 4),
            (format!("{CAPTURED}SYM NEW: empty -\n"), 10),
            (format!("{CAPTURED}\n"), 10),
        ] {
            let e = parse_cca_mkvps(&text).unwrap_err();
            assert_eq!(e, CcaMkvpsError::LineCount { found }, "{text:?}");
            assert!(e.to_string().contains("3, 6 or 9"), "{e}");
        }
        let ep11 = "WK CUR: valid 0xef490ddfce10b330b86cfe6db2ae2db98d65e8c19d9cb7a1b378dec93e398eb0\n\
                    WK NEW: empty -\n";
        let e = parse_cca_mkvps(ep11).unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("EP11 format"), "{e}");
    }
}
