//! `mkplan approve PLAN CHECKPOINT --key KEY -o FILE`: an approver signs their approval of
//! one checkpoint of one plan (its digest, the text the checkpoint will show, the new
//! WKVPs, an expiry) with their own key. FILE is an approvals file for `run --approvals`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use crate::error::CliError;
use crate::exit_code;
use crate::key_arg;
use crate::plan_input::load_for_execution;
use mkplan_engine::approvals::{ApprovalInputs, flag_key};
use mkplan_engine::digest::sha256_hex;
use mkplan_engine::ports::operator::{Answer, Operator};
use mkplan_engine::signed_approval::{SignedApproval, parse_validity, statement_for};
use mkplan_host::terminal::Terminal;
use mkplan_sig::short_id;

/// Sign an approval of a checkpoint with your own key (an approver the plan lists with a key).
#[derive(Debug, clap::Args)]
#[command(after_help = "\
KEY is a PEM PKCS#8 private key file (mode 0600), or a pkcs11: URI as for `report cosign`.
The approval binds the plan's digest, the checkpoint and the exact text it will show, the
new WKVPs and an expiry; it counts once (a second run refuses it as a replay).")]
pub struct Args {
    /// The plan, exactly as it will be run.
    plan: PathBuf,
    /// The checkpoint: its id, its exact name or its position (`steps[N]`).
    checkpoint: String,
    /// Your signing key: a PEM file or a pkcs11: URI.
    #[arg(long, value_name = "KEY")]
    key: String,
    /// How long the approval holds: `30m`, `12h`, `7d` (at most 30 days).
    #[arg(long, value_name = "DURATION", default_value = "24h")]
    expires: String,
    /// Where to write the signed approval (never overwritten).
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
    /// Sign without showing the checkpoint's text and asking to confirm.
    #[arg(long)]
    yes: bool,
}

pub fn run(args: Args) -> Result<(), CliError> {
    let loaded = load_for_execution(&args.plan).ok_or(CliError::InvalidSaid)?;
    let plan = &loaded.plan;
    // Named as `--approve` names it, with its did-you-mean.
    let invalid = |e: &dyn std::fmt::Display| CliError::Invalid(e.to_string());
    let mut named = ApprovalInputs::default();
    named
        .add_flag(&format!("{}=approver", args.checkpoint))
        .map_err(|e| invalid(&e))?;
    named.check_names(plan).map_err(|e| invalid(&e))?;
    let step = mkplan_engine::approvals::find_checkpoint(plan, &args.checkpoint)
        .ok_or_else(|| CliError::Invalid(format!("no checkpoint `{}`", args.checkpoint)))?;
    let validity = parse_validity(&args.expires).map_err(CliError::Invalid)?;
    let key = key_arg::parse(&args.key).map_err(|e| CliError::Invalid(format!("--key: {e}")))?;
    let cancel = mkplan_engine::cancel::Cancel::install(exit_code::FAILURE)?;
    let operator = Terminal::detect(false, &cancel);
    if !args.yes && !operator.interactive() {
        return Err(CliError::Invalid(
            "no terminal to confirm the approval at: run it at a terminal, or give --yes".into(),
        ));
    }
    let signer = key_arg::approver_signer(&key, operator.as_ref())?;
    let key_id = signer.public().key_id();
    let Some(approver) = plan.change.approver_with_key(&key_id) else {
        let listed: Vec<String> = plan
            .change
            .approver_keys
            .iter()
            .map(|a| format!("{} {}", a.name, short_id(&a.key_id)))
            .collect();
        return Err(CliError::Invalid(format!(
            "your key {key_id} is not an approver key of plan `{}`; its approvers with a key: {}",
            plan.name,
            if listed.is_empty() {
                "none".to_owned()
            } else {
                listed.join(", ")
            }
        )));
    };
    let digest = sha256_hex(loaded.text.as_bytes());
    let shown = mkplan_steps::shown_text_of(plan, &digest, step).unwrap_or_default();
    if !args.yes && !confirmed(operator.as_ref(), &approver.name, &shown, &flag_key(step)) {
        return Err(CliError::Invalid(
            "not signed: the checkpoint was not confirmed".into(),
        ));
    }
    let now = jiff::Timestamp::now();
    let expires = now
        .checked_add(jiff::SignedDuration::from_secs(validity))
        .map_err(|e| CliError::Invalid(format!("--expires: {e}")))?;
    let statement = statement_for(
        plan,
        &digest,
        step,
        &sha256_hex(shown.as_bytes()),
        (&approver.name, &key_id),
        (now, expires),
        &nonce()?,
    );
    let signed = SignedApproval::sign(&statement, |pae| signer.sign(pae))
        .map_err(|e| CliError::Precondition(format!("--key: {e}")))?;
    let line = serde_json::json!({ "approvals": [{ "signed": signed }] });
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&args.output)
        .map_err(|e| anyhow::anyhow!("cannot create `{}`: {e}", args.output.display()))?;
    writeln!(file, "{line}").and_then(|()| file.sync_all())?;
    println!(
        "approval of {} by {} (key {}), valid until {}: {}",
        flag_key(step),
        approver.name,
        short_id(&key_id),
        statement.expires,
        args.output.display()
    );
    Ok(())
}

fn confirmed(operator: &dyn Operator, name: &str, shown: &str, checkpoint: &str) -> bool {
    operator.say(shown);
    let prompt = format!("{name}, type `{checkpoint}` to sign your approval of it: ");
    matches!(operator.ask(&prompt, None), Answer::Text(t) if t.trim() == checkpoint)
}

/// 16 random bytes, hex.
fn nonce() -> Result<String, CliError> {
    let mut bytes = [0u8; 16];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
