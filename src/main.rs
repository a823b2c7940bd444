//! The `mkplan` binary: parse the command line, run, exit with the documented code.

fn main() {
    std::process::exit(mkplan::cli::main(std::env::args_os()));
}
