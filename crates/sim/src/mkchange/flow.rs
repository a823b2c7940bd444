//! The three flows of `pkcshsm_mk_change` (opencryptoki-ep11.md 2.3 – 2.5), step by step,
//! with the tool's output on stdout and `warnx` on stderr.

use std::collections::BTreeSet;

use crate::cca::MkType;
use crate::mkchange::args::Args;
use crate::mkchange::passes::{self, Pass};
use crate::mkchange::query::{self, End, Initiate};
use crate::mkchange::{Present, Tool, list, warnx};
use crate::mkchange_ops::{self, KeyType, OpState, Operation, SlotRecord, TypedMkvp, upper};
use crate::pin_prompt::{out, read_line};
use crate::syslog;

const SYSLOG_HINT: &str = "Check the syslog for details about the errors reported by the tokens.";

/// An operation of other APQNs or MK types may run beside this one; one that shares an APQN
/// and an MK type may not (2.3 step 1). Every intersection is named before the tool gives up,
/// each MK type as the tool's `get_mk_type_string` spells it.
fn intersecting(tool: &Tool, op: &Operation, lock: &mkchange_ops::OpsLock) -> bool {
    let others = mkchange_ops::all(&tool.root, lock).unwrap_or_default();
    let mut found = false;
    for other in others.iter().filter(|o| o.id != op.id) {
        for apqn in op.apqns.iter().filter(|a| other.apqns.contains(a)) {
            for kind in op.new_mkvps.iter().map(|m| m.kind) {
                if other.new_mkvp(kind).is_some() {
                    warnx(&format!(
                        "Operation '{}' also affects APQN {} and MK type '{}'",
                        other.id,
                        upper(*apqn),
                        intersect_name(kind)
                    ));
                    found = true;
                }
            }
        }
    }
    if found {
        warnx("Intersecting master key operations are active, aborting");
    }
    found
}

/// `get_mk_type_string` in `pkcshsm_mk_change.c`: not the names `list` prints — EP11 is
/// `EP11 WK`, and AES is spelled with an underscore.
fn intersect_name(kind: KeyType) -> &'static str {
    match kind {
        KeyType::Ep11 => "EP11 WK",
        KeyType::Cca(MkType::Sym) => "CCA SYM",
        KeyType::Cca(MkType::Asym) => "CCA ASYM",
        KeyType::Cca(MkType::Aes) => "CCA_AES",
        KeyType::Cca(MkType::Apka) => "CCA APKA",
    }
}

/// 2.3 step 2: asks whether to go on when slots have no token.
fn confirm_missing(tool: &Tool) -> bool {
    if tool.missing.is_empty() {
        return true;
    }
    let mut text = "WARNING: The following slots have no token present:\n".to_owned();
    for slot in &tool.missing {
        text.push_str(&format!("  Slot {slot}\n"));
    }
    text.push_str(
        "ATTENTION: If you start a concurrent master key change operation while not\n\
         all expected tokens are present, the key objects of those tokens may be lost,\n\
         if the token would be affected by the master key change.\n\
         Continue [y/N]? ",
    );
    out(&text);
    if read_line().is_some_and(|answer| answer.starts_with('y')) {
        return true;
    }
    warnx("Aborted by user.");
    false
}

/// Removes the operation's files (a failed or aborted reencipher leaves none).
fn discard(tool: &Tool, op: &Operation) {
    if let Ok(lock) = mkchange_ops::lock_exclusive(&tool.root) {
        let _ = mkchange_ops::remove(&tool.root, &op.id, &lock);
    }
}

fn set_state(tool: &Tool, op: &mut Operation, state: OpState) -> bool {
    op.state = state;
    mkchange_ops::lock_exclusive(&tool.root)
        .and_then(|lock| mkchange_ops::save(&tool.root, op, &lock))
        .is_ok()
}

/// `reencipher`.
pub(crate) fn reencipher(tool: &Tool, args: &Args) -> i32 {
    let mut new_mkvps: Vec<TypedMkvp> = args.ep11_wkvp.map(TypedMkvp::ep11).into_iter().collect();
    new_mkvps.extend(args.cca.iter().map(|(mk, vp)| TypedMkvp::cca(*mk, *vp)));
    let mut apqns = args.apqns.clone();
    apqns.dedup();
    let mut op = Operation {
        mkplan_sim_hsm_mk_change: 1,
        id: String::new(),
        state: OpState::Initial,
        apqns,
        new_mkvps,
        slots: Vec::new(),
    };
    {
        let Ok(lock) = mkchange_ops::lock_shared(&tool.root) else {
            return 1;
        };
        if intersecting(tool, &op, &lock) {
            return 1;
        }
    }
    if !confirm_missing(tool) {
        return 1;
    }
    {
        let Ok(lock) = mkchange_ops::lock_exclusive(&tool.root) else {
            return 1;
        };
        if intersecting(tool, &op, &lock) {
            return 1;
        }
        let Ok(id) = mkchange_ops::reserve_id(&tool.root, &lock) else {
            return 1;
        };
        op.id = id;
        if mkchange_ops::save(&tool.root, &op, &lock).is_err() {
            return 1;
        }
    }
    let code = reencipher_operation(tool, &mut op);
    if code != 0 {
        discard(tool, &op);
    }
    code
}

fn reencipher_operation(tool: &Tool, op: &mut Operation) -> i32 {
    let Some(affected) = initiate_all(tool, op) else {
        return 1;
    };
    out("The following tokens are affected by this master key change:\n");
    for (token, _) in &affected {
        out(&format!(
            "  Slot {}: Label: {:<32}\n",
            token.record.slot, token.label
        ));
    }
    for (token, _) in &affected {
        if !tool.log_in(token) {
            return 1;
        }
    }
    if !set_state(tool, op, OpState::Reenciphering) {
        return 1;
    }
    out("Re-enciphering, please wait...\n");
    let tokens: Vec<&Present> = affected.iter().map(|(t, _)| *t).collect();
    let mut done = 0;
    if passes::run(
        &tool.root,
        &tool.state,
        &tool.faults,
        &tokens,
        op,
        Pass::Reencipher,
        &mut done,
    )
    .is_err()
    {
        warnx("At least one token failed to perform the key re-encryption.");
        warnx(SYSLOG_HINT);
        // The tool cancels by itself.
        set_state(tool, op, OpState::Canceling);
        let mut undone = 0;
        let _ = passes::run(
            &tool.root,
            &tool.state,
            &[],
            &tokens,
            op,
            Pass::Cancel,
            &mut undone,
        );
        return 1;
    }
    out("Completed.\n");
    if !set_state(tool, op, OpState::Reenciphered) {
        return 1;
    }
    let id = &op.id;
    out(&format!(
        "\nMaster key change operation '{id}' created.\n\n\
         Once the new master keys have been set/activated:\n \
         - If you specified EXPECTED_MKVPS in your token configuration file(s),\n   \
         you must now replace the old MKVPs with the new MKVPs. - Run 'pkcshsm_mk_change finalize --id {id}' when the new master\n   \
         keys have been set/activated.\n"
    ));
    0
}

/// 2.3 step 4: the INITIATE query to every present token; the affected ones with their
/// current patterns (saved as `<ID>-<slot>`), or `None` after the tool said why not.
fn initiate_all<'t>(tool: &'t Tool, op: &mut Operation) -> Option<Vec<(&'t Present, SlotRecord)>> {
    let mut affected = Vec::new();
    let mut refused = false;
    for token in &tool.present {
        let slot = token.record.slot;
        if tool
            .present
            .iter()
            .filter(|t| t.label == token.label)
            .count()
            > 1
        {
            warnx(&format!(
                "More than one token responded to the query event for slot {slot}"
            ));
            warnx("Possibly multiple tokens use the same label?");
            return None;
        }
        match query::initiate(&tool.root, &tool.state, &tool.faults, token, op) {
            Initiate::NotAffected => {}
            Initiate::Refused => {
                warnx(&format!(
                    "Token in slot {slot} is unable to perform the master key change."
                ));
                refused = true;
            }
            Initiate::Affected(current) => affected.push((
                token,
                SlotRecord {
                    mkplan_sim_hsm_mk_change_slot: 1,
                    id: op.id.clone(),
                    slot,
                    current_mkvps: current,
                },
            )),
        }
    }
    if refused {
        warnx("At least one token is unable to perform the master key change, aborting.");
        return None;
    }
    if affected.is_empty() {
        warnx("No token is affected by this master key change, aborting");
        return None;
    }
    op.slots = affected.iter().map(|(t, _)| t.record.slot).collect();
    let lock = mkchange_ops::lock_exclusive(&tool.root).ok()?;
    for (_, record) in &affected {
        mkchange_ops::save_slot(&tool.root, record, &lock).ok()?;
    }
    mkchange_ops::save(&tool.root, op, &lock).ok()?;
    Some(affected)
}

/// The operation `id` and its slots' records, or `None` after saying it is not there.
fn load_operation(tool: &Tool, id: &str) -> Option<(Operation, Vec<Option<SlotRecord>>)> {
    let loaded = mkchange_ops::lock_shared(&tool.root).and_then(|lock| {
        let Some(op) = mkchange_ops::load(&tool.root, id, &lock)? else {
            return Ok(None);
        };
        let records = op
            .slots
            .iter()
            .map(|slot| mkchange_ops::load_slot(&tool.root, id, *slot, &lock))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some((op, records)))
    });
    let found = loaded.ok().flatten();
    if found.is_none() {
        warnx(&format!(
            "HSM master key change operation '{id}' not found."
        ));
    }
    found
}

/// 2.4 step 2: the same slots are affected as at reencipher time, and every token agrees
/// to end the operation this way; the tokens, or `None` after the tool said why not.
fn tokens_agree<'t>(
    tool: &'t Tool,
    op: &Operation,
    records: &[Option<SlotRecord>],
    end: End,
) -> Option<Vec<&'t Present>> {
    let now: BTreeSet<u64> = tool
        .present
        .iter()
        .filter(|t| query::affected(&tool.root, &tool.state, t, op))
        .map(|t| t.record.slot)
        .collect();
    let tokens: Vec<&Present> = op.slots.iter().filter_map(|s| tool.token(*s)).collect();
    if now != op.slots.iter().copied().collect() || tokens.len() != records.len() {
        warnx(
            "The list of slots affected by this master key change has changed\nsince initiating this master key change operation.",
        );
        return None;
    }
    let verb = end.verb();
    let mut refused = false;
    for (token, record) in tokens.iter().zip(records) {
        let agrees = record
            .as_ref()
            .is_some_and(|r| query::may_end(&tool.root, &tool.state, token, op, r, end));
        if !agrees {
            warnx(&format!(
                "Token in slot {} is unable to {verb} the master key change.",
                token.record.slot
            ));
            refused = true;
        }
    }
    if refused {
        warnx(&format!(
            "At least one token is unable to {verb} the master key change, aborting."
        ));
        return None;
    }
    Some(tokens)
}

/// `finalize` or `cancel`.
pub(crate) fn end(tool: &Tool, args: &Args, end: End) -> i32 {
    let id = args.id.as_deref().unwrap_or_default();
    let Some((mut op, records)) = load_operation(tool, id) else {
        return 1;
    };
    if !matches!(op.state, OpState::Reenciphered | OpState::Error) {
        let done = match end {
            End::Finalize => "finalized",
            End::Cancel => "canceled",
        };
        warnx(&format!(
            "The HSM master key change operation '{id}' is in a state where\nit can not be {done}."
        ));
        return 1;
    }
    let Some(tokens) = tokens_agree(tool, &op, &records, end) else {
        return 1;
    };
    if !tokens.iter().all(|t| tool.log_in(t)) {
        return 1;
    }
    end_passes(tool, &mut op, &tokens, end)
}

/// 2.4 steps 4–6: the tool's pass, the state saved, the other processes' pass (they poll
/// the operation files), the tool's pass again, then the files go.
fn end_passes(tool: &Tool, op: &mut Operation, tokens: &[&Present], end: End) -> i32 {
    let (pass, state, progress, done_word) = match end {
        End::Finalize => (
            Pass::Finalize,
            OpState::Finalizing,
            "Finalizing",
            "finalized",
        ),
        End::Cancel => (Pass::Cancel, OpState::Canceling, "Canceling", "canceled"),
    };
    out(&format!("{progress}, please wait...\n"));
    let mut done = 0;
    let root = &tool.root;
    let ok = passes::run(root, &tool.state, &tool.faults, tokens, op, pass, &mut done).is_ok()
        && set_state(tool, op, state)
        && passes::run(root, &tool.state, &tool.faults, tokens, op, pass, &mut done).is_ok();
    if !ok {
        warnx(&format!(
            "At least one token failed to {} the master key change operation.",
            end.verb()
        ));
        warnx(SYSLOG_HINT);
        set_state(tool, op, OpState::Error);
        return 1;
    }
    discard(tool, op);
    for token in tokens {
        let kind = match token.record.kind {
            crate::state::TokenKind::Ep11 => "EP11",
            crate::state::TokenKind::Cca => "CCA",
        };
        syslog::log(
            root,
            "pkcshsm_mk_change",
            &format!(
                "Slot {}: Concurrent HSM master key change operation {} is {done_word}, {kind} token now use multi-APQN mode",
                token.record.slot, op.id
            ),
        );
    }
    out(&format!(
        "\nMaster key change operation '{}' successfully {done_word}.\n",
        op.id
    ));
    0
}

/// `list`.
pub(crate) fn list(tool: &Tool, id: Option<&str>) -> i32 {
    let Ok(lock) = mkchange_ops::lock_shared(&tool.root) else {
        return 1;
    };
    let ops = match id {
        Some(id) => match mkchange_ops::load(&tool.root, id, &lock) {
            Ok(Some(op)) => vec![op],
            _ => {
                warnx(&format!(
                    "HSM master key change operation '{id}' not found."
                ));
                return 1;
            }
        },
        None => mkchange_ops::all(&tool.root, &lock).unwrap_or_default(),
    };
    let blocks: Vec<String> = ops
        .iter()
        .map(|op| list::render(&tool.root, op, &tool.present, &lock))
        .collect();
    out(&blocks.join("\n"));
    0
}
