//! `mkplan schema`: the plan JSON Schema, generated from the plan model.

use crate::error::CliError;
use mkplan_plan::schema::plan_schema_text;

/// Print the plan JSON Schema (draft 2020-12); `schemas/plan.schema.json` is this output.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_: Args) -> Result<(), CliError> {
    print!("{}", plan_schema_text());
    Ok(())
}
