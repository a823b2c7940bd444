//! Reads the end state after `always` (see [`crate::record::end_state`]): every APQN of every
//! token, and every token's keys through the port `probe_keys` uses. Read-only; what cannot
//! be read is recorded with the reason, never guessed.

use std::path::PathBuf;

use crate::cancel::Cancel;
use crate::ports::Ports;
use crate::ports::operator::Operator;
use crate::record::end_state::{EndKeys, EndStateRecord, Reading, TokenEnd};
use crate::record::wk::WkTable;
use crate::record::wk::cca::{CcaMasterKeys, CcaMkType};
use crate::secret::Pins;
use crate::step::TokenPin;
use mkplan_plan::model::{PinSource, Plan, StepKind, Token};

/// What the end state needs to read.
pub struct EndStateReader<'a> {
    pub plan: &'a Plan,
    pub ports: &'a Ports,
    /// The PINs the preflight verified (none on resume: each is read from its source).
    pub pins: &'a Pins,
    pub operator: &'a dyn Operator,
    pub cancel: &'a Cancel,
}

impl EndStateReader<'_> {
    /// Every token of the plan, in name order; `after` is the last step run before.
    pub fn read(&self, after: Option<String>) -> EndStateRecord {
        let tokens = self
            .plan
            .tokens
            .values()
            .map(|token| TokenEnd {
                token: token.id.clone(),
                apqns: self.apqns(token),
                keys: self.keys(token),
            })
            .collect();
        EndStateRecord { after, tokens }
    }

    fn apqns(&self, token: &Token) -> Reading<WkTable> {
        let mut apqns = Vec::new();
        for apqn in &token.apqns {
            match self.ports.host.read_apqn(*apqn) {
                Ok(status) => apqns.push(status),
                Err(e) => {
                    return Reading::NotRead {
                        reason: e.to_string(),
                    };
                }
            }
        }
        Reading::Read {
            value: WkTable {
                token: Some(token.id.clone()),
                apqns,
            },
        }
    }

    fn keys(&self, token: &Token) -> Reading<EndKeys> {
        let not_read = |reason: String| Reading::NotRead { reason };
        if self.cancel.requested() {
            return not_read("a stop was requested".to_owned());
        }
        let module = match self
            .ports
            .host
            .pkcs11_module(self.module_of(token).as_deref())
        {
            Ok(module) => module,
            Err(e) => return not_read(e.to_string()),
        };
        let pin = match self.pins.get(&token.id) {
            Some(pin) => TokenPin::Verified(pin),
            // Never a surprise prompt after `always` (a resumed run keeps no PIN it was
            // typed): the report says why the keys were not probed instead.
            None if token.pin == PinSource::Prompt => {
                return not_read(format!(
                    "the PIN of token `{}` is typed at a prompt, and this mkplan process holds none (a resumed run keeps no PIN)",
                    token.id
                ));
            }
            None => match self.ports.pins.read(
                &token.pin,
                self.operator,
                &format!("token `{}`", token.id),
            ) {
                Ok(pin) => TokenPin::Read(pin),
                Err(e) => return not_read(e.to_string()),
            },
        };
        // Streamed and counted: the end state holds no per-key list (issue 13).
        let mut keys = EndKeys::default();
        let probed =
            self.ports
                .keys
                .probe_into(&module, u64::from(token.slot.get()), &pin, &mut |object| {
                    keys.add(&object);
                    Ok(())
                });
        match probed {
            Ok(module) => {
                keys.module = module;
                Reading::Read { value: keys }
            }
            Err(e) => not_read(e.to_string()),
        }
    }

    /// The module the plan's last `probe_keys` of `token` names, if any.
    fn module_of(&self, token: &Token) -> Option<PathBuf> {
        self.plan
            .all_steps()
            .filter_map(|step| match &step.kind {
                StepKind::ProbeKeys(p) if p.token == token.id => p.module.clone(),
                _ => None,
            })
            .last()
    }
}

/// One line for people: per token, the CUR states and how many keys work.
pub fn summarize(record: &EndStateRecord) -> String {
    let tokens: Vec<String> = record
        .tokens
        .iter()
        .map(|t| {
            let apqns = match &t.apqns {
                Reading::Read { value } => {
                    let mut curs: Vec<String> = value
                        .apqns
                        .iter()
                        .map(|a| match (&a.cca, a.cur.vp) {
                            (Some(cca), _) => cca_current(cca),
                            (None, Some(vp)) => {
                                format!("{} 0x{}", a.cur.state.as_str(), &hex::encode(vp)[..8])
                            }
                            (None, None) => a.cur.state.as_str().to_owned(),
                        })
                        .collect();
                    curs.dedup();
                    format!("{} APQNs with CUR {}", value.apqns.len(), curs.join(" / "))
                }
                Reading::NotRead { reason } => format!("WK not read ({reason})"),
            };
            let keys = match &t.keys {
                Reading::Read { value } => {
                    let total = value.total();
                    format!("{} of {} keys work", total.usable, total.total)
                }
                Reading::NotRead { reason } => format!("keys not probed ({reason})"),
            };
            format!("`{}`: {apqns}; {keys}", t.token)
        })
        .collect();
    tokens.join("; ")
}

/// A CCA card's CUR registers, one per MK type the kernel prints: `AES valid 0x1a2b3c4d, …`.
fn cca_current(cca: &CcaMasterKeys) -> String {
    let curs: Vec<String> = CcaMkType::ALL
        .iter()
        .filter_map(|mk| cca.get(*mk).map(|registers| (mk, &registers.cur)))
        .map(|(mk, cur)| match &cur.vp {
            Some(vp) => format!(
                "{mk} {} 0x{}",
                cur.state.word(),
                &hex::encode(vp.bytes())[..8]
            ),
            None => format!("{mk} {}", cur.state.word()),
        })
        .collect();
    curs.join(", ")
}
