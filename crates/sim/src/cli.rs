//! The `mkplan-sim` executable: it dispatches on the file name it was run as (argv[0], not
//! resolved through the symlink): `pkcsep11_migrate`, `pkcshsm_mk_change`, `pkcscca`,
//! `systemctl` and `pkcsslotd` are the stand-ins, `mkplan-sim` the simulator's own commands, and any other name a plan's service
//! command.
//!
//! A stand-in finds its root from the path it was run as: the nearest ancestor directory of
//! argv[0] that holds `var/lib/mkplan-sim/state.json` (so `<root>/usr/sbin/pkcsslotd` and
//! `<root>/usr/bin/systemctl` give `<root>`); a bare name is looked up on `PATH` first. If
//! none is found, `$MKPLAN_SIM_ROOT` names it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand, ValueEnum};

use crate::{Fault, SimError, TkeAction, migrate, process_main, procs, standins};
use mkplan_plan::model::{Apqn, Wkvp};

/// The USER PIN `init` gives the tokens when `--pin-stdin` is not given.
pub const DEFAULT_PIN: &str = "S1m-User-PIN";
/// Names the root when a stand-in cannot find it from its own path.
pub const ROOT_ENV: &str = "MKPLAN_SIM_ROOT";

#[derive(Parser)]
#[command(
    name = "mkplan-sim",
    version,
    about = "The simulated EP11/CCA host of mkplan: layout, TKE, faults, verification"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Lay out a simulated host (for a plan, or from a host description) and start its
    /// processes.
    Init {
        #[arg(long)]
        root: PathBuf,
        /// The plan whose host to lay out (EP11 tokens, services that use the keys).
        #[arg(long, required_unless_present = "host", conflicts_with = "host")]
        plan: Option<PathBuf>,
        /// A host description (JSON: tokens EP11 or CCA, units, apps; see
        /// `mkplan-sim describe`).
        #[arg(long)]
        host: Option<PathBuf>,
        /// Key objects per token (a certificate and a data object are added).
        #[arg(long, default_value_t = 24)]
        keys: usize,
        /// Read the tokens' USER PIN from the first line of stdin (a pipe: never argv or
        /// the environment, where other processes can read it) [default: S1m-User-PIN].
        #[arg(long)]
        pin_stdin: bool,
        /// Read the tokens' SO PIN from the next line of stdin [default: 87654321].
        #[arg(long)]
        so_pin_stdin: bool,
    },
    /// Print the host description (JSON) `init --plan` lays out for a plan.
    Describe {
        #[arg(long)]
        plan: PathBuf,
    },
    /// What the TKE does to the registers: EP11 load/commit/activate/clear; CCA
    /// load [--partial]/set/clear per MK type.
    Tke {
        #[arg(long)]
        root: PathBuf,
        action: TkeArg,
        /// One APQN in lszcrypt notation (`0a.0011`); default: every APQN the action fits.
        #[arg(long)]
        apqn: Option<String>,
        /// EP11: the WKVP to load (default: the new WKVP of the APQN's token).
        #[arg(long)]
        wkvp: Option<String>,
        /// CCA: the MK types (`aes`, `apka`, `asym`, `sym`; repeatable or comma-separated;
        /// default: the token's).
        #[arg(long, value_delimiter = ',')]
        mk: Vec<String>,
        /// CCA: the MKVP to load (default: the token's new MKVP of each MK type).
        #[arg(long)]
        mkvp: Option<String>,
        /// CCA: load a first or middle key part only (NEW partial).
        #[arg(long)]
        partial: bool,
    },
    /// What the simulated applications counted: operations that worked and that failed.
    Apps {
        #[arg(long)]
        root: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Start or stop a standalone simulated application.
    App {
        #[arg(long)]
        root: PathBuf,
        action: AppArg,
        name: String,
        /// The tokens it uses (repeatable; default: all).
        #[arg(long)]
        token: Vec<String>,
        /// Milliseconds between operations.
        #[arg(long)]
        interval: Option<u64>,
    },
    /// Does every key's blob open under the current WK of its token's APQNs?
    Verify {
        #[arg(long)]
        root: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Add a fault (`fail-at-key K`, `slow-keys MS`, `require-tty`, `pin-read-exit-zero`,
    /// `lib-load-failure`, `env-pin`, `unit-wont-stop UNIT`, `stray`,
    /// `interrupted-read APQN[:apka][:READS]`, `mk-change-refuse-initiate SLOT`,
    /// `mk-change-fail-reencipher K`, `mk-change-fail-finalize K`, `mk-change-fail-cancel K`,
    /// `mk-change-slow MS`, `disable-event-support`, `cca-fail-at-key K`), list them, or
    /// `--clear`.
    Fault {
        #[arg(long)]
        root: PathBuf,
        #[arg(long, conflicts_with = "name")]
        clear: bool,
        name: Option<String>,
        arg: Option<String>,
    },
    /// Set a queue online or offline.
    Queue {
        #[arg(long)]
        root: PathBuf,
        apqn: String,
        state: QueueArg,
    },
    /// Stop every simulated process of the root.
    Shutdown {
        #[arg(long)]
        root: PathBuf,
    },
    /// Reboot the host: stop every simulated process, then start pkcsslotd, the units and
    /// the apps again (files and registers stay).
    Reboot {
        #[arg(long)]
        root: PathBuf,
    },
    /// Start one simulated process detached and exit once it is ready (internal).
    #[command(hide = true)]
    Spawn {
        #[arg(long)]
        root: PathBuf,
        #[arg(long)]
        unit: Option<String>,
        #[arg(long)]
        stray: bool,
        #[arg(long)]
        slotd: bool,
        #[arg(long)]
        app: Option<String>,
        #[arg(long)]
        read_watcher: Option<String>,
    },
    /// The body of a standalone application (internal).
    #[command(hide = true)]
    AppProcess {
        #[arg(long)]
        root: PathBuf,
        #[arg(long)]
        app: String,
    },
    /// The body of an interrupted-read fault's watcher (internal).
    #[command(hide = true)]
    ReadWatcher {
        #[arg(long)]
        root: PathBuf,
        #[arg(long)]
        apqn: String,
    },
    /// The body of a unit or stray process (internal).
    #[command(hide = true)]
    UnitProcess {
        #[arg(long)]
        root: PathBuf,
        #[arg(long)]
        unit: Option<String>,
        #[arg(long)]
        stray: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum TkeArg {
    Load,
    Commit,
    /// EP11 activate, CCA set ("Set, immediate").
    #[value(alias = "set")]
    Activate,
    Clear,
}

#[derive(Clone, Copy, ValueEnum)]
enum AppArg {
    Start,
    Stop,
}

#[derive(Clone, Copy, ValueEnum)]
enum QueueArg {
    Online,
    Offline,
}

/// Runs the executable with `args` (argv[0] first); returns the exit status.
pub fn main(args: impl IntoIterator<Item = OsString>) -> i32 {
    let args: Vec<String> = args
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let argv0 = args
        .first()
        .cloned()
        .unwrap_or_else(|| "mkplan-sim".to_owned());
    let name = Path::new(&argv0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.starts_with(crate::SIM_EXE_NAME) {
        return commands(&args);
    }
    let invoked = invoked_path(&argv0);
    let Some(root) = invoked.as_deref().and_then(find_root).or_else(env_root) else {
        eprintln!(
            "{name} (mkplan-sim stand-in): cannot find the simulated host: no ancestor of `{argv0}` holds var/lib/mkplan-sim/state.json, and ${ROOT_ENV} is not set"
        );
        return 1;
    };
    let rest = &args[1..];
    match name.as_str() {
        "pkcsep11_migrate" => migrate::main(&argv0, rest, &root),
        "pkcshsm_mk_change" => crate::mkchange::main(&argv0, rest, &root),
        "pkcscca" => crate::pkcscca::main(&argv0, rest, &root),
        "systemctl" => standins::systemctl_main(&root, rest),
        "pkcsslotd" => standins::slotd_main(&root),
        _ => standins::service_command_main(
            &root,
            invoked.as_deref().unwrap_or(Path::new(&argv0)),
            rest,
        ),
    }
}

/// argv[0] as an absolute path (not resolved through symlinks).
fn invoked_path(argv0: &str) -> Option<PathBuf> {
    if argv0.contains('/') {
        let path = PathBuf::from(argv0);
        return Some(if path.is_absolute() {
            path
        } else {
            std::env::current_dir().ok()?.join(path)
        });
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(argv0))
        .find(|p| p.exists())
}

fn find_root(invoked: &Path) -> Option<PathBuf> {
    invoked
        .parent()?
        .ancestors()
        .find(|dir| dir.join("var/lib/mkplan-sim/state.json").is_file())
        .map(crate::canonical_root)
}

fn env_root() -> Option<PathBuf> {
    std::env::var_os(ROOT_ENV).map(|r| crate::canonical_root(Path::new(&r)))
}

fn commands(args: &[String]) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mkplan-sim: error: {e}");
            2
        }
    }
}

/// The first line of stdin, without its line break (at most a PIN's length and then some).
fn read_pin_line() -> Result<String, SimError> {
    use std::io::{BufRead, Read};
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .take(1024)
        .read_line(&mut line)
        .map_err(|e| SimError::io(Path::new("/dev/stdin"), e))?;
    let pin = line.trim_end_matches(['\n', '\r']).to_owned();
    if pin.is_empty() {
        return Err(SimError::Usage(
            "--pin-stdin: stdin holds no PIN line".to_owned(),
        ));
    }
    Ok(pin)
}

fn parse_apqn(text: &str) -> Result<Apqn, SimError> {
    Apqn::from_plan_value(&serde_json::Value::String(text.to_owned())).map_err(|errors| {
        let why: Vec<String> = errors.into_iter().map(|e| e.message).collect();
        SimError::Usage(format!("--apqn: {}", why.join("; ")))
    })
}

/// The USER and SO PINs `init` gives the tokens: from stdin (one line each, in that order)
/// or the defaults.
fn init_pins(pin_stdin: bool, so_pin_stdin: bool) -> Result<(String, String), SimError> {
    let pin = if pin_stdin {
        read_pin_line()?
    } else {
        DEFAULT_PIN.to_owned()
    };
    let so_pin = if so_pin_stdin {
        read_pin_line()?
    } else {
        crate::DEFAULT_SO_PIN.to_owned()
    };
    Ok((pin, so_pin))
}

/// The host `init` lays out: a plan's, or a description's.
fn host_spec(plan: Option<PathBuf>, host: Option<PathBuf>) -> Result<crate::HostSpec, SimError> {
    match (plan, host) {
        (Some(plan), _) => Ok(crate::HostSpec::from_plan(&load_plan(&plan)?)),
        (None, Some(host)) => {
            let text = mkplan_plan::input::read_to_string(&host, mkplan_plan::input::CONFIG)
                .map_err(|e| SimError::io(&host, e))?;
            crate::HostSpec::from_json(&text)
        }
        (None, None) => Err(SimError::Usage("give --plan or --host".into())),
    }
}

/// `mkplan-sim tke`'s arguments as a request.
fn tke_request(
    action: TkeArg,
    apqn: Option<String>,
    wkvp: Option<String>,
    mk: &[String],
    mkvp: Option<String>,
    partial: bool,
) -> Result<crate::TkeRequest, SimError> {
    let mut request = crate::TkeRequest::new(match action {
        TkeArg::Load => TkeAction::Load,
        TkeArg::Commit => TkeAction::Commit,
        TkeArg::Activate => TkeAction::Activate,
        TkeArg::Clear => TkeAction::Clear,
    });
    request.apqn = apqn.as_deref().map(parse_apqn).transpose()?;
    request.wkvp = wkvp
        .as_deref()
        .map(|w| {
            Wkvp::parse(w)
                .map(|(w, _)| w)
                .map_err(|e| SimError::Usage(format!("--wkvp: {e}")))
        })
        .transpose()?;
    request.mks = mk
        .iter()
        .map(|m| {
            crate::MkType::parse(m).ok_or_else(|| {
                SimError::Usage(format!("--mk: `{m}` is not aes, apka, asym or sym"))
            })
        })
        .collect::<Result<_, _>>()?;
    request.mkvp = mkvp
        .as_deref()
        .map(|m| crate::Mkvp::parse(m).map_err(|e| SimError::Usage(format!("--mkvp: {e}"))))
        .transpose()?;
    request.partial = partial;
    Ok(request)
}

/// A valid plan, or its diagnostics printed and an error.
fn load_plan(plan: &Path) -> Result<mkplan_plan::Plan, SimError> {
    let loaded = mkplan_plan::load_file(plan);
    let Some(plan_model) = loaded.plan else {
        for diagnostic in loaded.diagnostics.iter() {
            eprintln!("{}", diagnostic.render(&loaded.source));
        }
        return Err(SimError::Usage(format!(
            "the plan `{}` is not valid",
            plan.display()
        )));
    };
    Ok(plan_model)
}

fn run(command: Command) -> Result<i32, SimError> {
    match command {
        Command::Init {
            root,
            plan,
            host,
            keys,
            pin_stdin,
            so_pin_stdin,
        } => {
            let (pin, so_pin) = init_pins(pin_stdin, so_pin_stdin)?;
            let spec = host_spec(plan, host)?;
            let exe = std::env::current_exe()
                .map_err(|e| SimError::io(Path::new("/proc/self/exe"), e))?;
            crate::init_host(&root, &spec, keys, (&pin, &so_pin), &exe)?;
            println!(
                "simulated host at {}: {} token(s) with {keys} keys each, APQNs {}, pkcsslotd and {} unit(s) running",
                crate::canonical_root(&root).display(),
                spec.tokens.len(),
                spec.tokens
                    .iter()
                    .flat_map(|t| t.apqns.iter().map(|a| a.lszcrypt()))
                    .collect::<Vec<_>>()
                    .join(" "),
                spec.units.len() + spec.commands.len()
            );
            Ok(0)
        }
        Command::Describe { plan } => {
            let spec = crate::HostSpec::from_plan(&load_plan(&plan)?);
            println!(
                "{}",
                serde_json::to_string_pretty(&spec).expect("host serializes")
            );
            Ok(0)
        }
        Command::Tke {
            root,
            action,
            apqn,
            wkvp,
            mk,
            mkvp,
            partial,
        } => {
            let request = tke_request(action, apqn, wkvp, &mk, mkvp, partial)?;
            crate::tke_request(&root, &request)?;
            Ok(0)
        }
        Command::Apps { root, json } => {
            let report = crate::apps(&root)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).expect("report serializes")
                );
            } else {
                print!("{report}");
            }
            Ok(if report.no_failures() { 0 } else { 1 })
        }
        Command::App {
            root,
            action,
            name,
            token,
            interval,
        } => {
            match action {
                AppArg::Start => crate::start_app(&root, &name, &token, interval)?,
                AppArg::Stop => crate::stop_app(&root, &name)?,
            }
            Ok(0)
        }
        Command::Verify { root, json } => {
            let report = crate::verify(&root)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).expect("report serializes")
                );
            } else {
                print!("{report}");
            }
            Ok(if report.all_usable() { 0 } else { 1 })
        }
        Command::Fault {
            root,
            clear,
            name,
            arg,
        } => {
            match (clear, name) {
                (true, _) => crate::clear_faults(&root)?,
                (false, Some(name)) => {
                    let fault = Fault::parse(&name, arg.as_deref()).map_err(SimError::Usage)?;
                    crate::set_fault(&root, fault)?;
                }
                (false, None) => {
                    for fault in crate::faults(&root)? {
                        println!("{fault}");
                    }
                }
            }
            Ok(0)
        }
        Command::Queue { root, apqn, state } => {
            crate::set_queue_online(&root, parse_apqn(&apqn)?, matches!(state, QueueArg::Online))?;
            Ok(0)
        }
        Command::Shutdown { root } => crate::shutdown(&root).map(|()| 0),
        Command::Reboot { root } => crate::reboot(&root).map(|()| 0),
        Command::Spawn {
            root,
            unit,
            stray,
            slotd,
            app,
            read_watcher,
        } => {
            let root = crate::canonical_root(&root);
            if slotd {
                procs::start_slotd(&root)?;
                return Ok(0);
            }
            let state = crate::state::load(&root)?;
            if let Some(app) = app {
                if procs::app_pid(&root, &app).is_none() {
                    procs::spawn_app(&root, &state.sim_exe, &app)?;
                }
                return Ok(0);
            }
            if let Some(apqn) = read_watcher {
                procs::spawn_watcher(&root, &state.sim_exe, parse_apqn(&apqn)?)?;
                return Ok(0);
            }
            match (unit, stray) {
                (Some(unit), false) if procs::unit_pid(&root, &unit).is_some() => {}
                (Some(unit), false) => drop(procs::spawn_unit(&root, &state.sim_exe, Some(&unit))?),
                (None, true) => drop(procs::spawn_unit(&root, &state.sim_exe, None)?),
                _ => {
                    return Err(SimError::Usage(
                        "spawn needs one of --unit, --stray, --slotd".into(),
                    ));
                }
            }
            Ok(0)
        }
        Command::AppProcess { root, app } => {
            process_main::app_process_main(&crate::canonical_root(&root), &app)?;
            Ok(0)
        }
        Command::ReadWatcher { root, apqn } => {
            crate::read_watcher::watcher_main(&crate::canonical_root(&root), parse_apqn(&apqn)?)?;
            Ok(0)
        }
        Command::UnitProcess { root, unit, stray } => {
            if unit.is_none() != stray {
                return Err(SimError::Usage(
                    "unit-process needs --unit or --stray".into(),
                ));
            }
            process_main::unit_process_main(&crate::canonical_root(&root), unit.as_deref())?;
            Ok(0)
        }
    }
}
