//! `mkplan man`: the man page (roff), from the same clap definitions.

use crate::exit_code;

/// Print the mkplan(1) man page in roff.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_: Args) -> anyhow::Result<i32> {
    let page = clap_mangen::Man::new(crate::cli::command());
    let mut roff = Vec::new();
    page.render(&mut roff)?;
    print!("{}", String::from_utf8_lossy(&roff));
    Ok(exit_code::SUCCESS)
}
