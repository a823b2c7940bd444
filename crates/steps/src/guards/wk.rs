//! The wrapping-key state, live: every APQN of a token read from sysfs and judged against
//! what a step expects, with the token's `ep11tok.conf` (zcrypt-sysfs.md 1.5, 1.7;
//! opencryptoki-ep11.md 3.2); and design rule 4, whether the old WK is gone.

use crate::guards::GuardError;
use crate::guards::mk::{MkNeed, check_cca};
use mkplan_engine::ports::host::HostView;
use mkplan_engine::record::wk::{self, ApqnStatus, CurState, Expectation, WkTable};
use mkplan_plan::ep11conf::{self, ApqnMode};
use mkplan_plan::model::{Apqn, AssertWk, CurrentWk, Plan, Token};

/// Reads every APQN of the check's token and evaluates it. `Ok` is the per-APQN table (for
/// the journal and the report); `Err` names every APQN that differs and how.
pub fn read_and_evaluate(
    host: &dyn HostView,
    plan: &Plan,
    check: &AssertWk,
) -> Result<WkTable, GuardError> {
    let token = plan
        .tokens
        .get(&check.token)
        .ok_or_else(|| GuardError::UnknownToken(check.token.clone()))?;
    let (statuses, mut problems) = read_all(host, token);
    // The TKE changes registers; it does not bring a queue online or make `- -` readable.
    let unknown_now = !problems.is_empty()
        || statuses
            .iter()
            .any(|s| s.state_unknown() || !wk::unusable(s).is_empty());
    let expectation = Expectation {
        current: check.current,
        new: check.new,
        wkvp_current: token.wkvp_current,
        wkvp_new: token.wkvp_new,
    };
    if problems.is_empty() {
        problems.extend(wk::evaluate_all(&statuses, &expectation));
    }
    problems.extend(config_problems(host, token, check));
    if problems.is_empty() {
        Ok(WkTable {
            token: Some(token.id.clone()),
            apqns: statuses,
        })
    } else if unknown_now {
        Err(GuardError::WkUnknown(problems))
    } else {
        Err(GuardError::WkDiffers(problems))
    }
}

/// The APQN statuses that could be read, and a problem for each that could not.
pub fn read_all(host: &dyn HostView, token: &Token) -> (Vec<ApqnStatus>, Vec<String>) {
    let mut statuses = Vec::new();
    let mut problems = Vec::new();
    for apqn in &token.apqns {
        match host.read_apqn(*apqn) {
            Ok(status) => statuses.push(status),
            Err(e) => problems.push(e.to_string()),
        }
    }
    (statuses, problems)
}

/// The token's `ep11tok.conf`, when the plan names it: its APQN allowlist must be the
/// plan's APQNs, and its `EXPECTED_WKVP` (if set) the WK that is current at this point.
fn config_problems(host: &dyn HostView, token: &Token, check: &AssertWk) -> Vec<String> {
    let Some(config) = &token.config else {
        return Vec::new();
    };
    let text = match host.read_config(&host.root().path(config)) {
        Ok(text) => text,
        Err(e) => return vec![format!("cannot read `{}`: {e}", config.display())],
    };
    let parsed = match ep11conf::parse(&text) {
        Ok(parsed) => parsed,
        Err(e) => return vec![format!("`{}`: {e}", config.display())],
    };
    let mut problems = Vec::new();
    match &parsed.apqns {
        ApqnMode::Allowlist(list) => {
            let mut listed: Vec<_> = list.clone();
            let mut planned = token.apqns.clone();
            listed.sort();
            planned.sort();
            listed.dedup();
            planned.dedup();
            if listed != planned {
                let show = |v: &[Apqn]| {
                    v.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ")
                };
                problems.push(format!(
                    "`{}` allows {} but the plan names {}",
                    config.display(),
                    show(&listed),
                    show(&planned)
                ));
            }
        }
        ApqnMode::Any => problems.push(format!(
            "`{}` uses APQN_ANY: the token may use APQNs the plan does not check; list them with APQN_ALLOWLIST",
            config.display()
        )),
    }
    let current = match check.current {
        CurrentWk::Expected => token.wkvp_current,
        CurrentWk::New => token.wkvp_new,
    };
    if let Some(expected) = parsed.expected_wkvp
        && expected != current
        // After activation and before `set_expected_wkvp` runs, the file still names the
        // old WK: that is the documented order (reference 1.6), not a problem.
        && !(check.current == CurrentWk::New && expected == token.wkvp_current)
    {
        problems.push(format!(
            "`{}` sets EXPECTED_WKVP {expected}, but the current WK should be {current}",
            config.display()
        ));
    }
    problems
}

/// The refusal of design rule 4, if the new WK is current on any APQN (or the state cannot
/// be read, in which case nobody can say the old WK still exists).
///
/// A CCA token keeps its previous MK in OLD after the set, so its restore is refused only
/// once the previous MK is in neither CUR nor OLD (or cannot be read).
pub fn refuse_if_activated(host: &dyn HostView, token: &Token) -> Result<(), GuardError> {
    if token.is_cca() {
        let mks: Vec<_> = token.mks.keys().copied().collect();
        return check_cca(host, token, &mks, MkNeed::PreviousKept)
            .map(|_| ())
            .map_err(|problems| GuardError::PreviousMkGone {
                token: token.id.clone(),
                problems,
            });
    }
    let (statuses, problems) = read_all(host, token);
    if !problems.is_empty() {
        return Err(GuardError::WkUnreadable(problems));
    }
    let activated: Vec<String> = statuses
        .iter()
        .filter(|s| {
            s.cur.state == CurState::Valid
                && s.cur
                    .vp
                    .is_some_and(|vp| vp[..16] == token.wkvp_new.bytes()[..])
        })
        .map(|s| s.apqn.to_string())
        .collect();
    if activated.is_empty() {
        Ok(())
    } else {
        Err(GuardError::Activated {
            token: token.id.clone(),
            apqns: activated,
        })
    }
}
