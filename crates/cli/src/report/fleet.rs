//! `mkplan report fleet DIR…`: one signed fleet report from many hosts' run reports.

use std::path::PathBuf;

use crate::error::CliError;
use mkplan_report::fleet::{FLEET_HTML, FLEET_JSON, generate};

/// Verify many hosts' run reports and write one signed fleet report.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Each DIR holds one host's report (report.json, report.json.sig, report.dsse.json,
signer.pub.pem, journal.jsonl, plan.yaml), as the Ansible role fetches it, and is named after
the host. Each is verified as `mkplan report verify` does; one that does not verify is listed
as such, never left out. --host names every host the change covers, so a host that was never
run (a rollout stopped before it) is listed too.")]
pub struct Args {
    /// Host report directories.
    #[arg(value_name = "DIR", required_unless_present = "hosts")]
    dirs: Vec<PathBuf>,
    /// Where to write fleet.json, its signature, envelope and page (created 0700 if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// A host the change covers (repeatable); one with no DIR is listed as without a report.
    #[arg(long = "host", value_name = "NAME")]
    hosts: Vec<String>,
    /// Sign with this PEM PKCS#8 key file (ECDSA P-256 or Ed25519; only its owner may read
    /// it) [default: an ephemeral P-256 key, integrity only].
    #[arg(long, value_name = "KEY")]
    key: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<(), CliError> {
    let written = match generate(&args.dirs, &args.hosts, &args.out, args.key.as_deref()) {
        Ok(written) => written,
        Err(e) => {
            eprintln!("mkplan: error: {e}");
            return Err(CliError::FailedSaid);
        }
    };
    let s = &written.report.summary;
    for host in &written.report.hosts {
        let outcome = host
            .run
            .as_ref()
            .map_or_else(|| "—".to_owned(), |r| r.outcome.clone());
        eprintln!("  {:<20} {:<13} {outcome}", host.name, host.status);
    }
    for warning in &written.report.warnings {
        eprintln!("warning: {warning}");
    }
    let signed = if written.ephemeral {
        format!(
            "signed with an EPHEMERAL {} key (integrity only; --key names a signing key)",
            written.algorithm.describe()
        )
    } else {
        format!("signed, {}", written.algorithm.describe())
    };
    eprintln!(
        "fleet: {} hosts, {} verified, {} NOT verified, {} without a report; {}",
        s.hosts,
        s.verified,
        s.not_verified,
        s.no_report,
        if s.complete { "complete" } else { "INCOMPLETE" }
    );
    eprintln!("  html:   {}", written.dir.join(FLEET_HTML).display());
    eprintln!("  verify: mkplan report verify {}", written.dir.display());
    eprintln!("  key id: {} ({signed})", written.key_id);
    println!("{}", written.dir.join(FLEET_JSON).display());
    if s.not_verified == 0 {
        Ok(())
    } else {
        Err(CliError::FailedSaid)
    }
}
