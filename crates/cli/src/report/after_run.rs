//! The report at the end of a run: generated, signed, and said where it is and how to
//! verify it — or, loudly, why there is none.

use std::path::Path;
use std::sync::Arc;

use mkplan_engine::ports::operator::Operator;
use mkplan_engine::ports::root::HostRoot;
use mkplan_engine::rundir::DEFAULT_STATE_DIR;
use mkplan_host::pin::PinSources;
use mkplan_host::signing::Pkcs11Signer;
use mkplan_plan::Plan;
use mkplan_report::sign::{Algorithm, SigningPorts};
use mkplan_report::{REPORT_JSON, generate};

/// Generates the report of a finished run and says where it is and how to verify it, or,
/// loudly, why there is none. Returns whether the report was written; the caller keeps the
/// run's own exit code either way.
pub fn after_run(
    plan: &Plan,
    run_dir: &Path,
    root: &HostRoot,
    operator: &dyn Operator,
    signer: Option<&mkplan_report::sign::ReportSigner>,
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
        Some(signer) => mkplan_report::generate_with(plan, run_dir, root, signer),
        None => generate(
            plan,
            run_dir,
            &SigningPorts {
                root,
                pins: &PinSources::new(root.clone()),
                keys: Arc::new(Pkcs11Signer),
                operator,
            },
        ),
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
                done.dir.join(mkplan_report::REPORT_HTML).display()
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
