//! `mkplan report show|verify|generate|schema`: the signed run report from the command line,
//! and [`after_run`], which `run` and `resume` call when a run has finished.

mod after_run;
mod cosign;
mod cosign_copies;
mod fleet;
mod generate;

pub use after_run::after_run;

use std::path::{Path, PathBuf};

use clap::Subcommand;

use crate::error::CliError;
use crate::globals::Globals;
use mkplan_report::model::{RunReport, report_schema_text};
use mkplan_report::{REPORT_JSON, fleet as fleet_report, terminal, verify};

/// Show, verify or re-create a run's signed report.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
RUN is a run id of the state directory (see `mkplan runs`); a directory holding report.json
(a run directory, or a copy under the plan's `report.dir`) or the report.json file itself
can be given instead.")]
pub struct Args {
    #[command(subcommand)]
    command: ReportCommand,
}

#[derive(Debug, Subcommand)]
enum ReportCommand {
    /// Print a summary of the report.
    Show {
        #[arg(value_name = "RUN|DIR|REPORT")]
        target: String,
    },
    /// Check the signature, the DSSE envelope, the journal's hash chain, the plan digest and
    /// the key lists' digests.
    Verify {
        #[arg(value_name = "RUN|DIR|REPORT")]
        target: String,
        /// The public key to verify with (default: signer.pub.pem beside the report, which
        /// proves integrity only against that key).
        #[arg(long, value_name = "PUB")]
        key: Option<PathBuf>,
    },
    /// Build and sign the report of a run again (e.g. after fixing a signing-key problem).
    Generate {
        #[arg(value_name = "RUN")]
        run: String,
        /// Replace an existing report.
        #[arg(long)]
        force: bool,
    },
    /// Add an approver's co-signature to the report (a key `change.approvers` lists).
    Cosign(cosign::Args),
    /// Print the report JSON Schema (draft 2020-12); `schemas/report.schema.json` is this output.
    Schema,
    /// Verify many hosts' reports and write one signed fleet report (JSON, DSSE, HTML).
    Fleet(fleet::Args),
}

pub fn run(args: Args, globals: &Globals) -> Result<(), CliError> {
    match args.command {
        ReportCommand::Show { target } => {
            let dir = match report_dir(&target, globals) {
                Ok(dir) => dir,
                Err(e) => return Err(fail(&e)),
            };
            let report =
                match mkplan_plan::input::read(&dir.join(REPORT_JSON), mkplan_plan::input::REPORT)
                    .map_err(|e| e.to_string())
                    .and_then(|b| RunReport::from_bytes(&b).map_err(|e| e.to_string()))
                {
                    Ok(report) => report,
                    Err(e) => {
                        return Err(fail(&format!(
                            "cannot read `{}`: {e}",
                            dir.join(REPORT_JSON).display()
                        )));
                    }
                };
            print!("{}", terminal::render(&report));
            Ok(())
        }
        ReportCommand::Verify { target, key } => {
            let dir = match report_dir(&target, globals) {
                Ok(dir) => dir,
                Err(e) => return Err(fail(&e)),
            };
            // A fleet report's directory holds fleet.json instead of report.json.
            let verification = if fleet_report::is_fleet_dir(&dir) {
                fleet_report::verify::verify(&dir, key.as_deref())
            } else {
                verify::verify(&dir, key.as_deref())
            };
            print!("{}", verification.render());
            if verification.ok() {
                Ok(())
            } else if verification.incomplete() {
                Err(CliError::IncompleteSaid)
            } else {
                Err(CliError::FailedSaid)
            }
        }
        ReportCommand::Generate { run, force } => generate::again(&run, force, globals),
        ReportCommand::Fleet(args) => fleet::run(args),
        ReportCommand::Cosign(args) => cosign::run(args, globals),
        ReportCommand::Schema => {
            print!("{}", report_schema_text());
            Ok(())
        }
    }
}

pub(super) fn fail(message: &str) -> CliError {
    CliError::Other(anyhow::anyhow!("{message}"))
}

/// The directory holding the report: a file's directory, a directory, or a run id.
pub(super) fn report_dir(target: &str, globals: &Globals) -> Result<PathBuf, String> {
    let path = Path::new(target);
    if path.is_file() {
        return Ok(match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
            _ => PathBuf::from("."),
        });
    }
    if path.is_dir() {
        return Ok(path.to_owned());
    }
    if target.contains('/') {
        return Err(format!("`{target}`: no such file or directory"));
    }
    globals
        .find_run(target)
        .map(|(_, run)| run.dir)
        .map_err(|e| e.to_string())
}
