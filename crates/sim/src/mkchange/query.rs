//! The query events of `pkcshsm_mk_change` as each token answers them in the tool's process
//! (opencryptoki-ep11.md 2.3 step 4, 2.4 step 2): INITIATE (may this token join the
//! operation?), FINALIZE and CANCEL (may it end it?). A refusing token says why in the
//! syslog (the tool only prints which slot refused). The EP11 messages are the reference's;
//! the CCA ones follow them (the reference quotes none).

use crate::cca::{MkType, NewState};
use crate::mkchange::Present;
use crate::mkchange_ops::{KeyType, Operation, SlotRecord, TypedMkvp, upper};
use crate::presence::{cca_view, ep11_view};
use crate::state::{CurRegister, NewRegister, SimState, TokenKind};
use crate::token::token_apqns;
use crate::{Fault, cca_sysfs, sysfs, syslog};
use mkplan_plan::model::Apqn;

/// A token's answer to INITIATE.
pub(crate) enum Initiate {
    NotAffected,
    Affected(Vec<TypedMkvp>),
    Refused,
}

fn tool_upper(apqn: Apqn) -> String {
    upper((apqn.adapter(), u16::from(apqn.domain())))
}

fn refuse(root: &std::path::Path, problems: &[String]) {
    for problem in problems {
        syslog::log(root, "pkcshsm_mk_change", problem);
    }
}

fn ep11_answers(state: &SimState, apqn: Apqn) -> Option<&crate::state::Queue> {
    let queue = state.apqns.get(&apqn.lszcrypt())?;
    let card = state.cards.get(&format!("{:02x}", apqn.adapter()))?;
    sysfs::answers(card, queue).then_some(queue)
}

fn cca_answers(state: &SimState, apqn: Apqn) -> Option<&crate::cca::CcaQueue> {
    let queue = state.cca_apqns.get(&apqn.lszcrypt())?;
    let card = state.cards.get(&format!("{:02x}", apqn.adapter()))?;
    cca_sysfs::answers(card, queue).then_some(queue)
}

/// Whether the operation affects the token: EP11, if it has an EP11 WKVP and the token uses
/// APQN_ANY or one of its APQNs is in the operation; CCA, if it has a CCA MKVP and one of
/// the token's APQNs is in it.
pub(crate) fn affected(
    root: &std::path::Path,
    state: &SimState,
    token: &Present,
    op: &Operation,
) -> bool {
    match token.record.kind {
        TokenKind::Ep11 => {
            op.new_mkvp(KeyType::Ep11).is_some()
                && ep11_view(root, state, &token.record)
                    .is_ok_and(|v| v.any || v.apqns.iter().any(|a| op.includes(*a)))
        }
        TokenKind::Cca => {
            !op.cca_token_types().is_empty()
                && token_apqns(&token.record).iter().any(|a| op.includes(*a))
        }
    }
}

/// INITIATE, in the tool's process.
pub(crate) fn initiate(
    root: &std::path::Path,
    state: &SimState,
    faults: &[Fault],
    token: &Present,
    op: &Operation,
) -> Initiate {
    if !affected(root, state, token, op) {
        return Initiate::NotAffected;
    }
    let slot = token.record.slot;
    let (mut problems, current) = match token.record.kind {
        TokenKind::Ep11 => ep11_initiate(root, state, token, op),
        TokenKind::Cca => cca_initiate(root, state, token, op),
    };
    if faults.contains(&Fault::MkChangeRefuseInitiate(slot)) {
        problems.push(format!(
            "Slot {slot}: the token answered the query event negatively (simulated fault)"
        ));
    }
    if problems.is_empty() {
        Initiate::Affected(current)
    } else {
        refuse(root, &problems);
        Initiate::Refused
    }
}

fn ep11_initiate(
    root: &std::path::Path,
    state: &SimState,
    token: &Present,
    op: &Operation,
) -> (Vec<String>, Vec<TypedMkvp>) {
    let slot = token.record.slot;
    let new = op.new_mkvp(KeyType::Ep11).unwrap_or_default();
    let Ok(view) = ep11_view(root, state, &token.record) else {
        return (
            vec![format!(
                "Slot {slot}: the token configuration cannot be read"
            )],
            vec![],
        );
    };
    // EXPECTED_WKVP, or what the APQNs agreed on when the token started.
    let expected: Option<[u8; 16]> = view.expected.map(|w| *w.bytes()).or_else(|| {
        view.apqns.iter().find_map(|a| {
            ep11_answers(state, *a)?
                .cur
                .vp
                .map(|vp| vp[..16].try_into().expect("16"))
        })
    });
    let mut problems = Vec::new();
    for apqn in &view.apqns {
        let up = tool_upper(*apqn);
        let queue = ep11_answers(state, *apqn);
        if view.any && queue.is_none() {
            continue;
        }
        if !op.includes(*apqn) {
            problems.push(format!(
                "Slot {slot}: APQN {up} must be included into this operation."
            ));
            continue;
        }
        let Some(queue) = queue else { continue };
        let (CurRegister::Valid, Some(cur)) = (queue.cur.state, queue.cur.vp) else {
            problems.push(format!(
                "Slot {slot}: No current EP11 wrapping key is set on APQN {up}"
            ));
            continue;
        };
        if expected.is_some_and(|e| cur[..16] != e) {
            problems.push(format!(
                "Slot {slot}: The current EP11 WK on APQN {up} does not match the expected one"
            ));
        }
        match (queue.new.state, queue.new.vp) {
            (NewRegister::Committed, Some(vp)) if vp[..16] != *new => problems.push(format!(
                "Slot {slot}: The new EP11 WK on APQN {up} does not match the specified WKVP"
            )),
            (NewRegister::Committed, Some(_)) => {}
            _ => problems.push(format!(
                "Slot {slot}: No new EP11 wrapping key is set/committed on APQN {up}"
            )),
        }
    }
    let current = expected.map(TypedMkvp::ep11).into_iter().collect();
    (problems, current)
}

fn cca_initiate(
    root: &std::path::Path,
    state: &SimState,
    token: &Present,
    op: &Operation,
) -> (Vec<String>, Vec<TypedMkvp>) {
    let slot = token.record.slot;
    let apqns = token_apqns(&token.record);
    let expected = cca_view(root, &token.record)
        .map(|v| v.expected)
        .unwrap_or_default();
    let mut problems = Vec::new();
    let mut current = Vec::new();
    for mk in op.cca_token_types() {
        let new = op.new_mkvp(KeyType::Cca(mk)).unwrap_or_default();
        let wanted = expected.get(&mk).copied().or_else(|| {
            apqns
                .iter()
                .find_map(|a| cca_answers(state, *a)?.mk(mk).cur.valid_vp())
        });
        for apqn in &apqns {
            let up = tool_upper(*apqn);
            if !op.includes(*apqn) {
                problems.push(format!(
                    "Slot {slot}: APQN {up} must be included into this operation."
                ));
                continue;
            }
            let Some(queue) = cca_answers(state, *apqn) else {
                continue;
            };
            let registers = queue.mk(mk);
            let Some(cur) = registers.cur.valid_vp() else {
                problems.push(format!(
                    "Slot {slot}: No current CCA {mk} master key is set on APQN {up}"
                ));
                continue;
            };
            if wanted.is_some_and(|w| w != cur) {
                problems.push(format!(
                    "Slot {slot}: The current CCA {mk} master key on APQN {up} does not match the expected one"
                ));
            }
            match registers.new.full_vp() {
                Some(vp) if vp.bytes()[..] != *new => problems.push(format!(
                    "Slot {slot}: The new CCA {mk} master key on APQN {up} does not match the specified MKVP"
                )),
                Some(_) => {}
                None => problems.push(format!("Slot {slot}: No new CCA {mk} master key is set on APQN {up}")),
            }
        }
        current.extend(wanted.map(|w| TypedMkvp::cca(mk, w)));
    }
    (problems, current)
}

/// Which end of the operation is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    Finalize,
    Cancel,
}

impl End {
    pub fn verb(self) -> &'static str {
        match self {
            End::Finalize => "finalize",
            End::Cancel => "cancel",
        }
    }
}

/// FINALIZE_QUERY / CANCEL_QUERY: `true` when the token agrees. Finalize: every APQN's
/// current WK/MK is already the new one (CCA: the NEW register is empty again), and the
/// expected pattern in the config file names the new one. Cancel: every APQN still has the
/// old one, and the config file still names it.
pub(crate) fn may_end(
    root: &std::path::Path,
    state: &SimState,
    token: &Present,
    op: &Operation,
    record: &SlotRecord,
    end: End,
) -> bool {
    let problems = match token.record.kind {
        TokenKind::Ep11 => ep11_end(root, state, token, op, record, end),
        TokenKind::Cca => cca_end(root, state, token, op, record, end),
    };
    refuse(root, &problems);
    problems.is_empty()
}

fn ep11_end(
    root: &std::path::Path,
    state: &SimState,
    token: &Present,
    op: &Operation,
    record: &SlotRecord,
    end: End,
) -> Vec<String> {
    let slot = token.record.slot;
    let Ok(view) = ep11_view(root, state, &token.record) else {
        return vec![format!(
            "Slot {slot}: the token configuration cannot be read"
        )];
    };
    let (want, which, what) = match end {
        End::Finalize => (
            op.new_mkvp(KeyType::Ep11),
            "new",
            "does not match the new WK",
        ),
        End::Cancel => (
            record.current(KeyType::Ep11),
            "current",
            "does not match the expected one",
        ),
    };
    let want = want.unwrap_or_default();
    let mut problems = Vec::new();
    for apqn in &view.apqns {
        let Some(queue) = ep11_answers(state, *apqn) else {
            continue;
        };
        if !queue
            .cur
            .vp
            .is_some_and(|vp| queue.cur.state == CurRegister::Valid && vp[..16] == *want)
        {
            problems.push(format!(
                "Slot {slot}: The current EP11 WK on APQN {} {what}",
                tool_upper(*apqn)
            ));
        }
    }
    if let (Some(expected), Some(path)) = (view.expected, &view.config)
        && expected.bytes()[..] != *want
    {
        problems.push(format!(
            "Expected WKVP in config file '{}' does not specify the {which} WKVP.",
            path.display()
        ));
    }
    problems
}

fn cca_end(
    root: &std::path::Path,
    state: &SimState,
    token: &Present,
    op: &Operation,
    record: &SlotRecord,
    end: End,
) -> Vec<String> {
    let slot = token.record.slot;
    let view = cca_view(root, &token.record).ok();
    let mut problems = Vec::new();
    for mk in op.cca_token_types() {
        let kind = KeyType::Cca(mk);
        let (want, which, what) = match end {
            End::Finalize => (
                op.new_mkvp(kind),
                "new",
                "does not match the new master key",
            ),
            End::Cancel => (
                record.current(kind),
                "current",
                "does not match the expected one",
            ),
        };
        let want = want.unwrap_or_default();
        for apqn in token_apqns(&token.record) {
            let Some(queue) = cca_answers(state, apqn) else {
                continue;
            };
            let up = tool_upper(apqn);
            let registers = queue.mk(mk);
            if registers
                .cur
                .valid_vp()
                .is_none_or(|vp| vp.bytes()[..] != *want)
            {
                problems.push(format!(
                    "Slot {slot}: The current CCA {mk} master key on APQN {up} {what}"
                ));
            }
            if end == End::Finalize && registers.new.state != NewState::Empty {
                problems.push(format!(
                    "Slot {slot}: The new CCA {mk} master key register on APQN {up} is not empty"
                ));
            }
        }
        if let Some(view) = &view
            && let (Some(expected), Some(path)) = (view.expected.get(&mk), &view.config)
            && expected.bytes()[..] != *want
        {
            problems.push(expected_mkvps_problem(path, mk, which));
        }
    }
    problems
}

fn expected_mkvps_problem(path: &std::path::Path, mk: MkType, which: &str) -> String {
    format!(
        "Expected MKVPS in config file '{}' do not specify the {which} {mk} MKVP.",
        path.display()
    )
}
