//! The report-signing key does not live on a token the plan migrates.

use crate::diagnostic::Diagnostic;
use crate::model::{Plan, SignKey, StepKind};
use crate::rules::{Rule, error};

pub struct SignKeyNotMigrated;

impl Rule for SignKeyNotMigrated {
    fn id(&self) -> &'static str {
        "sign-key-not-migrated"
    }

    fn why(&self) -> &'static str {
        "a signing key in the domain being migrated would itself need re-enciphering, and signs nothing while that fails"
    }

    fn check(&self, plan: &Plan) -> Vec<Diagnostic> {
        let migrated: Vec<_> = plan
            .steps
            .iter()
            .filter_map(|s| match &s.kind {
                StepKind::Migrate(m) => plan.tokens.get(&m.token),
                _ => None,
            })
            .collect();
        match &plan.report.sign {
            Some(SignKey::Pkcs11 { slot, .. }) => migrated
                .iter()
                .filter(|t| t.slot == *slot)
                .map(|t| {
                    error(self, format!("the report is signed with a key in slot {slot}, which is token `{}` that this plan migrates", t.id))
                        .with_pointer("/report/sign/pkcs11/slot")
                        .with_hint("sign with a key on another token (e.g. a software token) or a PEM key file")
                })
                .collect(),
            Some(SignKey::File(path)) => migrated
                .iter()
                .filter(|t| path.starts_with(&t.store))
                .map(|t| {
                    error(self, format!("the signing key `{}` is inside the store of token `{}`", path.display(), t.id))
                        .with_pointer("/report/sign/key")
                        .with_hint("keep the signing key outside every token store, e.g. `/etc/mkplan/signing.pem`")
                })
                .collect(),
            None => Vec::new(),
        }
    }
}
