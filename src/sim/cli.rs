//! The `mkplan-sim` executable: it dispatches on the file name it was run as (argv[0], not
//! resolved through the symlink): `pkcsep11_migrate`, `systemctl` and `pkcsslotd` are the
//! stand-ins, `mkplan-sim` the simulator's own commands, and any other name a plan's service
//! command.
//!
//! A stand-in finds its root from the path it was run as: the nearest ancestor directory of
//! argv[0] that holds `var/lib/mkplan-sim/state.json` (so `<root>/usr/sbin/pkcsslotd` and
//! `<root>/usr/bin/systemctl` give `<root>`); a bare name is looked up on `PATH` first. If
//! none is found, `$MKPLAN_SIM_ROOT` names it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand, ValueEnum};

use crate::plan::model::{Apqn, Wkvp};
use crate::sim::{self, Fault, SimError, TkeAction, migrate, procs, standins};

/// The USER PIN `init` gives the tokens when `--pin-stdin` is not given.
pub const DEFAULT_PIN: &str = "S1m-User-PIN";
/// Names the root when a stand-in cannot find it from its own path.
pub const ROOT_ENV: &str = "MKPLAN_SIM_ROOT";

#[derive(Parser)]
#[command(
    name = "mkplan-sim",
    version,
    about = "The simulated EP11 host of mkplan: layout, TKE, faults, verification"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Lay out a simulated host for a plan and start its processes.
    Init {
        #[arg(long)]
        root: PathBuf,
        #[arg(long)]
        plan: PathBuf,
        /// Key objects per token (a certificate and a data object are added).
        #[arg(long, default_value_t = 24)]
        keys: usize,
        /// Read the tokens' USER PIN from the first line of stdin (a pipe: never argv or
        /// the environment, where other processes can read it) [default: S1m-User-PIN].
        #[arg(long)]
        pin_stdin: bool,
    },
    /// What the TKE does to the WK registers.
    Tke {
        #[arg(long)]
        root: PathBuf,
        action: TkeArg,
        /// One APQN in lszcrypt notation (`0a.0011`); default: every APQN.
        #[arg(long)]
        apqn: Option<String>,
        /// The WKVP to load (default: the plan's `wkvp.new` of the APQN's token).
        #[arg(long)]
        wkvp: Option<String>,
    },
    /// Does every key's blob open under the current WK of its token's APQNs?
    Verify {
        #[arg(long)]
        root: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Add a fault (`fail-at-key K`, `slow-keys MS`, `require-tty`, `pin-read-exit-zero`,
    /// `lib-load-failure`, `env-pin`, `unit-wont-stop UNIT`, `stray`), list them, or `--clear`.
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
    Activate,
    Clear,
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
    if name.starts_with(sim::SIM_EXE_NAME) {
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
        .map(sim::canonical_root)
}

fn env_root() -> Option<PathBuf> {
    std::env::var_os(ROOT_ENV).map(|r| sim::canonical_root(Path::new(&r)))
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

fn run(command: Command) -> Result<i32, SimError> {
    match command {
        Command::Init {
            root,
            plan,
            keys,
            pin_stdin,
        } => {
            let pin = if pin_stdin {
                read_pin_line()?
            } else {
                DEFAULT_PIN.to_owned()
            };
            let loaded = crate::plan::load_file(&plan);
            let Some(plan_model) = loaded.plan else {
                for diagnostic in loaded.diagnostics.iter() {
                    eprintln!("{}", diagnostic.render(&loaded.source));
                }
                return Err(SimError::Usage(format!(
                    "the plan `{}` is not valid",
                    plan.display()
                )));
            };
            let exe = std::env::current_exe()
                .map_err(|e| SimError::io(Path::new("/proc/self/exe"), e))?;
            sim::init(&root, &plan_model, keys, &pin, &exe)?;
            let root = sim::canonical_root(&root);
            println!(
                "simulated host at {}: {} token(s) with {keys} keys each, APQNs {}, pkcsslotd and {} unit(s) running",
                root.display(),
                plan_model.tokens.len(),
                plan_model
                    .tokens
                    .values()
                    .flat_map(|t| t.apqns.iter().map(|a| a.lszcrypt()))
                    .collect::<Vec<_>>()
                    .join(" "),
                plan_model.services.len()
            );
            Ok(0)
        }
        Command::Tke {
            root,
            action,
            apqn,
            wkvp,
        } => {
            let apqn = apqn.as_deref().map(parse_apqn).transpose()?;
            let wkvp = wkvp
                .as_deref()
                .map(|w| {
                    Wkvp::parse(w)
                        .map(|(w, _)| w)
                        .map_err(|e| SimError::Usage(format!("--wkvp: {e}")))
                })
                .transpose()?;
            let action = match action {
                TkeArg::Load => TkeAction::Load,
                TkeArg::Commit => TkeAction::Commit,
                TkeArg::Activate => TkeAction::Activate,
                TkeArg::Clear => TkeAction::Clear,
            };
            sim::tke(&root, action, apqn, wkvp)?;
            Ok(0)
        }
        Command::Verify { root, json } => {
            let report = sim::verify(&root)?;
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
                (true, _) => sim::clear_faults(&root)?,
                (false, Some(name)) => {
                    let fault = Fault::parse(&name, arg.as_deref()).map_err(SimError::Usage)?;
                    sim::set_fault(&root, fault)?;
                }
                (false, None) => {
                    for fault in sim::faults(&root)? {
                        println!("{fault}");
                    }
                }
            }
            Ok(0)
        }
        Command::Queue { root, apqn, state } => {
            sim::set_queue_online(&root, parse_apqn(&apqn)?, matches!(state, QueueArg::Online))?;
            Ok(0)
        }
        Command::Shutdown { root } => sim::shutdown(&root).map(|()| 0),
        Command::Spawn {
            root,
            unit,
            stray,
            slotd,
        } => {
            let root = sim::canonical_root(&root);
            if slotd {
                procs::start_slotd(&root)?;
                return Ok(0);
            }
            let state = crate::sim::state::load(&root)?;
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
        Command::UnitProcess { root, unit, stray } => {
            if unit.is_none() != stray {
                return Err(SimError::Usage(
                    "unit-process needs --unit or --stray".into(),
                ));
            }
            procs::unit_process_main(&sim::canonical_root(&root), unit.as_deref())?;
            Ok(0)
        }
    }
}
