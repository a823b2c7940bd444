//! `mkplan report cosign RUN --key KEY`: an approver co-signs a run's report (DSSE), after
//! seeing its summary and typing the end of the run id, or with `--yes`; `--from FILE` adds
//! a signature the approver made on their own machine (the README's offline recipe).

use std::path::{Path, PathBuf};

use crate::error::CliError;
use crate::exit_code;
use crate::globals::Globals;
use crate::key_arg;
use crate::report::report_dir;
use mkplan_engine::ports::operator::{Answer, Operator};
use mkplan_host::terminal::Terminal;
use mkplan_report::cosign::{CosignError, Cosigned, Source, cosign, detached_signature};
use mkplan_report::model::RunReport;
use mkplan_report::terminal;
use mkplan_sig::short_id;

/// Add an approver's signature to a run's report (`report.dsse.json`).
#[derive(Debug, clap::Args)]
#[command(after_help = "\
KEY is a PEM PKCS#8 private key file (mode 0600), or a key on a PKCS#11 token as an RFC 7512
URI: pkcs11:slot-id=N;object=LABEL?module-path=MODULE&pin-source=file:/path/to/pin
(without pin-source the PIN is asked; pin-value is refused). The key must be one the plan
lists in `change.approvers`; the report must verify first.

--from FILE takes a signature made elsewhere over the envelope's PAE (e.g. openssl on the
approver's machine, as the README shows): raw DER ECDSA P-256 or Ed25519, or its base64. It
is added only if it verifies with a key the report lists for an approver.")]
pub struct Args {
    #[arg(value_name = "RUN|DIR|REPORT")]
    target: String,
    /// The approver's signing key: a PEM file or a pkcs11: URI.
    #[arg(
        long,
        value_name = "KEY",
        required_unless_present = "from",
        conflicts_with = "from"
    )]
    key: Option<String>,
    /// A signature the approver made elsewhere over the envelope's PAE (raw DER ECDSA or
    /// Ed25519, or its base64); added once it verifies with an approver key of the report.
    #[arg(long, value_name = "FILE")]
    from: Option<PathBuf>,
    /// Co-sign without showing the summary and asking to confirm.
    #[arg(long)]
    yes: bool,
}

pub(super) fn run(args: Args, globals: &Globals) -> Result<(), CliError> {
    let dir = report_dir(&args.target, globals).map_err(CliError::Invalid)?;
    let done = match (&args.key, &args.from) {
        (_, Some(file)) => from_file(&dir, file)?,
        (Some(key), None) => with_key(&dir, key, args.yes)?,
        (None, None) => return Err(CliError::Invalid("give --key KEY or --from FILE".into())),
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
    super::cosign_copies::update_other_copies(&dir, globals);
    Ok(())
}

/// Co-signs with the approver's key, here.
fn with_key(dir: &Path, key: &str, yes: bool) -> Result<Cosigned, CliError> {
    let key = key_arg::parse(key).map_err(|e| CliError::Invalid(format!("--key: {e}")))?;
    let cancel = mkplan_engine::cancel::Cancel::install(exit_code::FAILURE)?;
    let operator = Terminal::detect(false, &cancel);
    if !yes && !operator.interactive() {
        return Err(CliError::Invalid(
            "no terminal to confirm the co-signature at: run it at a terminal, or give --yes"
                .into(),
        ));
    }
    let signer = key_arg::approver_signer(&key, operator.as_ref())?;
    let confirm =
        |name: &str, report: &RunReport| yes || confirmed(operator.as_ref(), name, report);
    outcome(cosign(dir, Source::Key(&signer), &confirm))
}

/// Adds a signature the approver made on their own machine (they saw the report there).
fn from_file(dir: &Path, file: &Path) -> Result<Cosigned, CliError> {
    let bytes = mkplan_plan::input::read(file, mkplan_plan::input::SMALL)
        .map_err(|e| CliError::Invalid(format!("--from `{}`: {e}", file.display())))?;
    let signature = detached_signature(&bytes);
    outcome(cosign(dir, Source::Detached(&signature), &|_, _| true))
}

fn outcome(result: Result<Option<Cosigned>, CosignError>) -> Result<Cosigned, CliError> {
    match result {
        Ok(Some(done)) => Ok(done),
        Ok(None) => Err(CliError::Invalid(
            "not co-signed: the run id was not confirmed".into(),
        )),
        Err(
            e @ (CosignError::NotAnApprover { .. } | CosignError::DetachedDoesNotVerify { .. }),
        ) => Err(CliError::Invalid(e.to_string())),
        Err(e) => Err(CliError::Other(e.into())),
    }
}

/// Shows the summary and asks for the last 6 characters of the run id.
fn confirmed(operator: &dyn Operator, name: &str, report: &RunReport) -> bool {
    operator.say(&terminal::render(report));
    let id = &report.run.id;
    let tail = &id[id.len().saturating_sub(6)..];
    let prompt = format!("{name}, type the last 6 characters of the run id (…{tail}) to co-sign: ");
    matches!(operator.ask(&prompt, None), Answer::Text(t) if t.trim() == tail)
}
