//! The live checks of a concurrent change for its CCA tokens (opencryptoki-ep11.md 2.3,
//! 2.4 and 5; `cca_mkchange.c` of 3.21+): before the reencipher, every declared MK type sysfs
//! shows has the plan's new MK FULL in NEW and the current one in CUR on every APQN, and
//! `EXPECTED_MKVPS` (if the file names a type) the current one; finalize needs the new MK in
//! CUR with NEW empty again on every APQN and `EXPECTED_MKVPS` naming the new ones; cancel
//! needs the current MK still in CUR on every APQN and `EXPECTED_MKVPS` still naming it. SYM has no sysfs line: the tool's own
//! query checks it.

use std::path::PathBuf;

use crate::guards::mk::{assert_mk, conf_type};
use mkplan_engine::ports::host::HostView;
use mkplan_engine::record::mk::MkTable;
use mkplan_plan::ccaconf;
use mkplan_plan::model::{AssertMk, CurrentWk, ExpectedTarget, Mkvp, NewMk, OldMk, Token, TokenId};

/// The registers a step needs of a CCA token, on every APQN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Registers {
    /// Before reencipher: CUR the current MK, NEW full with the new one.
    Loaded,
    /// Before and after finalize: CUR the new MK, NEW empty.
    Set,
    /// Before cancel: CUR still the current MK (NEW as it may be).
    Unset,
}

/// Every APQN of `token` as `need` requires, or every problem (each naming its APQN).
pub(crate) fn registers(
    host: &dyn HostView,
    token: &Token,
    need: Registers,
) -> Result<MkTable, String> {
    let check = AssertMk {
        token: token.id.clone(),
        current: match need {
            Registers::Loaded | Registers::Unset => CurrentWk::Expected,
            Registers::Set => CurrentWk::New,
        },
        new: match need {
            Registers::Loaded => NewMk::Full,
            Registers::Set => NewMk::Empty,
            Registers::Unset => NewMk::Any,
        },
        old: OldMk::Any,
    };
    assert_mk(host, token, &check)
        .map_err(|(problems, _)| format!("token `{}`: {}", token.id, problems.join("; ")))
}

/// `EXPECTED_MKVPS` of each CCA token's `ccatok.conf`, by the types it names.
fn expected_mkvps(
    host: &dyn HostView,
    tokens: &[&Token],
) -> Result<Vec<(TokenId, PathBuf, ccaconf::CcaConfig)>, String> {
    let mut out = Vec::new();
    for token in tokens.iter().filter(|t| t.is_cca()) {
        let Some(config) = &token.config else {
            continue;
        };
        let text = host
            .read_config(&host.root().path(config))
            .map_err(|e| format!("cannot read `{}`: {e}", config.display()))?;
        let parsed = ccaconf::parse(&text).map_err(|e| format!("`{}`: {e}", config.display()))?;
        out.push((token.id.clone(), config.clone(), parsed));
    }
    Ok(out)
}

/// Each type `EXPECTED_MKVPS` names for a declared MK must be the token's `to` pattern (the
/// tool refuses otherwise); `hint` says how to get there.
pub(crate) fn expected_mkvps_name(
    host: &dyn HostView,
    tokens: &[&Token],
    to: ExpectedTarget,
    hint: impl Fn(&TokenId) -> String,
) -> Result<(), String> {
    for (id, config, parsed) in expected_mkvps(host, tokens)? {
        let Some(token) = tokens.iter().find(|t| t.id == id) else {
            continue;
        };
        for (mk, pair) in &token.mks {
            let Some(kind) = conf_type(*mk) else {
                continue;
            };
            let want: Mkvp = match to {
                ExpectedTarget::New => pair.new,
                ExpectedTarget::Current => pair.current,
            };
            if let Some(value) = parsed
                .expected_mkvps
                .get(&kind)
                .filter(|v| v[..] != want.bytes()[..])
            {
                return Err(format!(
                    "`{}` sets EXPECTED_MKVPS {kind} = 0x{} for token `{id}`, but the {} MK {want} is needed there (the tool refuses otherwise); {}",
                    config.display(),
                    hex(value),
                    match to {
                        ExpectedTarget::New => "new",
                        ExpectedTarget::Current => "current",
                    },
                    hint(&id)
                ));
            }
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
