//! `pkcshsm_mk_change list`'s output (opencryptoki-ep11.md 2.5), read strictly: a line
//! this reader does not know is an error naming it, and an unknown state is kept as
//! unknown, never guessed.

use std::collections::BTreeMap;

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

/// A `Type:` line: `EP11`, or `CCA SYM` / `CCA ASYM` / `CCA AES` / `CCA APKA`.
#[derive(Clone, Copy)]
enum PatternType {
    Ep11,
    Cca(&'static str),
}

impl PatternType {
    fn parse(text: &str) -> Option<Self> {
        if text == "EP11" {
            return Some(Self::Ep11);
        }
        let mk = text.strip_prefix("CCA ")?;
        ["SYM", "ASYM", "AES", "APKA"]
            .into_iter()
            .find(|known| *known == mk)
            .map(Self::Cca)
    }
}

/// Every operation the output shows, in order.
pub fn parse(text: &str) -> Result<Vec<MkOperation>, String> {
    let mut ops: Vec<MkOperation> = Vec::new();
    let mut part = Part::Head;
    let mut pattern_type: Option<PatternType> = None;
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
                new_cca_mkvps: BTreeMap::new(),
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
                        pattern_type = Some(PatternType::parse(kind.trim()).ok_or_else(unknown)?);
                    } else if let Some(mkvp) = trimmed.strip_prefix("MKVP:") {
                        let mkvp = mkvp.trim().to_ascii_lowercase();
                        match (part, pattern_type.take()) {
                            (Part::NewPatterns, Some(PatternType::Ep11)) => {
                                op.new_wkvp = Some(mkvp)
                            }
                            (Part::NewPatterns, Some(PatternType::Cca(mk))) => {
                                op.new_cca_mkvps.insert(mk.to_owned(), mkvp);
                            }
                            // A slot's current patterns are the tool's own record.
                            (Part::SlotPatterns, Some(_)) => {}
                            // A pattern with no `Type:` before it cannot be attributed.
                            (_, _) => return Err(unknown()),
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

    /// An operation over an EP11 and a CCA token (opencryptoki-ep11.md 2.5's layout).
    const MIXED: &str = "Operation:       Qw3Er4\n    State:       Key objects have been re-enciphered,\n                 new master key(s) can now be set/activated\n    APQNs:\n        0A.0011\n        0C.0011\n    New master key verification patterns:\n        Type:    EP11\n        MKVP:    9B7D4E0A11F35C8822D0B6E4A7F1C3D9\n        Type:    CCA AES\n        MKVP:    8E7F6A5B4C3D2E1F\n        Type:    CCA APKA\n        MKVP:    3A1F0E9D8C7B6A59\n    Affected slots:\n        Slot: 4 Label: ep11\n            Current master key verification patterns:\n                Type:    EP11\n                MKVP:    6F1E1B26C2C5A2B4F1EA3FA7C1C9D3E5\n        Slot: 5 Label: cca\n            Current master key verification patterns:\n                Type:    CCA AES\n                MKVP:    1D2C3B4A59687706\n                Type:    CCA APKA\n                MKVP:    755CB8E7740DAE51\n";

    #[test]
    fn reads_the_new_cca_mkvps_per_type_beside_the_ep11_wkvp() {
        let ops = parse(MIXED).unwrap();
        assert_eq!(ops.len(), 1);
        assert_eq!(
            ops[0].new_wkvp.as_deref(),
            Some("9b7d4e0a11f35c8822d0b6e4a7f1c3d9")
        );
        let cca: Vec<(&str, &str)> = ops[0]
            .new_cca_mkvps
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        // The slots' current patterns are not taken for new ones.
        assert_eq!(
            cca,
            [("AES", "8e7f6a5b4c3d2e1f"), ("APKA", "3a1f0e9d8c7b6a59")]
        );
        assert_eq!(ops[0].slots, [4, 5]);
    }

    #[test]
    fn an_unknown_pattern_type_or_an_unattributed_pattern_is_an_error() {
        let head = "Operation:       Ab12Cd\n    New master key verification patterns:\n";
        let err = parse(&format!("{head}        Type:    CCA RSA\n")).unwrap_err();
        assert!(err.contains("`Type:    CCA RSA`"), "{err}");
        let err = parse(&format!("{head}        MKVP:    8E7F6A5B4C3D2E1F\n")).unwrap_err();
        assert!(err.contains("`MKVP:    8E7F6A5B4C3D2E1F`"), "{err}");
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
