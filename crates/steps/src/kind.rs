//! What each step kind implements: [`Kind`], with the kind's arguments and its record as
//! types, so a kind can only ever record its own record. The registry turns it into the
//! engine's step contract.

use mkplan_engine::record::StepOutput;
use mkplan_engine::step::{
    AcceptRefused, CheckContext, CheckReport, Interruption, RunContext, StepError, StepSuccess,
    UncertainContext,
};

/// One step kind.
pub(crate) trait Kind {
    /// Its arguments in the plan.
    type Args;
    /// What it records.
    type Output: Into<StepOutput>;

    /// How an interruption in the middle of it is handled on resume.
    fn interruption(_: &Self::Args) -> Interruption {
        Interruption::Rerun
    }
    /// The dry run's verdict, from a read-only view of the host.
    fn check(args: &Self::Args, cx: &CheckContext<'_>) -> CheckReport;
    fn run(args: &Self::Args, cx: &mut RunContext<'_>) -> KindResult<Self::Output>;
    /// What is known of an attempt an interruption left uncertain.
    fn describe_uncertain(_: &Self::Args, _: &UncertainContext<'_>) -> Vec<String> {
        Vec::new()
    }
    /// Why `--accept-step` must not take an uncertain attempt as done, if it must not.
    fn refuse_accept(_: &Self::Args, _: &UncertainContext<'_>) -> Result<(), AcceptRefused> {
        Ok(())
    }
}

pub(crate) type KindResult<O> = Result<Done<O>, Failed<O>>;

/// A kind's success: what people read, and its record (none when there was nothing to
/// record).
pub(crate) struct Done<O> {
    pub summary: String,
    pub output: Option<O>,
}

impl<O> Done<O> {
    pub fn new(summary: impl Into<String>) -> Self {
        Self {
            summary: summary.into(),
            output: None,
        }
    }

    pub fn with(mut self, output: O) -> Self {
        self.output = Some(output);
        self
    }
}

/// Why a kind did not succeed.
pub(crate) enum Failed<O> {
    /// It failed, with what it got through (boxed: records are large, the error path is
    /// not); the run goes to `rescue`.
    Step {
        message: String,
        output: Option<Box<O>>,
    },
    /// A checkpoint was denied; the run is aborted.
    Denied(String),
    /// A stop was requested while it waited for a person: it did nothing.
    Interrupted,
    /// A parking checkpoint's work is not done yet: the run parks, with what it waits for.
    Park {
        waiting_for: Vec<String>,
        /// What it read (the registers), for `resume` to say what changed.
        output: StepOutput,
    },
    /// It failed where rescue cannot undo anything: the run halts, `resume` retries it.
    Halt {
        message: String,
        output: Option<Box<O>>,
    },
}

impl<O> Failed<O> {
    pub fn step(message: impl std::fmt::Display) -> Self {
        Failed::Step {
            message: message.to_string(),
            output: None,
        }
    }

    pub fn with(message: impl std::fmt::Display, output: O) -> Self {
        Failed::Step {
            message: message.to_string(),
            output: Some(Box::new(output)),
        }
    }
}

fn output<O: Into<StepOutput>>(output: Option<O>) -> StepOutput {
    output.map_or(StepOutput::None, Into::into)
}

impl<O: Into<StepOutput>> From<Done<O>> for StepSuccess {
    fn from(done: Done<O>) -> Self {
        StepSuccess {
            summary: done.summary,
            output: output(done.output),
        }
    }
}

impl<O: Into<StepOutput>> From<Failed<O>> for StepError {
    fn from(failed: Failed<O>) -> Self {
        match failed {
            Failed::Step { message, output: o } => StepError::Failed {
                message,
                output: output(o.map(|o| *o)),
            },
            Failed::Denied(reason) => StepError::Denied { reason },
            Failed::Interrupted => StepError::Interrupted,
            Failed::Park {
                waiting_for,
                output,
            } => StepError::Park {
                waiting_for,
                output,
            },
            Failed::Halt { message, output: o } => StepError::Halt {
                message,
                output: output(o.map(|o| *o)),
            },
        }
    }
}
