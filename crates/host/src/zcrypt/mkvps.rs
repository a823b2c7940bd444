//! The kernel's EP11 `mkvps` attribute, parsed exactly (zcrypt-sysfs.md 1.5): anything the
//! kernel does not print is an error, so an unknown format can never pass as a known state.

use mkplan_engine::record::wk::{CurState, NewState, WkRegister};

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
