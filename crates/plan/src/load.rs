//! The validation passes, each building the next stage's type: text → spanned JSON →
//! schema-checked raw plan → lowered [`Plan`] → rules. Each pass reports all it finds;
//! a later pass runs only when the earlier ones found no error.

use std::path::Path;

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::model::Plan;
use crate::raw::RawPlan;
use crate::source::SourceFile;
use crate::spans::SpanMap;
use crate::{lower, rules, schema, values, yaml};

/// The outcome of loading a plan: the plan when it is valid, and every diagnostic.
#[derive(Debug)]
pub struct Loaded {
    pub source: SourceFile,
    pub plan: Option<Plan>,
    pub diagnostics: Diagnostics,
}

/// Reads and validates the plan at `path`.
pub fn load_file(path: &Path) -> Loaded {
    match crate::input::read(path, crate::input::PLAN) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => load(SourceFile::new(path, text)),
            Err(e) => {
                let offset = e.utf8_error().valid_up_to();
                let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
                let source = SourceFile::new(path, text);
                let at = source.position_of(offset);
                unloadable(
                    source,
                    Diagnostic::error(
                        "encoding",
                        format!("the plan is not UTF-8 text (bad byte at offset {offset})"),
                    )
                    .at(crate::source::Span::point(at))
                    .with_hint("save the plan as UTF-8"),
                )
            }
        },
        Err(e) => unloadable(
            SourceFile::new(path, ""),
            Diagnostic::error("io", format!("cannot read the plan: {e}")).with_hint(
                if e.kind() == std::io::ErrorKind::FileTooLarge {
                    "a plan is some KiB of YAML: check that the path names the plan"
                } else {
                    "check the path and that you may read the file"
                },
            ),
        ),
    }
}

fn unloadable(source: SourceFile, diagnostic: Diagnostic) -> Loaded {
    Loaded {
        source,
        plan: None,
        diagnostics: std::iter::once(diagnostic).collect(),
    }
}

/// Validates plan text.
pub fn load(source: SourceFile) -> Loaded {
    let (plan, diagnostics) = match passes(&source) {
        Ok((plan, diagnostics, spans)) => (plan, diagnostics.finish(Some(&spans), &source)),
        Err(diagnostics) => (None, diagnostics.finish(None, &source)),
    };
    Loaded {
        source,
        plan,
        diagnostics,
    }
}

type PassResult = Result<(Option<Plan>, Diagnostics, SpanMap), Diagnostics>;

fn passes(source: &SourceFile) -> PassResult {
    let document = yaml::load(source).map_err(Diagnostics::from_iter)?;
    let mut found: Diagnostics = document.diagnostics.into_iter().collect();

    let value_checks = values::check(&document.value);
    let explained: Vec<String> = value_checks
        .iter()
        .chain(found.iter())
        .filter_map(|d| d.pointer().map(str::to_owned))
        .collect();
    found.extend(value_checks);
    found.extend(
        schema::check(&document.value)
            .into_iter()
            .filter(|d| !explained.iter().any(|p| values::covers(p, d))),
    );
    if found.has_errors() {
        return Ok((None, found, document.spans));
    }

    let raw: RawPlan = match serde_json::from_value(document.value.clone()) {
        Ok(raw) => raw,
        Err(e) => {
            // The schema is generated from `RawPlan`, so this means they disagree: a bug.
            found.push(
                Diagnostic::error(
                    "internal",
                    format!("the plan passed the schema but not the model: {e}"),
                )
                .with_hint("please report this with the plan attached"),
            );
            return Ok((None, found, document.spans));
        }
    };
    let plan = match lower::lower(raw, &document.value) {
        Ok(plan) => plan,
        Err(errors) => {
            found.extend(errors);
            return Ok((None, found, document.spans));
        }
    };
    found.extend(rules::check(&plan));
    let plan = (!found.has_errors()).then_some(plan);
    Ok((plan, found, document.spans))
}
