//! The sysfs side of CCA APQNs (`CEX8C` cards): whether a queue answers, and `mkvps` in the
//! kernel's CCA format (zcrypt-sysfs.md 1.6), with the forms captured from real cards (1.6b)
//! (`sysfs` writes them into the tree with the EP11 queues):
//!
//! * `<X> NEW: empty|partial|full 0x<vp>` and `<X> CUR|OLD: invalid|valid 0x<vp>`, AES then
//!   APKA then ASYM; the VP is printed only for a full NEW or a valid CUR/OLD register, else
//!   `0x` and zeros (16 hex digits for AES/APKA, 32 for ASYM).
//! * An ASYM MK never loaded on the card: `ASYM NEW: empty -`, `ASYM CUR: empty -`,
//!   `ASYM OLD: empty -` (as captured: `empty` on CUR and OLD too, and no pattern).
//! * No answer from the card (queue offline, check-stopped): every line `<X> <REG>: - -`;
//!   an interrupted read (`readfault`): every line, or only the APKA lines.
//! * Older kernels print fewer registers ([`CcaSysfsForm`]); SYM never has a line.

use crate::cca::{CcaQueue, CcaSysfsForm, KeyRegister, KeyState, MkRegisters, MkType, NewState};
use crate::readfault::ReadScope;
use crate::state::Card;

/// Whether the card answers the queue's info query (as `sysfs::answers` for EP11).
pub(crate) fn answers(card: &Card, queue: &CcaQueue) -> bool {
    queue_online(card, queue) && !card.chkstop && !queue.chkstop
}

/// What the queue's `online` reads.
pub(crate) fn queue_online(card: &Card, queue: &CcaQueue) -> bool {
    queue.online && queue.config && card.online && card.config
}

/// `mkvps` of a CCA queue, byte for byte.
pub(crate) fn mkvps(card: &Card, queue: &CcaQueue, form: CcaSysfsForm) -> String {
    let answering = answers(card, queue);
    let mut text = String::new();
    for &mk in form.registers() {
        let interrupted = match queue.read_fault.map(|f| f.scope) {
            Some(ReadScope::All) => true,
            Some(ReadScope::Apka) => mk == MkType::Apka,
            None => false,
        };
        if !answering || interrupted {
            for register in ["NEW", "CUR", "OLD"] {
                text.push_str(&format!("{mk} {register}: - -\n"));
            }
        } else {
            text.push_str(&registers_text(mk, &queue.mk(mk)));
        }
    }
    text
}

/// The three lines of one MK type that the card answered for.
fn registers_text(mk: MkType, registers: &MkRegisters) -> String {
    if mk == MkType::Asym && registers.is_unloaded() {
        return "ASYM NEW: empty -\nASYM CUR: empty -\nASYM OLD: empty -\n".to_owned();
    }
    let hex = |vp: Option<crate::cca::Mkvp>| match vp {
        Some(vp) => hex::encode(vp.sysfs_vp(mk)),
        None => "0".repeat(2 * mk.sysfs_vp_len()),
    };
    let new_word = match registers.new.state {
        NewState::Empty => "empty",
        NewState::Partial => "partial",
        NewState::Full => "full",
    };
    let key = |register: &KeyRegister| {
        let word = match register.state {
            KeyState::Valid => "valid",
            KeyState::Invalid => "invalid",
        };
        format!("{word} 0x{}", hex(register.valid_vp()))
    };
    format!(
        "{mk} NEW: {new_word} 0x{}\n{mk} CUR: {}\n{mk} OLD: {}\n",
        hex(registers.new.full_vp()),
        key(&registers.cur),
        key(&registers.old)
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::cca::{KeyRegister, Mkvp, NewRegister};
    use crate::readfault::ReadFault;

    fn card() -> Card {
        Card {
            card_type: "CEX8C".into(),
            online: true,
            config: true,
            chkstop: false,
        }
    }

    fn queue(registers: BTreeMap<MkType, MkRegisters>) -> CcaQueue {
        CcaQueue {
            adapter: 12,
            domain: 17,
            token: "cca".into(),
            online: true,
            config: true,
            chkstop: false,
            registers,
            read_fault: None,
        }
    }

    /// The captured CEX6 form of zcrypt-sysfs.md 1.6b, from registers alone.
    #[test]
    fn the_captured_real_form() {
        let apka = MkRegisters {
            cur: KeyRegister::valid(Mkvp::parse("0x755cb8e7740dae51").unwrap()),
            ..MkRegisters::UNLOADED
        };
        let text = mkvps(
            &card(),
            &queue(BTreeMap::from([(MkType::Apka, apka)])),
            CcaSysfsForm::default(),
        );
        assert_eq!(
            text,
            "AES NEW: empty 0x0000000000000000\nAES CUR: invalid 0x0000000000000000\n\
             AES OLD: invalid 0x0000000000000000\nAPKA NEW: empty 0x0000000000000000\n\
             APKA CUR: valid 0x755cb8e7740dae51\nAPKA OLD: invalid 0x0000000000000000\n\
             ASYM NEW: empty -\nASYM CUR: empty -\nASYM OLD: empty -\n"
        );
    }

    #[test]
    fn patterns_show_only_when_full_or_valid_and_faults_blank_lines() {
        let vp = Mkvp::parse("0x0123456789abcdef").unwrap();
        let old = Mkvp::parse("0xfedcba9876543210").unwrap();
        let asym = MkRegisters {
            new: NewRegister {
                state: NewState::Partial,
                vp: Some(vp),
            },
            cur: KeyRegister::valid(vp),
            old: KeyRegister::valid(old),
        };
        let mut q = queue(BTreeMap::from([(MkType::Asym, asym)]));
        let text = mkvps(&card(), &q, CcaSysfsForm::default());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[6], format!("ASYM NEW: partial 0x{}", "0".repeat(32)));
        assert_eq!(
            lines[7],
            format!(
                "ASYM CUR: valid 0x{}",
                hex::encode(vp.sysfs_vp(MkType::Asym))
            )
        );
        assert!(lines[8].starts_with("ASYM OLD: valid 0xfedcba9876543210"));
        assert_eq!(lines[8].len(), "ASYM OLD: valid 0x".len() + 32);

        q.read_fault = Some(ReadFault {
            scope: ReadScope::Apka,
            reads: None,
        });
        let text = mkvps(&card(), &q, CcaSysfsForm::default());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            &lines[3..6],
            ["APKA NEW: - -", "APKA CUR: - -", "APKA OLD: - -"]
        );
        assert!(lines[0].starts_with("AES NEW: empty 0x"));
        q.read_fault = None;
        q.online = false;
        let text = mkvps(&card(), &q, CcaSysfsForm::AesApka);
        assert_eq!(text.lines().count(), 6);
        assert!(text.lines().all(|l| l.ends_with(": - -")), "{text}");
        assert_eq!(
            mkvps(&card(), &queue(BTreeMap::new()), CcaSysfsForm::Aes)
                .lines()
                .count(),
            3
        );
    }
}
