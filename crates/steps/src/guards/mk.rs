//! A CCA token's master keys, live: every APQN's `mkvps` read (zcrypt-sysfs.md 1.6, 1.6b)
//! and judged, per MK type the token declares, against what a step needs. Fail-closed: an
//! APQN that cannot be read, is no CCA card, or reads `- -` for a register needed fails.
//! SYM has no line in sysfs: it cannot be checked here (said in the result).

use mkplan_engine::ports::host::HostView;
use mkplan_engine::record::mk::MkTable;
use mkplan_engine::record::pkcscca::CcaRegistersChecked;
use mkplan_engine::record::wk::{CcaKeyState, CcaMkRegisters, CcaMkType, CcaNewState, CcaRegister};
use mkplan_plan::ccaconf::ConfMkType;
use mkplan_plan::model::{AssertMk, CcaMk, CurrentWk, Mkvp, MkvpPair, NewMk, OldMk, Token};

/// What a step needs of each MK type's registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MkNeed {
    /// The new MK was set: CUR holds it, OLD the token's current one (what `pkcscca`
    /// re-enciphers from and to).
    SetFromCurrent,
    /// The new MK is current (applications may start on migrated keys).
    NewCurrent,
    /// The previous MK is still current (nothing was set).
    PreviousCurrent,
    /// The keys of a restored backup are usable or re-encipherable: CUR still holds the
    /// token's current MK (not set yet), or OLD does (set once).
    PreviousKept,
}

/// The MK type as sysfs prints it; SYM has no line there.
pub fn shown_type(mk: CcaMk) -> Option<CcaMkType> {
    match mk {
        CcaMk::Sym => None,
        CcaMk::Asym => Some(CcaMkType::Asym),
        CcaMk::Aes => Some(CcaMkType::Aes),
        CcaMk::Apka => Some(CcaMkType::Apka),
    }
}

/// The type as `ccatok.conf` names it: SYM, AES and APKA; the CCA token does not use ASYM.
pub fn conf_type(mk: CcaMk) -> Option<ConfMkType> {
    match mk {
        CcaMk::Sym => Some(ConfMkType::Sym),
        CcaMk::Aes => Some(ConfMkType::Aes),
        CcaMk::Apka => Some(ConfMkType::Apka),
        CcaMk::Asym => None,
    }
}

/// `assert_mk`: every APQN read once, each MK type sysfs shows judged against the check.
/// `Err`: every problem, and whether the state is unknown (unreadable, `- -`, not a CCA
/// card) rather than different.
pub fn assert_mk(
    host: &dyn HostView,
    token: &Token,
    check: &AssertMk,
) -> Result<MkTable, (Vec<String>, bool)> {
    let mut table = MkTable {
        token: Some(token.id.clone()),
        apqns: Vec::new(),
        not_shown: Vec::new(),
    };
    let (mut problems, mut unknown) = (Vec::new(), false);
    for apqn in &token.apqns {
        let status = match host.read_apqn(*apqn) {
            Ok(status) => status,
            Err(e) => {
                problems.push(format!("APQN {apqn}: {e}"));
                unknown = true;
                continue;
            }
        };
        for (mk, pair) in &token.mks {
            let Some(kind) = shown_type(*mk) else {
                if !table.not_shown.contains(&mk.to_string()) {
                    table.not_shown.push(mk.to_string());
                }
                continue;
            };
            let registers = match registers_of(&status, kind) {
                Ok(registers) => registers,
                Err(why) => {
                    problems.push(format!("APQN {apqn}: {why}"));
                    unknown = true;
                    continue;
                }
            };
            if let Err(why) = judge_assert(registers, pair, check) {
                problems.push(format!("APQN {apqn}: {mk} {why}"));
            }
        }
        table.apqns.push(status);
    }
    match problems.is_empty() {
        true => Ok(table),
        false => Err((problems, unknown)),
    }
}

fn judge_assert(
    registers: &CcaMkRegisters,
    pair: &MkvpPair,
    check: &AssertMk,
) -> Result<(), String> {
    let now = format!(
        "is NEW {}, CUR {}, OLD {}",
        match &registers.new.vp {
            Some(vp) if registers.new.state == CcaNewState::Full => format!("full {vp}"),
            _ => registers.new.state.word().to_owned(),
        },
        shows(&registers.cur),
        shows(&registers.old)
    );
    let cur_want = match check.current {
        CurrentWk::Expected => pair.current,
        CurrentWk::New => pair.new,
    };
    let cur_ok = holds(&registers.cur, cur_want);
    let new_ok = match check.new {
        NewMk::Full => {
            registers.new.state == CcaNewState::Full
                && registers
                    .new
                    .vp
                    .as_ref()
                    .is_some_and(|v| v.bytes().get(..8) == Some(&pair.new.bytes()[..]))
        }
        NewMk::Empty => registers.new.state == CcaNewState::Empty,
        NewMk::Any => true,
    };
    let old_ok = match check.old {
        OldMk::Expected => holds(&registers.old, pair.current),
        OldMk::Any => true,
    };
    if cur_ok && new_ok && old_ok {
        return Ok(());
    }
    let mut want = vec![format!("CUR valid {cur_want}")];
    match check.new {
        NewMk::Full => want.push(format!("NEW full {}", pair.new)),
        NewMk::Empty => want.push("NEW empty".to_owned()),
        NewMk::Any => {}
    }
    if check.old == OldMk::Expected {
        want.push(format!("OLD valid {}", pair.current));
    }
    Err(format!("{now}, but the plan expects {}", want.join(", ")))
}

fn registers_of(
    status: &mkplan_engine::record::wk::ApqnStatus,
    kind: CcaMkType,
) -> Result<&CcaMkRegisters, String> {
    let Some(cca) = &status.cca else {
        return Err(format!(
            "card type `{}` is not a CCA coprocessor, or its master keys cannot be read",
            status.card_type
        ));
    };
    let Some(registers) = cca.get(kind) else {
        return Err(format!(
            "sysfs does not show the {kind} master key (a kernel before 5.10/5.19): it cannot be checked"
        ));
    };
    if registers.any_unknown() {
        return Err(format!(
            "the {kind} registers read `- -` (unknown: the queue is offline or the read was interrupted)"
        ));
    }
    Ok(registers)
}

/// Checks `mks` of `token` on every APQN. `Err`: every problem, each naming its APQN.
pub fn check_cca(
    host: &dyn HostView,
    token: &Token,
    mks: &[CcaMk],
    need: MkNeed,
) -> Result<CcaRegistersChecked, Vec<String>> {
    let mut out = CcaRegistersChecked::default();
    let mut problems = Vec::new();
    for mk in mks {
        let Some(pair) = token.mks.get(mk) else {
            problems.push(format!("token `{}` declares no {mk} master key", token.id));
            continue;
        };
        let Some(kind) = shown_type(*mk) else {
            out.not_shown.push(mk.to_string());
            continue;
        };
        for apqn in &token.apqns {
            let registers = match read(host, *apqn, kind) {
                Ok(registers) => registers,
                Err(why) => {
                    problems.push(format!("APQN {apqn}: {why}"));
                    continue;
                }
            };
            match judge(&registers, pair, need) {
                Ok(said) => out
                    .checked
                    .push(format!("{} {mk}: {said}", apqn.lszcrypt())),
                Err(why) => problems.push(format!("APQN {apqn}: {mk} {why}")),
            }
        }
    }
    match problems.is_empty() {
        true => Ok(out),
        false => Err(problems),
    }
}

fn read(
    host: &dyn HostView,
    apqn: mkplan_plan::model::Apqn,
    kind: CcaMkType,
) -> Result<CcaMkRegisters, String> {
    let status = host.read_apqn(apqn).map_err(|e| e.to_string())?;
    registers_of(&status, kind).cloned()
}

fn holds(register: &CcaRegister<CcaKeyState>, vp: Mkvp) -> bool {
    register.state == CcaKeyState::Valid
        && register
            .vp
            .as_ref()
            .is_some_and(|v| v.bytes().get(..8) == Some(&vp.bytes()[..]))
}

fn shows(register: &CcaRegister<CcaKeyState>) -> String {
    match &register.vp {
        Some(vp) if register.state == CcaKeyState::Valid => format!("valid {vp}"),
        _ => register.state.word().to_owned(),
    }
}

fn judge(registers: &CcaMkRegisters, pair: &MkvpPair, need: MkNeed) -> Result<String, String> {
    let (cur, old) = (&registers.cur, &registers.old);
    let now = format!("CUR {}, OLD {}", shows(cur), shows(old));
    let ok = match need {
        MkNeed::SetFromCurrent => holds(cur, pair.new) && holds(old, pair.current),
        MkNeed::NewCurrent => holds(cur, pair.new),
        MkNeed::PreviousCurrent => holds(cur, pair.current),
        MkNeed::PreviousKept => holds(cur, pair.current) || holds(old, pair.current),
    };
    if ok {
        return Ok(now);
    }
    Err(match need {
        MkNeed::SetFromCurrent => format!(
            "is {now}, but pkcscca needs CUR valid {} (the new MK, set on the TKE) and OLD valid {} (the keys' MK)",
            pair.new, pair.current
        ),
        MkNeed::NewCurrent => format!("is {now}, but the new MK {} must be current", pair.new),
        MkNeed::PreviousCurrent => format!(
            "is {now}, but the token's current MK {} must still be current",
            pair.current
        ),
        MkNeed::PreviousKept => format!(
            "is {now}: the token's previous MK {} is in neither CUR nor OLD, so keys restored from the backup could never be used or re-enciphered again",
            pair.current
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mkplan_engine::record::wk::CcaVp;

    const CURRENT: &str = "0x1d2c3b4a59687706";
    const NEW: &str = "0x8e7f6a5b4c3d2e1f";

    fn vp(text: &str) -> Option<CcaVp> {
        CcaVp::new(Mkvp::parse(text).expect("an MKVP").bytes().to_vec())
    }

    fn key(state: CcaKeyState, text: Option<&str>) -> CcaRegister<CcaKeyState> {
        CcaRegister {
            state,
            vp: text.and_then(vp),
        }
    }

    fn registers(new: CcaNewState, cur: Option<&str>, old: Option<&str>) -> CcaMkRegisters {
        let valid = |t: Option<&str>| match t {
            Some(_) => key(CcaKeyState::Valid, t),
            None => key(CcaKeyState::Invalid, None),
        };
        CcaMkRegisters {
            new: CcaRegister {
                state: new,
                vp: (new == CcaNewState::Full).then(|| vp(NEW)).flatten(),
            },
            cur: valid(cur),
            old: valid(old),
        }
    }

    fn pair() -> MkvpPair {
        MkvpPair {
            current: Mkvp::parse(CURRENT).unwrap(),
            new: Mkvp::parse(NEW).unwrap(),
        }
    }

    #[test]
    fn pkcscca_needs_the_new_mk_in_cur_and_the_current_one_in_old() {
        let set = registers(CcaNewState::Empty, Some(NEW), Some(CURRENT));
        assert!(judge(&set, &pair(), MkNeed::SetFromCurrent).is_ok());
        let not_set = registers(CcaNewState::Full, Some(CURRENT), None);
        let why = judge(&not_set, &pair(), MkNeed::SetFromCurrent).unwrap_err();
        assert!(
            why.contains("pkcscca needs CUR valid 0x8e7f6a5b4c3d2e1f"),
            "{why}"
        );
        // A second set pushed the previous MK out of OLD: a restore could not be used.
        let twice = registers(CcaNewState::Empty, Some(NEW), Some(NEW));
        assert!(judge(&twice, &pair(), MkNeed::PreviousKept).is_err());
        assert!(judge(&set, &pair(), MkNeed::PreviousKept).is_ok());
        assert!(judge(&not_set, &pair(), MkNeed::PreviousKept).is_ok());
    }

    #[test]
    fn assert_mk_tells_a_partial_new_register_from_a_full_one() {
        let check = AssertMk {
            token: serde_json::from_str("\"cca\"").unwrap(),
            current: CurrentWk::Expected,
            new: NewMk::Full,
            old: OldMk::Any,
        };
        let full = registers(CcaNewState::Full, Some(CURRENT), None);
        assert!(judge_assert(&full, &pair(), &check).is_ok());
        let partial = registers(CcaNewState::Partial, Some(CURRENT), None);
        let why = judge_assert(&partial, &pair(), &check).unwrap_err();
        assert!(
            why.contains("NEW partial") && why.contains("NEW full"),
            "{why}"
        );
    }

    #[test]
    fn an_unknown_register_is_never_taken_for_a_state() {
        let mut unknown = registers(CcaNewState::Empty, Some(NEW), Some(CURRENT));
        unknown.old = key(CcaKeyState::Unknown, None);
        assert!(unknown.any_unknown());
        assert!(judge(&unknown, &pair(), MkNeed::SetFromCurrent).is_err());
    }
}
