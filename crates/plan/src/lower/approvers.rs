//! `change.approvers` with public keys, and `report.cosign`: every key parses, matches its
//! pasted id, and belongs to one approver; co-signers are approvers with a key.

use super::Lowering;
use crate::diagnostic::Diagnostic;
use crate::model::{ApproverKey, Cosign};
use crate::raw::{RawApprover, RawCosign};

impl Lowering {
    /// Every approver's name, and the keys of those who have one.
    pub(super) fn approvers(&mut self, raw: &[RawApprover]) -> (Vec<String>, Vec<ApproverKey>) {
        let mut names: Vec<String> = Vec::new();
        let mut keys: Vec<(usize, ApproverKey)> = Vec::new();
        for (index, approver) in raw.iter().enumerate() {
            let pointer = format!("/change/approvers/{index}");
            let name = approver.name().to_owned();
            if let Some(first) = names.iter().position(|n| *n == name) {
                self.errors.push(
                    Diagnostic::error("duplicate", format!("approver `{name}` is listed twice"))
                        .with_pointer(&pointer)
                        .with_note_at("first listed here", format!("/change/approvers/{first}"))
                        .with_hint("list each approver once"),
                );
            }
            names.push(name.clone());
            let RawApprover::Keyed(keyed) = approver else {
                continue;
            };
            let Some(key) = self.approver_key(&keyed.key, &format!("{pointer}/key")) else {
                continue;
            };
            let key_id = key.key_id();
            if let Some(given) = &keyed.key_id
                && *given != key_id
            {
                self.errors.push(
                    Diagnostic::error(
                        "key-id",
                        format!(
                            "the key's id is {key_id}, not the `key_id` given ({given}): the key or the id was pasted wrong"
                        ),
                    )
                    .with_pointer(format!("{pointer}/key_id"))
                    .with_hint("ask the approver for their public key again and compare `openssl pkey -pubin -in KEY.pem -outform DER | sha256sum`"),
                );
            }
            if let Some((first, other)) = keys.iter().find(|(_, k)| k.key_id == key_id) {
                self.errors.push(
                    Diagnostic::error(
                        "duplicate",
                        format!(
                            "approvers `{}` and `{name}` have the same key {key_id}: dual control needs a key per person",
                            other.name
                        ),
                    )
                    .with_pointer(format!("{pointer}/key"))
                    .with_note_at("the same key here", format!("/change/approvers/{first}/key")),
                );
            }
            keys.push((index, ApproverKey { name, key, key_id }));
        }
        (names, keys.into_iter().map(|(_, k)| k).collect())
    }

    fn approver_key(&mut self, text: &str, pointer: &str) -> Option<mkplan_sig::PublicKey> {
        let text = self.render(text, pointer)?;
        match mkplan_sig::PublicKey::from_pem(&text) {
            Ok(key) => Some(key),
            Err(_) => {
                let mut diagnostic = Diagnostic::error(
                    "key",
                    "this is not a PEM ECDSA P-256 or Ed25519 public key (`-----BEGIN PUBLIC KEY-----`)",
                )
                .with_pointer(pointer);
                diagnostic = if text.contains("PRIVATE KEY-----") {
                    diagnostic.with_hint("this is a PRIVATE key: never put it in a plan; give the approver's public key (`mkplan keygen` writes PREFIX.pub.pem; `openssl pkey -in KEY -pubout` derives it)")
                } else {
                    diagnostic.with_hint("paste the approver's whole public key PEM, as `mkplan keygen` writes PREFIX.pub.pem")
                };
                self.errors.push(diagnostic);
                None
            }
        }
    }

    /// `report.cosign`: `by` names approvers with a key (default: all of them), and
    /// `required` of them can sign.
    pub(super) fn cosign(&mut self, raw: &RawCosign, keys: &[ApproverKey]) -> Option<Cosign> {
        let by: Vec<String> = match &raw.by {
            Some(names) => names.clone(),
            None => keys.iter().map(|k| k.name.clone()).collect(),
        };
        let mut ok = true;
        for (index, name) in raw.by.iter().flatten().enumerate() {
            if !keys.iter().any(|k| k.name == *name) {
                ok = false;
                self.errors.push(
                    Diagnostic::error(
                        "cosign",
                        format!("`{name}` is not an approver with a key, so cannot co-sign the report"),
                    )
                    .with_pointer(format!("/report/cosign/by/{index}"))
                    .with_hint("give the approver a `key` in `change.approvers` (`{name, key}`), or remove them from `report.cosign.by`"),
                );
            }
        }
        let required = u32::try_from(raw.required).unwrap_or(u32::MAX);
        if ok && (required == 0 || required as usize > by.len()) {
            ok = false;
            self.errors.push(
                Diagnostic::error(
                    "cosign",
                    format!(
                        "`required: {}` co-signatures, but {} approver{} with a key can co-sign{}",
                        raw.required,
                        by.len(),
                        if by.len() == 1 { "" } else { "s" },
                        if by.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", by.join(", "))
                        }
                    ),
                )
                .with_pointer("/report/cosign/required")
                .with_hint(
                    "give more approvers a `key` in `change.approvers`, or lower `required`",
                ),
            );
        }
        ok.then_some(Cosign { required, by })
    }
}
