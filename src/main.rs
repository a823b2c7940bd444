//! The `mkplan` binary: parse the command line, run, exit with the documented code.
//!
//! Invoked under another name it is one of the simulated host's stand-ins
//! (`pkcsep11_migrate`, `systemctl`, `pkcsslotd`, a service command), which `mkplan
//! rehearse` links to this executable so that one `cargo run` builds everything a
//! rehearsal needs (with the default feature `rehearse`). The stand-ins refuse to act unless the path they were called by lies
//! in a simulated host (one that holds `var/lib/mkplan-sim/state.json`).

#[cfg(feature = "rehearse")]
fn main() {
    let invoked_as_mkplan = std::env::args_os()
        .next()
        .as_deref()
        .and_then(|a| std::path::Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .is_none_or(|n| n.starts_with("mkplan") && !n.starts_with("mkplan-sim"));
    let code = if invoked_as_mkplan {
        mkplan_cli::main(std::env::args_os())
    } else {
        mkplan_sim::cli::main(std::env::args_os())
    };
    std::process::exit(code);
}

/// Without the `rehearse` feature there are no stand-ins: this is mkplan only.
#[cfg(not(feature = "rehearse"))]
fn main() {
    std::process::exit(mkplan_cli::main(std::env::args_os()));
}
