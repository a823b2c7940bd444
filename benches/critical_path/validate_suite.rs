//! Benchmark 4: `mkplan validate PLAN` against `check-jsonschema` on the same plan, as whole
//! processes (what an operator or CI waits for), spawned directly.

use std::path::Path;

use anyhow::Result;

use crate::measure::{arg, rounds, shown, timed_direct};
use crate::results::{Pair, Series};

pub fn run(
    mkplan: &Path,
    check_jsonschema: &Path,
    schema: &Path,
    plan: &Path,
    runs: usize,
) -> Result<Pair> {
    let mk_argv = vec![arg(mkplan), "validate".into(), arg(plan)];
    let cj_argv = vec![
        arg(check_jsonschema),
        "--schemafile".into(),
        arg(schema),
        arg(plan),
    ];
    let mut mk = Series::new("mkplan validate", shown(&mk_argv));
    let mut cj = Series::new("check-jsonschema", shown(&cj_argv));
    eprintln!("bench: validation, warm-up");
    for _ in 0..2 {
        timed_direct(&mk_argv)?;
        timed_direct(&cj_argv)?;
    }
    eprintln!("bench: validation, {runs} rounds");
    rounds(
        runs,
        &mut [
            &mut |_| {
                mk.add(&timed_direct(&mk_argv)?);
                Ok(())
            },
            &mut |_| {
                cj.add(&timed_direct(&cj_argv)?);
                Ok(())
            },
        ],
    )?;
    Ok(Pair::new(mk, cj, Vec::new()))
}
