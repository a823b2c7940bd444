//! `mkplan schema`: the plan JSON Schema, generated from the plan model.

use crate::cli::exit_code;
use crate::plan::schema::plan_schema_text;

/// Print the plan JSON Schema (draft 2020-12); `schemas/plan.schema.json` is this output.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_: Args) -> anyhow::Result<i32> {
    print!("{}", plan_schema_text());
    Ok(exit_code::SUCCESS)
}
