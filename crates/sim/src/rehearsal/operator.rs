//! The rehearsal's operator: gives the simulated token's PIN for a `pin: {prompt: true}` or
//! `{env: NAME}` token, so the PIN never goes into mkplan's environment (whose children
//! could inherit it); never answers anything else.

use std::time::Instant;

use mkplan_engine::ports::operator::{Answer, Operator};
use mkplan_engine::secret::Pin;

pub struct RehearsalOperator {
    pub(super) pin: String,
}

impl Operator for RehearsalOperator {
    fn interactive(&self) -> bool {
        true
    }

    fn say(&self, _: &str) {}

    fn ask(&self, _: &str, _: Option<Instant>) -> Answer {
        Answer::Closed
    }

    fn ask_secret(&self, _: &str) -> Option<Pin> {
        Some(Pin::new(self.pin.clone()))
    }

    fn pin_variable(&self, _: &str) -> Option<String> {
        Some(self.pin.clone())
    }
}
