//! `assert_wk`: every APQN of the token, read from sysfs, must show the wrapping-key state
//! the plan asks for (zcrypt-sysfs.md 1.5, 1.7), and the token's `ep11tok.conf` must agree
//! with the plan (opencryptoki-ep11.md 3.2). Read-only; the same check serves `check`,
//! `run`, checkpoints' `until`, and the live re-checks of other steps.

use serde_json::{Value, json};

use crate::engine::record::wk::{self, ApqnStatus, Expectation};
use crate::host::zcrypt;
use crate::plan::ep11conf::{self, ApqnMode};
use crate::plan::model::{AssertWk, CurrentWk, NewWk, Plan, Token};
use crate::steps::context::Host;
use crate::steps::{CheckContext, CheckReport, RunContext, StepError, StepResult, StepSuccess};

/// Reads every APQN of the check's token and evaluates it. `Ok` is the per-APQN table (for
/// the journal and the report); `Err` names every APQN that differs and how.
pub fn read_and_evaluate(host: &Host, plan: &Plan, check: &AssertWk) -> Result<Value, String> {
    let token = plan
        .tokens
        .get(&check.token)
        .ok_or_else(|| format!("token `{}` is not in the plan", check.token))?;
    let (statuses, mut problems) = read_all(host, token);
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
    let table = json!({ "token": token.id.as_str(), "apqns": statuses });
    if problems.is_empty() {
        Ok(table)
    } else {
        Err(problems.join("; "))
    }
}

/// The APQN statuses that could be read, and a problem for each that could not.
pub fn read_all(host: &Host, token: &Token) -> (Vec<ApqnStatus>, Vec<String>) {
    let mut statuses = Vec::new();
    let mut problems = Vec::new();
    for apqn in &token.apqns {
        match zcrypt::read_apqn(&host.root, *apqn) {
            Ok(status) => statuses.push(status),
            Err(e) => problems.push(e.to_string()),
        }
    }
    (statuses, problems)
}

/// The token's `ep11tok.conf`, when the plan names it: its APQN allowlist must be the
/// plan's APQNs, and its `EXPECTED_WKVP` (if set) the WK that is current at this point.
fn config_problems(host: &Host, token: &Token, check: &AssertWk) -> Vec<String> {
    let Some(config) = &token.config else {
        return Vec::new();
    };
    let path = host.root.path(config);
    let text = match crate::plan::input::read_to_string(&path, crate::plan::input::CONFIG) {
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
                let show = |v: &[crate::plan::model::Apqn]| {
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

fn describe(check: &AssertWk) -> String {
    let current = match check.current {
        CurrentWk::Expected => "the expected current WK",
        CurrentWk::New => "the new WK as current",
    };
    let new = match check.new {
        NewWk::Committed => "the new WK committed",
        NewWk::Uncommitted => "the new WK loaded, uncommitted",
        NewWk::Empty => "an empty NEW register",
        NewWk::Any => "any known NEW register state",
    };
    format!("{current} and {new}")
}

pub fn run(check: &AssertWk, cx: &mut RunContext<'_>) -> StepResult {
    match read_and_evaluate(cx.host, cx.plan, check) {
        Ok(table) => {
            let count = table["apqns"].as_array().map_or(0, Vec::len);
            Ok(StepSuccess::new(format!(
                "all {count} APQNs of `{}` show {}",
                check.token,
                describe(check)
            ))
            .with_data(table))
        }
        Err(problems) => Err(StepError::failed(problems)),
    }
}

pub fn check(check: &AssertWk, cx: &CheckContext<'_>) -> CheckReport {
    match read_and_evaluate(cx.host, cx.plan, check) {
        Ok(_) => CheckReport::WillRun(format!(
            "now: every APQN of `{}` shows {}",
            check.token,
            describe(check)
        )),
        Err(problems) => {
            // A TKE checkpoint earlier in the plan is expected to bring the state about.
            let after_tke = cx.earlier.iter().any(|s| {
                matches!(&s.kind, crate::plan::model::StepKind::Checkpoint(c) if c.tke.is_some())
            });
            if after_tke {
                CheckReport::WillRun(format!(
                    "does not hold yet, as expected before the earlier TKE checkpoint: {problems}"
                ))
            } else {
                CheckReport::Blocked(problems)
            }
        }
    }
}
