//! The steps of the concurrent procedure (openCryptoki 3.21+), each commented with the step
//! of `man pkcshsm_mk_change`, "Procedure", it implements; plans/ep11-concurrent.yaml is
//! the same plan for one token.

use std::fmt::Write as _;

use crate::init::draft::{Draft, DraftToken};
use crate::init::write::steps::{commit_checkpoint, per_token, step};
use crate::init::write::{ChangeRecord, comment, quoted};

const STEP_1: &str = "Man page step 1 (TKE): load the new WK into the NEW register of every APQN and commit it. Step 2: the HSM administrator tells the openCryptoki administrator (the approvals).";
const PROVEN: &str = "Man page step 1, proven on every APQN against the plan's pattern.";
const BEFORE: &str = "The inventory before: every key works under the current WK.";
const STEP_3: &str = "Step 3: pkcshsm_mk_change reencipher: every key gets a blob under the new WK beside its current one; the applications keep running. The operation's ID is journaled at once and used by finalize and cancel.";
const STILL: &str = "Still step 3: the current blobs are untouched, so every key works as before.";
const STEP_5: &str = "Steps 4-6: openCryptoki is ready; the run parks (exit 6) and prints what the TKE administrator does. When the new WK is set on every APQN: `mkplan resume RUN --approve ID=NAME`.";
const STEP_7_CONF: &str =
    "Step 7, first half: finalize needs EXPECTED_WKVP to name the new WK already.";
const STEP_7: &str = "Step 7: pkcshsm_mk_change finalize --id <the operation's ID, from this run's journal>: the new blobs become current.";
const STEP_8: &str = "Step 8, proven: every key works under the new WK.";

/// The operation's step id: `reencipher`, or one per token when there are several.
fn operation_id(t: &DraftToken<'_>, several: bool) -> String {
    if several {
        format!("reencipher-{}", t.id)
    } else {
        "reencipher".to_owned()
    }
}

fn activation_id(t: &DraftToken<'_>, several: bool) -> String {
    if several {
        format!("tke-activate-{}", t.id)
    } else {
        "tke-activate".to_owned()
    }
}

pub(super) fn steps(out: &mut String, draft: &Draft<'_>, change: &ChangeRecord) {
    let several = draft.tokens.len() > 1;
    out.push_str("steps:\n");
    commit_checkpoint(out, draft, change, STEP_1);
    let committed = ", current: expected, new: committed";
    let proven = "New WK of token {} is committed on every APQN";
    per_token(out, draft, PROVEN, proven, "assert_wk", committed);
    let works = "Every key of token {} works before the change";
    per_token(out, draft, BEFORE, works, "probe_keys", "");
    // One operation per token: each covers every APQN of its token, as the tool requires.
    for t in &draft.tokens {
        let name = format!(
            "Re-encipher every key of token {} beside its current blob",
            t.id
        );
        let body = format!(
            "  - name: {}\n    id: {}\n    mk_change:\n      reencipher: {{ tokens: [{}] }}\n",
            quoted(&name),
            operation_id(t, several),
            t.id
        );
        step(out, STEP_3, &body);
    }
    let still = "Every key of token {} still works under the current WK";
    per_token(out, draft, STILL, still, "probe_keys", "");
    for t in &draft.tokens {
        let name = format!("Activate the new WK of token {} on the TKE", t.id);
        let say = format!(
            "Run \"Set, immediate\" for the new WK on all APQNs of token {}, together. From then on the change can only go forward.",
            t.id
        );
        let body = format!(
            "  - name: {}\n    id: {}\n    checkpoint:\n      tke: activate\n      park: true\n      say: {}\n      until:\n        assert_wk: {{ token: {}, current: new, new: empty }}\n",
            quoted(&name),
            activation_id(t, several),
            quoted(&say),
            t.id
        );
        step(out, STEP_5, &body);
    }
    let point = "Point EXPECTED_WKVP of token {} at the new WK";
    per_token(out, draft, STEP_7_CONF, point, "set_expected_wkvp", "");
    for t in &draft.tokens {
        let name = format!("Make the new blobs of token {} current", t.id);
        let body = format!(
            "  - name: {}\n    mk_change:\n      finalize: {{ of: {} }}\n",
            quoted(&name),
            operation_id(t, several)
        );
        step(out, STEP_7, &body);
    }
    let after = "Every key of token {} works under the new WK";
    per_token(out, draft, STEP_8, after, "probe_keys", "");
}

/// Cancel, which the man page allows only while no APQN has the new WK activated; mkplan
/// goes to rescue only then.
pub(super) fn rescue(out: &mut String, draft: &Draft<'_>) {
    let several = draft.tokens.len() > 1;
    out.push('\n');
    comment(
        out,
        0,
        "The man page: cancel is possible only while no APQN has the new WK activated. mkplan goes to rescue only then; after an activation a failure halts the run, and resume goes forward.",
    );
    out.push_str("rescue:\n");
    for t in &draft.tokens {
        let _ = writeln!(
            out,
            "  - name: {}\n    mk_change:\n      cancel: {{ of: {} }}",
            quoted(&format!("Cancel the operation of token {}", t.id)),
            operation_id(t, several)
        );
    }
    out.push('\n');
}
