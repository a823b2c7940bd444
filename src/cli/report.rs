//! `mkplan report show|verify|generate|schema`: the signed run report from the command line,
//! and [`after_run`], which `run` and `resume` call when a run has finished.

use std::path::{Path, PathBuf};

use clap::Subcommand;

use crate::cli::common::Globals;
use crate::engine::operator::{Operator, Terminal};
use crate::engine::rundir::{DEFAULT_STATE_DIR, PLAN_COPY, sha256_hex};
use crate::exit_code;
use crate::host::HostRoot;
use crate::plan::{Plan, load_file};
use crate::report::model::{RunReport, report_schema_text};
use crate::report::sign::Algorithm;
use crate::report::{REPORT_JSON, fleet as fleet_report, generate, terminal, verify};

mod fleet;

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
    /// Check the signature, the DSSE envelope, the journal's hash chain and the plan digest.
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
    /// Print the report JSON Schema (draft 2020-12); `schemas/report.schema.json` is this output.
    Schema,
    /// Verify many hosts' reports and write one signed fleet report (JSON, DSSE, HTML).
    Fleet(fleet::Args),
}

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<i32> {
    match args.command {
        ReportCommand::Show { target } => {
            let dir = match report_dir(&target, globals) {
                Ok(dir) => dir,
                Err(e) => return Ok(fail(&e)),
            };
            let report = match crate::input::read(&dir.join(REPORT_JSON), crate::input::REPORT)
                .map_err(|e| e.to_string())
                .and_then(|b| RunReport::from_bytes(&b))
            {
                Ok(report) => report,
                Err(e) => {
                    return Ok(fail(&format!(
                        "cannot read `{}`: {e}",
                        dir.join(REPORT_JSON).display()
                    )));
                }
            };
            print!("{}", terminal::render(&report));
            Ok(exit_code::SUCCESS)
        }
        ReportCommand::Verify { target, key } => {
            let dir = match report_dir(&target, globals) {
                Ok(dir) => dir,
                Err(e) => return Ok(fail(&e)),
            };
            // A fleet report's directory holds fleet.json instead of report.json.
            let verification = if fleet_report::is_fleet_dir(&dir) {
                fleet_report::verify::verify(&dir, key.as_deref())
            } else {
                verify::verify(&dir, key.as_deref())
            };
            print!("{}", verification.render());
            Ok(if verification.ok() {
                exit_code::SUCCESS
            } else {
                exit_code::FAILURE
            })
        }
        ReportCommand::Generate { run, force } => generate_again(&run, force, globals),
        ReportCommand::Fleet(args) => fleet::run(args),
        ReportCommand::Schema => {
            print!("{}", report_schema_text());
            Ok(exit_code::SUCCESS)
        }
    }
}

fn fail(message: &str) -> i32 {
    eprintln!("mkplan: error: {message}");
    exit_code::FAILURE
}

/// The directory holding the report: a file's directory, a directory, or a run id.
fn report_dir(target: &str, globals: &Globals) -> Result<PathBuf, String> {
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

fn generate_again(run: &str, force: bool, globals: &Globals) -> anyhow::Result<i32> {
    let run_dir = match globals.find_run(run) {
        Ok((_, dir)) => dir,
        Err(e) => return Ok(fail(&e.to_string())),
    };
    if run_dir.dir.join(REPORT_JSON).exists() && !force {
        return Ok(fail(&format!(
            "run {run} already has a report; `--force` replaces it"
        )));
    }
    let loaded = load_file(&run_dir.plan_copy());
    let Some(plan) = loaded.plan else {
        return Ok(fail(&format!(
            "the plan copy `{}` no longer validates with this mkplan",
            run_dir.plan_copy().display()
        )));
    };
    let digest = sha256_hex(loaded.source.text().as_bytes());
    if run_dir.recorded_digest()? != digest {
        return Ok(fail(&format!(
            "`{PLAN_COPY}` of run {run} does not match its recorded digest: it was changed"
        )));
    }
    // A signing token's PIN prompt ends cleanly on Ctrl-C (and the echo comes back on).
    let cancel = crate::engine::signals::Cancel::install()?;
    let operator = Terminal::detect(false, &cancel);
    let state = crate::engine::journal::read_verified(&run_dir.journal())
        .map(|v| crate::engine::state::RunState::replay(&v.entries))
        .ok();
    let mut plan = plan;
    let root = match state {
        Some(s) if s.rehearsal => {
            plan.report.sign = None;
            // A removed simulated host gets no copy (it would recreate the host's directory).
            if !Path::new(&s.host_root).is_dir() {
                plan.report.dir = None;
            }
            HostRoot::new(s.host_root)
        }
        _ => globals.host().root,
    };
    let code = after_run(&plan, &run_dir.dir, &root, operator.as_ref(), None);
    Ok(if code {
        exit_code::SUCCESS
    } else {
        exit_code::FAILURE
    })
}

/// Generates the report of a finished run and says where it is and how to verify it, or,
/// loudly, why there is none. Returns whether the report was written; the caller keeps the
/// run's own exit code either way.
pub fn after_run(
    plan: &Plan,
    run_dir: &Path,
    root: &HostRoot,
    operator: &dyn Operator,
    signer: Option<&crate::report::sign::ReportSigner>,
) -> bool {
    let id = run_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // The state directory is the run directory's grandparent (`<state>/runs/<id>`).
    let state_flag = match run_dir.parent().and_then(Path::parent) {
        Some(state) if state != Path::new(DEFAULT_STATE_DIR) => {
            format!("--state-dir {} ", state.display())
        }
        _ => String::new(),
    };
    let generated = match signer {
        Some(signer) => crate::report::generate_with(plan, run_dir, root, signer),
        None => generate(plan, run_dir, root, operator),
    };
    match generated {
        Ok(done) => {
            let signed = if done.ephemeral {
                let why = if done.rehearsal {
                    "a rehearsal always signs with an ephemeral key, never with the plan's `report.sign` key"
                } else {
                    "no `report.sign` key in the plan"
                };
                format!(
                    "signed with an EPHEMERAL {} key (integrity only; {why})",
                    done.algorithm.describe()
                )
            } else {
                format!("signed, {}", done.algorithm.describe())
            };
            eprintln!(
                "report: {} ({signed})",
                done.dir.join(REPORT_JSON).display()
            );
            eprintln!(
                "  html:   {}",
                done.dir.join(crate::report::REPORT_HTML).display()
            );
            if let Some(copy) = &done.copy {
                eprintln!("  copy:   {}", copy.display());
            }
            eprintln!("  verify: mkplan {state_flag}report verify {id}");
            let openssl = match done.algorithm {
                Algorithm::EcdsaP256 => {
                    "openssl dgst -sha256 -verify signer.pub.pem -signature report.json.sig report.json"
                }
                Algorithm::Ed25519 => {
                    "openssl pkeyutl -verify -pubin -inkey signer.pub.pem -rawin -in report.json -sigfile report.json.sig"
                }
            };
            eprintln!("      or, in {}: {openssl}", done.dir.display());
            if done.warnings > 0 {
                eprintln!(
                    "  {} warning(s) in the report: mkplan {state_flag}report show {id}",
                    done.warnings
                );
            }
            true
        }
        Err(e) => {
            eprintln!("mkplan: error: NO RUN REPORT was written for run {id}: {e}");
            eprintln!(
                "  the run's outcome above stands and its journal is intact; fix this, then: mkplan {state_flag}report generate {id}"
            );
            false
        }
    }
}
