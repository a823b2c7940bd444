//! `pkcshsm_mk_change list [-i ID]` (opencryptoki-ep11.md 2.5): every operation (or one),
//! separated by a blank line, in the tool's layout. Patterns in uppercase hex; a slot's label
//! when its token is present (32 characters, blank-padded, as the token info holds it).

use std::fmt::Write;
use std::path::Path;

use crate::mkchange::Present;
use crate::mkchange_ops::{self, OpState, Operation, TypedMkvp, upper};

/// The `State:` text.
fn state_text(state: OpState) -> &'static str {
    match state {
        OpState::Initial => "Initial",
        OpState::Reenciphering => "Re-enciphering of key objects ongoing",
        OpState::Reenciphered => {
            "Key objects have been re-enciphered,\n                 new master key(s) can now be set/activated"
        }
        OpState::Finalizing => "Finalizing",
        OpState::Canceling => "Canceling",
        OpState::Error => "Finalizing or canceling has errored",
    }
}

fn patterns(out: &mut String, indent: &str, list: &[TypedMkvp]) {
    for mkvp in list {
        let _ = writeln!(out, "{indent}Type:    {}", mkvp.kind.name());
        let _ = writeln!(out, "{indent}MKVP:    {}", hex::encode_upper(&mkvp.mkvp));
    }
}

/// One operation's block.
pub(crate) fn render(
    root: &Path,
    op: &Operation,
    present: &[Present],
    lock: &mkchange_ops::OpsLock,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Operation:       {}", op.id);
    let _ = writeln!(out, "    State:       {}", state_text(op.state));
    out.push_str("    APQNs:\n");
    for apqn in &op.apqns {
        let _ = writeln!(out, "        {}", upper(*apqn));
    }
    out.push_str("    New master key verification patterns:\n");
    patterns(&mut out, "        ", &op.new_mkvps);
    out.push_str("    Affected slots:\n");
    for slot in &op.slots {
        let _ = write!(out, "        Slot: {slot}");
        if let Some(token) = present.iter().find(|t| t.record.slot == *slot) {
            let _ = write!(out, " Label: {:<32}", token.label);
        }
        out.push('\n');
        let record = mkchange_ops::load_slot(root, &op.id, *slot, lock)
            .ok()
            .flatten();
        out.push_str("            Current master key verification patterns:\n");
        if let Some(record) = record {
            patterns(&mut out, "                ", &record.current_mkvps);
        }
    }
    out
}
