//! What `run`, `check` and `resume` share: global options, logging, loading a plan for
//! execution, and printing the recap.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::ValueEnum;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::engine::events::SectionName;
use crate::engine::rundir::{DEFAULT_STATE_DIR, RunDir, StateDir};
use crate::engine::state::{RunState, StepStatus};
use crate::host::HostRoot;
use crate::plan::Plan;
use crate::plan::load_file;
use crate::plan::model::SignKey;
use crate::steps::context::Host;
use crate::trust::{self, TrustError, Trusted};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// Options every executing command takes.
#[derive(Debug, Clone, clap::Args)]
pub struct Globals {
    /// The host root: sysfs, the token stores and the tools are found under it [default: /;
    /// for `rehearse`, a new temporary simulated host].
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Where runs and their journals are kept [default: /var/lib/mkplan; for `rehearse`,
    /// the user's state directory, which `resume` and `report` search too].
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Log lines as text for people, or one JSON object per event for a SIEM.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// More detail in the log.
    #[arg(short, long, global = true, conflicts_with = "quiet")]
    pub verbose: bool,
    /// Only warnings and errors in the log.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

impl Globals {
    pub fn state(&self) -> StateDir {
        StateDir::new(
            self.state_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
        )
    }

    /// Finds run `id`: in `--state-dir` when given; otherwise in the default state
    /// directory, then among the rehearsals (a rehearsal's run is found without saying
    /// where rehearsals are kept). Says on stderr when it is a rehearsal's.
    pub fn find_run(&self, id: &str) -> Result<(StateDir, RunDir), NoSuchRun> {
        let places = match &self.state_dir {
            Some(_) => vec![self.state()],
            None => vec![self.state(), StateDir::new(rehearsal_state_dir())],
        };
        for (i, state) in places.iter().enumerate() {
            if let Ok(run) = state.open_run(id) {
                if i > 0 {
                    eprintln!(
                        "note: run {id} is a rehearsal's, in `{}`",
                        state.dir().display()
                    );
                }
                return Ok((state.clone(), run));
            }
        }
        Err(NoSuchRun {
            id: id.to_owned(),
            searched: places.iter().map(StateDir::runs).collect(),
            rehearsals_searched: self.state_dir.is_none(),
        })
    }

    pub fn host(&self) -> Host {
        let root = self.root.clone().unwrap_or_else(|| PathBuf::from("/"));
        // No PKCS#11 module can open a simulated EP11 token: on a host root that
        // `mkplan-sim init` laid out (only ever named with --root), keys are probed through
        // the simulator. Approvals and the TKE stay real: nobody acts for them.
        let prober: std::sync::Arc<dyn crate::steps::context::KeyProber> = match &self.root {
            Some(dir) if crate::sim::is_simulated_host(dir) => {
                std::sync::Arc::new(crate::sim::SimProber::new(dir))
            }
            _ => std::sync::Arc::new(crate::steps::context::Pkcs11Prober),
        };
        Host {
            root: HostRoot::new(root),
            proc_dir: PathBuf::from("/proc"),
            prober,
            checkpoint_actor: None,
        }
    }

    /// Installs the log subscriber: progress bars only for people on a terminal.
    pub fn init_logging(&self) {
        let level = if self.quiet {
            LevelFilter::WARN
        } else if self.verbose {
            LevelFilter::DEBUG
        } else {
            LevelFilter::INFO
        };
        let registry = tracing_subscriber::registry();
        let _ = match self.log_format {
            LogFormat::Json => registry
                .with(
                    tracing_subscriber::fmt::layer()
                        // A closed stderr drops log lines; the default would panic.
                        .log_internal_errors(false)
                        .json()
                        .with_current_span(false)
                        .with_span_list(false)
                        .with_writer(std::io::stderr)
                        .with_filter(level),
                )
                .try_init(),
            LogFormat::Human if std::io::stderr().is_terminal() => {
                let bars = tracing_indicatif::IndicatifLayer::new();
                registry
                    .with(
                        tracing_subscriber::fmt::layer()
                            // A closed stderr drops log lines; the default would panic.
                            .log_internal_errors(false)
                            .fmt_fields(message_only())
                            .with_target(false)
                            .with_writer(bars.get_stderr_writer())
                            .with_filter(level),
                    )
                    .with(bars.with_filter(level))
                    .try_init()
            }
            LogFormat::Human => registry
                .with(
                    tracing_subscriber::fmt::layer()
                        // A closed stderr drops log lines; the default would panic.
                        .log_internal_errors(false)
                        .fmt_fields(message_only())
                        .with_target(false)
                        .with_ansi(false)
                        .with_writer(std::io::stderr)
                        .with_filter(level),
                )
                .try_init(),
        };
    }
}

/// Where `mkplan rehearse` keeps its runs unless `--state-dir` says otherwise: the user's
/// state directory, apart from the real runs of `/var/lib/mkplan`.
pub fn rehearsal_state_dir() -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("mkplan/rehearsals")
}

/// A run id that names no run where mkplan looked.
#[derive(Debug, thiserror::Error)]
#[error("no run `{id}` in {}{}", quoted_paths(searched), self.hint())]
pub struct NoSuchRun {
    pub id: String,
    pub searched: Vec<PathBuf>,
    rehearsals_searched: bool,
}

impl NoSuchRun {
    fn hint(&self) -> String {
        if self.rehearsals_searched {
            let rehearsals = rehearsal_state_dir();
            format!(
                "\n  hint: `mkplan runs` lists the runs, `mkplan runs --state-dir {}` the rehearsals",
                rehearsals.display()
            )
        } else {
            "\n  hint: `mkplan runs` (with the same --state-dir) lists them".to_owned()
        }
    }
}

fn quoted_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| format!("`{}`", p.display()))
        .collect::<Vec<_>>()
        .join(" or ")
}

/// People read the message; the structured fields (seq, kind, step…) are for the JSON format.
fn message_only() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> {
    tracing_subscriber::fmt::format::debug_fn(|writer, field, value| {
        if field.name() == "message" {
            write!(writer, "{value:?}")
        } else {
            Ok(())
        }
    })
}

/// A plan loaded for execution, with its exact text; diagnostics go to stderr.
pub struct ExecutablePlan {
    pub plan: Plan,
    pub text: String,
    pub path: PathBuf,
}

pub fn load_for_execution(path: &Path) -> Option<ExecutablePlan> {
    // A plan someone else could write is refused like an unreadable one: before it is read.
    if let Err(e) = trust::check(path, Trusted::Plan) {
        eprintln!("mkplan: error: {e}");
        return None;
    }
    let loaded = load_file(path);
    let mut stderr = std::io::stderr().lock();
    for d in loaded.diagnostics.iter() {
        let _ = writeln!(stderr, "{}", d.render(&loaded.source));
    }
    let plan = loaded.plan?;
    Some(ExecutablePlan {
        plan,
        text: loaded.source.text().to_owned(),
        path: std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned()),
    })
}

/// Before a run starts or resumes: the state directory (whose journals `resume` acts on)
/// and a report-signing key file must be writable by nobody but root or the operator (the
/// key also readable by nobody else). The refusal, if any.
pub fn untrusted(state: &StateDir, plan: &Plan, root: &HostRoot) -> Option<TrustError> {
    if let Err(e) = trust::check(state.dir(), Trusted::StateDir) {
        return Some(e);
    }
    match &plan.report.sign {
        Some(SignKey::File(key)) => trust::check(&root.path(key), Trusted::SigningKey).err(),
        _ => None,
    }
}

/// The person running mkplan, as recorded with runs and decisions.
pub fn operator_name(given: Option<&str>) -> String {
    if let Some(name) = given {
        return name.to_owned();
    }
    for var in ["SUDO_USER", "USER", "LOGNAME"] {
        if let Ok(name) = std::env::var(var)
            && !name.is_empty()
        {
            return name;
        }
    }
    format!("uid {}", rustix::process::getuid().as_raw())
}

/// The recap table, from the journal's replayed state.
pub fn print_recap(plan: &Plan, state: &RunState, format: LogFormat) {
    let mut rows = Vec::new();
    for step in plan.all_steps() {
        let section: SectionName = step.section.into();
        let record = state.record(section, step.index);
        let (status, detail) = match record.map(|r| &r.status) {
            Some(StepStatus::Succeeded { summary, .. }) => ("ok", summary.clone()),
            Some(StepStatus::Failed { error, .. }) => ("failed", error.clone()),
            Some(StepStatus::Skipped { reason }) => ("skipped", reason.clone()),
            Some(StepStatus::Started { .. }) => {
                ("uncertain", "started, no outcome recorded".to_owned())
            }
            None => ("-", String::new()),
        };
        let duration = record.and_then(|r| r.duration_ms);
        rows.push((
            crate::engine::events::StepRef::of(step),
            status,
            duration,
            detail,
        ));
    }
    let mut out = std::io::stdout().lock();
    if format == LogFormat::Json {
        let json: Vec<_> = rows
            .iter()
            .map(|(s, status, d, detail)| serde_json::json!({"step": s.position(), "name": s.name, "kind": s.kind, "status": status, "duration_ms": d, "detail": detail}))
            .collect();
        let _ = writeln!(
            out,
            "{}",
            serde_json::json!({"recap": json, "run": state.run_id, "state": state.state_name()})
        );
        return;
    }
    let width = rows
        .iter()
        .map(|r| r.0.name.chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, 48);
    let _ = writeln!(
        out,
        "\n{}RECAP  run {}  {}",
        if state.rehearsal { "REHEARSAL " } else { "" },
        state.run_id,
        state.state_name()
    );
    let _ = writeln!(
        out,
        "  {:<11} {:<width$}  {:<17} {:<9} {:>8}",
        "STEP", "NAME", "KIND", "STATUS", "TIME"
    );
    let mut counts = std::collections::BTreeMap::new();
    for (step, status, duration, _) in &rows {
        *counts.entry(*status).or_insert(0) += 1;
        let name: String = step.name.chars().take(width).collect();
        let time = duration
            .map(|d| format!("{:.1}s", d as f64 / 1000.0))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {:<11} {:<width$}  {:<17} {:<9} {:>8}",
            step.position(),
            name,
            step.kind,
            status,
            time
        );
    }
    let totals: Vec<String> = counts
        .iter()
        .map(|(k, v)| format!("{v} {}", if *k == "-" { "not reached" } else { k }))
        .collect();
    let _ = writeln!(out, "  totals: {}", totals.join(", "));
}
