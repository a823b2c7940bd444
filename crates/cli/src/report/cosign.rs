//! `mkplan report cosign RUN --key KEY`: an approver co-signs a run's report (DSSE), after
//! seeing its summary and typing the end of the run id, or with `--yes`.

use std::sync::Arc;

use crate::error::CliError;
use crate::exit_code;
use crate::globals::Globals;
use crate::key_arg;
use crate::report::report_dir;
use mkplan_engine::ports::operator::{Answer, Operator};
use mkplan_engine::ports::root::HostRoot;
use mkplan_host::pin::PinSources;
use mkplan_host::signing::Pkcs11Signer;
use mkplan_host::terminal::Terminal;
use mkplan_report::cosign::{CosignError, cosign};
use mkplan_report::model::RunReport;
use mkplan_report::sign::{ReportSigner, SigningPorts};
use mkplan_report::terminal;
use mkplan_sig::short_id;

/// Add an approver's signature to a run's report (`report.dsse.json`).
#[derive(Debug, clap::Args)]
#[command(after_help = "\
KEY is a PEM PKCS#8 private key file (mode 0600), or a key on a PKCS#11 token as an RFC 7512
URI: pkcs11:slot-id=N;object=LABEL?module-path=MODULE&pin-source=file:/path/to/pin
(without pin-source the PIN is asked; pin-value is refused). The key must be one the plan
lists in `change.approvers`; the report must verify first.")]
pub struct Args {
    #[arg(value_name = "RUN|DIR|REPORT")]
    target: String,
    /// The approver's signing key: a PEM file or a pkcs11: URI.
    #[arg(long, value_name = "KEY")]
    key: String,
    /// Co-sign without showing the summary and asking to confirm.
    #[arg(long)]
    yes: bool,
}

pub(super) fn run(args: Args, globals: &Globals) -> Result<(), CliError> {
    let dir = report_dir(&args.target, globals).map_err(CliError::Invalid)?;
    let key = key_arg::parse(&args.key).map_err(|e| CliError::Invalid(format!("--key: {e}")))?;
    let cancel = mkplan_engine::cancel::Cancel::install(exit_code::FAILURE)?;
    let operator = Terminal::detect(false, &cancel);
    if !args.yes && !operator.interactive() {
        return Err(CliError::Invalid(
            "no terminal to confirm the co-signature at: run it at a terminal, or give --yes"
                .into(),
        ));
    }
    // The approver's own key, on their machine: not under the --root of a host.
    let root = HostRoot::new("/");
    let ports = SigningPorts {
        root: &root,
        pins: &PinSources::new(root.clone()),
        keys: Arc::new(Pkcs11Signer),
        operator: operator.as_ref(),
    };
    let signer = ReportSigner::for_key(&key, &ports, "approver's signing token")
        .map_err(|e| CliError::Precondition(format!("--key: {e}")))?;
    let confirm =
        |name: &str, report: &RunReport| args.yes || confirmed(operator.as_ref(), name, report);
    let done = match cosign(&dir, &signer, &confirm) {
        Ok(Some(done)) => done,
        Ok(None) => {
            return Err(CliError::Invalid(
                "not co-signed: the run id was not confirmed".into(),
            ));
        }
        Err(e @ CosignError::NotAnApprover { .. }) => return Err(CliError::Invalid(e.to_string())),
        Err(e) => return Err(CliError::Other(e.into())),
    };
    let what = if done.already {
        "already co-signed"
    } else {
        "co-signed"
    };
    println!(
        "{what} by {} (key {}){}",
        done.name,
        short_id(&done.key_id),
        if done.already { ": nothing to do" } else { "" }
    );
    if let Some(cosigners) = done
        .verification
        .checks
        .iter()
        .find(|c| c.name == "cosigners")
    {
        println!("co-signatures: {}", cosigners.detail);
    }
    Ok(())
}

/// Shows the summary and asks for the last 6 characters of the run id.
fn confirmed(operator: &dyn Operator, name: &str, report: &RunReport) -> bool {
    operator.say(&terminal::render(report));
    let id = &report.run.id;
    let tail = &id[id.len().saturating_sub(6)..];
    let prompt = format!("{name}, type the last 6 characters of the run id (…{tail}) to co-sign: ");
    matches!(operator.ask(&prompt, None), Answer::Text(t) if t.trim() == tail)
}
