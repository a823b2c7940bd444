//! A token's type and its keys' patterns: an EP11 token names its wrapping key (`wkvp`), a
//! CCA token its master-key types (`mks`), never both.

use std::collections::BTreeMap;

use super::Lowering;
use crate::diagnostic::Diagnostic;
use crate::model::{CcaMk, Mkvp, MkvpPair, PinSource, TokenType, Wkvp};
use crate::raw::{RawCcaMks, RawMkvpPair, RawToken, RawTokenType};

/// What a token's keys are under: EP11's WKVP pair, or CCA's MKVP pair per MK type.
pub(super) enum TokenKeys {
    Ep11 { current: Wkvp, new: Wkvp },
    Cca(BTreeMap<CcaMk, MkvpPair>),
}

impl TokenKeys {
    pub(super) fn token_type(&self) -> TokenType {
        match self {
            TokenKeys::Ep11 { .. } => TokenType::Ep11,
            TokenKeys::Cca(_) => TokenType::Cca,
        }
    }
}

impl Lowering {
    pub(super) fn token_keys(&mut self, raw: &RawToken, base: &str) -> Option<TokenKeys> {
        let cca = raw.token_type == Some(RawTokenType::Cca);
        match (cca, &raw.wkvp, &raw.mks) {
            (false, Some(pair), None) => self.ep11_keys(&pair.current, &pair.new, base),
            (true, None, Some(mks)) => self.cca_keys(mks, base),
            (false, _, Some(_)) => self.wrong_key(
                format!("{base}/mks"),
                "`mks` is for CCA tokens; this token is EP11 (`type` is `ep11` or left out)",
                "give `type: cca` for a CCA token, or `wkvp` instead of `mks` for an EP11 one",
            ),
            (true, Some(_), _) => self.wrong_key(
                format!("{base}/wkvp"),
                "`wkvp` is for EP11 tokens; a CCA token names its master keys in `mks`",
                "replace `wkvp` with `mks: { aes: { current: …, new: … }, … }`, one entry per MK type the token's keys use",
            ),
            (false, None, None) => self.wrong_key(
                base.to_owned(),
                "the EP11 token has no `wkvp`",
                "add `wkvp: { current: …, new: … }`, or `type: cca` and `mks` for a CCA token",
            ),
            (true, None, None) => self.wrong_key(
                base.to_owned(),
                "the CCA token has no `mks`",
                "add `mks:` with the MK types its keys use (sym, asym, aes, apka), each `{ current: …, new: … }`",
            ),
        }
    }

    /// The SO PIN's source: required for a CCA token, refused for an EP11 one. `None`: an
    /// error was reported; `Some(None)`: an EP11 token without one.
    pub(super) fn so_pin(&mut self, raw: &RawToken, base: &str) -> Option<Option<PinSource>> {
        let cca = raw.token_type == Some(RawTokenType::Cca);
        match (&raw.so_pin, cca) {
            (Some(source), true) => Some(Some(self.pin(source, &format!("{base}/so_pin"))?)),
            (None, false) => Some(None),
            (Some(_), false) => {
                self.wrong_key(
                    format!("{base}/so_pin"),
                    "`so_pin` is for CCA tokens; pkcsep11_migrate needs only the USER PIN",
                    "leave `so_pin` out, or give `type: cca` if this is a CCA token",
                );
                None
            }
            (None, true) => {
                self.wrong_key(
                    base.to_owned(),
                    "the CCA token has no `so_pin`: pkcscca asks for the SO PIN and the USER PIN",
                    "add `so_pin: { env: NAME }` (or `file:` / `prompt: true`)",
                );
                None
            }
        }
    }

    fn wrong_key(&mut self, pointer: String, message: &str, hint: &str) -> Option<TokenKeys> {
        self.errors.push(
            Diagnostic::error("token-type", message)
                .with_pointer(pointer)
                .at_key()
                .with_hint(hint),
        );
        None
    }

    fn ep11_keys(&mut self, current: &str, new: &str, base: &str) -> Option<TokenKeys> {
        let current = self.wkvp(current, &format!("{base}/wkvp/current"));
        let new = self.wkvp(new, &format!("{base}/wkvp/new"));
        if let (Some(c), Some(n)) = (current, new)
            && c == n
        {
            self.errors.push(
                Diagnostic::error("wkvp", format!("the new WKVP equals the current one ({c})"))
                    .with_pointer(format!("{base}/wkvp/new"))
                    .with_note("a master-key change needs a different new key")
                    .with_hint("copy the new key's pattern from the TKE after it is loaded"),
            );
        }
        Some(TokenKeys::Ep11 {
            current: current?,
            new: new?,
        })
    }

    fn cca_keys(&mut self, raw: &RawCcaMks, base: &str) -> Option<TokenKeys> {
        let named = [
            (CcaMk::Sym, &raw.sym),
            (CcaMk::Asym, &raw.asym),
            (CcaMk::Aes, &raw.aes),
            (CcaMk::Apka, &raw.apka),
        ];
        let mut mks = BTreeMap::new();
        let mut complete = true;
        for (mk, pair) in named {
            let Some(pair) = pair else { continue };
            match self.mkvp_pair(mk, pair, &format!("{base}/mks/{}", mk.key())) {
                Some(pair) => {
                    mks.insert(mk, pair);
                }
                None => complete = false,
            }
        }
        (complete && !mks.is_empty()).then_some(TokenKeys::Cca(mks))
    }

    fn mkvp_pair(&mut self, mk: CcaMk, raw: &RawMkvpPair, base: &str) -> Option<MkvpPair> {
        let current = self.mkvp(&raw.current, &format!("{base}/current"));
        let new = self.mkvp(&raw.new, &format!("{base}/new"));
        if let (Some(c), Some(n)) = (current, new)
            && c == n
        {
            self.errors.push(
                Diagnostic::error(
                    "mkvp",
                    format!("the new {mk} MKVP equals the current one ({c})"),
                )
                .with_pointer(format!("{base}/new"))
                .with_note("a master-key change needs a different new key")
                .with_hint("copy the new key's pattern from the TKE after it is loaded"),
            );
            return None;
        }
        Some(MkvpPair {
            current: current?,
            new: new?,
        })
    }

    fn mkvp(&mut self, text: &str, pointer: &str) -> Option<Mkvp> {
        match Mkvp::parse(text) {
            Ok(mkvp) => Some(mkvp),
            Err(message) => {
                self.errors
                    .push(Diagnostic::error("mkvp", message).with_pointer(pointer));
                None
            }
        }
    }
}
