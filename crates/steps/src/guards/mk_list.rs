//! `pkcshsm_mk_change list`'s output (opencryptoki-ep11.md 2.5), read strictly: a line
//! this reader does not know is an error naming it, and an unknown state is kept as
//! unknown, never guessed.

use mkplan_engine::record::mk_change::{MkOperation, OpState, OperationId};

#[derive(Clone, Copy, PartialEq)]
enum Part {
    Head,
    State,
    Apqns,
    NewPatterns,
    Slots,
    SlotPatterns,
}

/// Every operation the output shows, in order.
pub fn parse(text: &str) -> Result<Vec<MkOperation>, String> {
    let mut ops: Vec<MkOperation> = Vec::new();
    let mut part = Part::Head;
    let mut pattern_type: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        let unknown =
            || format!("`pkcshsm_mk_change list` printed a line mkplan does not know: `{trimmed}`");
        if let Some(id) = trimmed.strip_prefix("Operation:") {
            let id = OperationId::parse(id.trim()).ok_or_else(unknown)?;
            ops.push(MkOperation {
                id,
                state: OpState::Unknown(String::new()),
                apqns: Vec::new(),
                new_wkvp: None,
                slots: Vec::new(),
            });
            part = Part::Head;
            continue;
        }
        let op = ops.last_mut().ok_or_else(unknown)?;
        if let Some(state) = trimmed.strip_prefix("State:") {
            op.state = OpState::from_list(state);
            part = Part::State;
            continue;
        }
        if part == Part::SlotPatterns && trimmed.starts_with("Slot:") {
            part = Part::Slots;
        }
        match trimmed {
            "APQNs:" => part = Part::Apqns,
            "New master key verification patterns:" => part = Part::NewPatterns,
            "Affected slots:" => part = Part::Slots,
            "Current master key verification patterns:" if part != Part::Head => {
                part = Part::SlotPatterns
            }
            _ => match part {
                // The state's second line (`new master key(s) can now be set/activated`).
                Part::State => {}
                Part::Apqns => op.apqns.push(trimmed.to_ascii_lowercase()),
                Part::NewPatterns | Part::SlotPatterns => {
                    if let Some(kind) = trimmed.strip_prefix("Type:") {
                        pattern_type = Some(kind.trim().to_owned());
                    } else if let Some(mkvp) = trimmed.strip_prefix("MKVP:") {
                        if part == Part::NewPatterns && pattern_type.as_deref() == Some("EP11") {
                            op.new_wkvp = Some(mkvp.trim().to_ascii_lowercase());
                        }
                    } else {
                        return Err(unknown());
                    }
                }
                Part::Slots => {
                    let slot = trimmed
                        .strip_prefix("Slot:")
                        .and_then(|rest| rest.split_whitespace().next())
                        .and_then(|n| n.parse::<u16>().ok())
                        .ok_or_else(unknown)?;
                    op.slots.push(slot);
                }
                Part::Head => return Err(unknown()),
            },
        }
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = "Operation:       Ab12Cd\n    State:       Key objects have been re-enciphered,\n                 new master key(s) can now be set/activated\n    APQNs:\n        0A.0011\n        0B.0011\n    New master key verification patterns:\n        Type:    EP11\n        MKVP:    9B7D4E0A11F35C8822D0B6E4A7F1C3D9\n    Affected slots:\n        Slot: 4 Label: ep11                            \n            Current master key verification patterns:\n                Type:    EP11\n                MKVP:    6F1E1B26C2C5A2B4F1EA3FA7C1C9D3E5\n        Slot: 6\n            Current master key verification patterns:\n\nOperation:       Zz9Yy8\n    State:       Finalizing or canceling has errored\n    APQNs:\n        0C.0001\n    New master key verification patterns:\n        Type:    EP11\n        MKVP:    00\n    Affected slots:\n";

    #[test]
    fn reads_every_operation_with_its_state_apqns_pattern_and_slots() {
        let ops = parse(TWO).unwrap();
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[0].id.as_str(), "Ab12Cd");
        assert_eq!(ops[0].state, OpState::Reenciphered);
        assert_eq!(ops[0].apqns, ["0a.0011", "0b.0011"]);
        assert_eq!(
            ops[0].new_wkvp.as_deref(),
            Some("9b7d4e0a11f35c8822d0b6e4a7f1c3d9")
        );
        assert_eq!(ops[0].slots, [4, 6]);
        assert_eq!(ops[1].state, OpState::Error);
    }

    #[test]
    fn an_unknown_line_is_an_error_naming_it() {
        let err = parse("Operation:       Ab12Cd\n    Colour:      blue\n").unwrap_err();
        assert!(err.contains("`Colour:      blue`"), "{err}");
    }

    #[test]
    fn an_unknown_state_is_kept_unknown() {
        let ops = parse("Operation:       Ab12Cd\n    State:       Sleeping\n").unwrap();
        assert_eq!(ops[0].state, OpState::Unknown("Sleeping".to_owned()));
    }
}
