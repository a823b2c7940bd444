//! The tokens of one operation share their new keys (one WK for its EP11 tokens, one MK per
//! type for its CCA tokens), each names its `config`, and no CCA token of it declares the
//! ASYM master key.

use std::collections::BTreeMap;

use crate::diagnostic::Diagnostic;
use crate::model::{CcaMk, Mkvp, Plan, Token};
use crate::rules::{Rule, error, kind_pointer, operations};

pub struct OneWkPerOperation;

impl Rule for OneWkPerOperation {
    fn id(&self) -> &'static str {
        "one-wk-per-operation"
    }

    fn why(&self) -> &'static str {
        "the tool takes one --ep11-wkvp and one --cca-<type>-mkvp per MK type per operation and queries every token against its current keys; the CCA token re-enciphers only SYM, AES and APKA keys in a concurrent change (cca_mkchange.c), so keys under the ASYM MK would be left behind; mkplan needs each config to check APQN_ALLOWLIST, EXPECTED_WKVP and EXPECTED_MKVPS"
    }

    fn check(&self, plan: &Plan) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        for (_, step, op) in operations(plan) {
            let tokens: Vec<&Token> = op
                .tokens
                .iter()
                .filter_map(|t| plan.tokens.get(t))
                .collect();
            let (cca, ep11): (Vec<&Token>, Vec<&Token>) = tokens.iter().partition(|t| t.is_cca());
            if let Some(first) = ep11.first() {
                for other in &ep11[1..] {
                    if other.wkvp_new != first.wkvp_new || other.wkvp_current != first.wkvp_current
                    {
                        out.push(
                            error(self, format!("`{}` puts tokens `{}` (new {}) and `{}` (new {}) in one operation, with different WKs", step.name, first.id, first.wkvp_new, other.id, other.wkvp_new))
                                .with_pointer(kind_pointer(step))
                                .at_key()
                                .with_hint("one `mk_change: {reencipher}` per new WK"),
                        );
                    }
                }
            }
            let mut first_of_type: BTreeMap<CcaMk, (&Token, Mkvp)> = BTreeMap::new();
            for token in &cca {
                if token.mks.contains_key(&CcaMk::Asym) {
                    out.push(
                        error(self, format!("`{}` re-enciphers CCA token `{}`, which declares the ASYM master key", step.name, token.id))
                            .with_pointer(kind_pointer(step))
                            .at_key()
                            .with_note("in a concurrent change the CCA token re-enciphers only keys under the SYM, AES and APKA MKs; keys under the ASYM MK would stay under an MK the TKE is about to replace")
                            .with_hint(format!("change token `{}` offline (`migrate` with `pkcscca -k asym`), or drop `asym` from its `mks` if none of its keys use it", token.id)),
                    );
                }
                for (mk, pair) in &token.mks {
                    match first_of_type.get(mk) {
                        Some((first, new)) if *new != pair.new => out.push(
                            error(self, format!("`{}` puts CCA tokens `{}` (new {mk} MK {new}) and `{}` (new {mk} MK {}) in one operation", step.name, first.id, token.id, pair.new))
                                .with_pointer(kind_pointer(step))
                                .at_key()
                                .with_hint("one `mk_change: {reencipher}` per new MK of a type"),
                        ),
                        Some(_) => {}
                        None => {
                            first_of_type.insert(*mk, (token, pair.new));
                        }
                    }
                }
            }
            for token in tokens.iter().filter(|t| t.config.is_none()) {
                let (file, keyword) = match token.is_cca() {
                    true => ("ccatok.conf", "EXPECTED_MKVPS"),
                    false => ("ep11tok.conf", "EXPECTED_WKVP"),
                };
                out.push(
                    error(self, format!("token `{}` of `{}` names no `config`", token.id, step.name))
                        .with_pointer(kind_pointer(step))
                        .at_key()
                        .with_note(format!("mkplan checks {keyword} before the reencipher, the finalize and the cancel (the tool needs the current value for cancel, the new one for finalize)"))
                        .with_hint(format!("add `config: /etc/opencryptoki/{file}` (the file opencryptoki.conf names for slot {}) to token `{}`", token.slot, token.id)),
                );
            }
        }
        out
    }
}
