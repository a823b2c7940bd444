//! `mkplan-sim`: the simulated EP11 host's commands and stand-ins (`pkcsep11_migrate`,
//! `systemctl`, `pkcsslotd`), chosen by the name it runs as; see [`mkplan_sim::cli`].

fn main() {
    std::process::exit(mkplan_sim::cli::main(std::env::args_os()));
}
