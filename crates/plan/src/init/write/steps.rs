//! The steps of the offline procedure, each commented with the step of IBM's "Migrating
//! master keys with the pkcsep11_migrate tool" (the seed) it implements.

use crate::init::draft::{Draft, DraftToken};
use crate::init::write::{ChangeRecord, comment, quoted};

/// How long the activation checkpoint polls for every APQN to show the new WK.
const ACTIVATE_RETRIES: u32 = 30;

const SEED_1: &str =
    "Seed step 1 (TKE): the new WK is submitted and committed on every APQN of the token.";
const SEED_1_PROVEN: &str =
    "Seed step 1, proven: pkcsep11_migrate checks one APQN and no pattern; mkplan checks all.";
const SEED_2: &str = "Seed step 2: stop every process that uses openCryptoki with the EP11 token.";
const BEFORE: &str =
    "The inventory before, taken before the stop: the keys work with the applications running.";
const SEED_3: &str =
    "Seed step 3: back up the token object repository (here: the whole store), verified.";
const SEED_4: &str =
    "Seed step 4: re-encipher every secure key with pkcsep11_migrate (once, one APQN).";
const SEED_5: &str = "Seed step 5 (TKE): activate the new WK (\"Set, immediate\") on every APQN.";
const SEED_6: &str = "Seed step 6: restart the applications that use the EP11 token.";

/// `tokens.ep11` or `tokens['ep11-x']` in a template.
fn token_ref(id: &str) -> String {
    if id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        format!("tokens.{id}")
    } else {
        format!("tokens['{id}']")
    }
}

pub(super) fn step(out: &mut String, seed: &str, body: &str) {
    if !seed.is_empty() {
        comment(out, 2, seed);
    }
    out.push_str(body);
    out.push('\n');
}

/// A step `kind: { token: ID }` named `name` (with `{}` for the token), once per token.
pub(super) fn per_token(
    out: &mut String,
    draft: &Draft<'_>,
    seed: &str,
    name: &str,
    kind: &str,
    extra: &str,
) {
    for t in &draft.tokens {
        let body = format!(
            "  - name: {}\n    {kind}: {{ token: {}{extra} }}\n",
            quoted(&name.replace("{}", &t.id)),
            t.id
        );
        step(out, seed, &body);
    }
}

pub(super) fn steps(out: &mut String, draft: &Draft<'_>, change: &ChangeRecord) {
    out.push_str("steps:\n");
    commit_checkpoint(out, draft, change, SEED_1);
    let proven = ", current: expected, new: committed";
    per_token(
        out,
        draft,
        SEED_1_PROVEN,
        "New WK of token {} is committed on every APQN",
        "assert_wk",
        proven,
    );
    // Before the stop: the keys work with the applications running (`probe-outside-window`).
    per_token(
        out,
        draft,
        BEFORE,
        "Every key of token {} works before the change",
        "probe_keys",
        "",
    );
    step(out, SEED_2, "  - name: Stop applications\n    stop: apps\n");
    per_token(
        out,
        draft,
        SEED_3,
        "Back up the store of token {}",
        "backup",
        ", to: local",
    );
    per_token(
        out,
        draft,
        SEED_4,
        "Re-encipher all secure keys of token {}",
        "migrate",
        "",
    );
    for t in &draft.tokens {
        activate_checkpoint(out, t, draft.tokens.len() > 1);
    }
    for t in &draft.tokens {
        let now = match t.expected_wkvp {
            Some(_) => "it names the current WK now",
            None => "it sets none now, so this step changes nothing",
        };
        let seed = format!(
            "openCryptoki 3.19+ refuses to start the token while EXPECTED_WKVP names the old WK ({now})."
        );
        let name = format!("Point EXPECTED_WKVP of token {} at the new WK", t.id);
        step(
            out,
            &seed,
            &format!(
                "  - name: {}\n    set_expected_wkvp: {{ token: {} }}\n",
                quoted(&name),
                t.id
            ),
        );
    }
    step(
        out,
        SEED_6,
        "  - name: Restart applications\n    start: apps\n",
    );
    per_token(
        out,
        draft,
        "",
        "Every key of token {} works under the new WK",
        "probe_keys",
        "",
    );
}

pub(super) fn commit_checkpoint(
    out: &mut String,
    draft: &Draft<'_>,
    change: &ChangeRecord,
    procedure_step: &str,
) {
    let approvals = if change.approvers.len() == 1 { 1 } else { 2 };
    let each: Vec<String> = draft
        .tokens
        .iter()
        .map(|t| {
            let list: Vec<String> = t.apqns.iter().map(|a| a.lszcrypt()).collect();
            format!(
                "{{{{ {}.wkvp.new }}}} on every APQN of token {} ({})",
                token_ref(&t.id),
                t.id,
                list.join(", ")
            )
        })
        .collect();
    let say = format!(
        "Load and commit the new EP11 wrapping key {}. Do not activate it yet.",
        each.join("; ")
    );
    step(
        out,
        procedure_step,
        &format!(
            "  - name: TKE work is done\n    id: tke-commit\n    checkpoint:\n      tke: commit\n      say: {}\n      approvals: {approvals}\n",
            quoted(&say)
        ),
    );
}

fn activate_checkpoint(out: &mut String, t: &DraftToken<'_>, several: bool) {
    let id = if several {
        format!("tke-activate-{}", t.id)
    } else {
        "tke-activate".to_owned()
    };
    let name = format!("Activate the new WK of token {} on the TKE", t.id);
    let say = format!(
        "Run \"Set, immediate\" for the new WK on all APQNs of token {}.",
        t.id
    );
    step(
        out,
        SEED_5,
        &format!(
            "  - name: {}\n    id: {id}\n    checkpoint:\n      tke: activate\n      say: {}\n      until:\n        assert_wk: {{ token: {}, current: new, new: empty }}\n        retries: {ACTIVATE_RETRIES}\n        delay: 10s\n",
            quoted(&name),
            quoted(&say),
            t.id
        ),
    );
}
