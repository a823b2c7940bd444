//! The rehearsal's operator: gives the simulated token's PIN for a `pin: {prompt: true}` or
//! `{env: NAME}` token, so the PIN never goes into mkplan's environment (whose children
//! could inherit it); never answers anything else.

use std::time::Instant;

use mkplan_engine::ports::operator::{Answer, Operator};
use mkplan_engine::secret::Pin;

pub struct RehearsalOperator {
    pub(super) pin: String,
    /// What a CCA token's SO PIN source gives.
    pub(super) so_pin: String,
    /// The environment variables the plan reads SO PINs from.
    pub(super) so_variables: Vec<String>,
}

impl Operator for RehearsalOperator {
    fn interactive(&self) -> bool {
        true
    }

    fn say(&self, _: &str) {}

    fn ask(&self, _: &str, _: Option<Instant>) -> Answer {
        Answer::Closed
    }

    fn ask_secret(&self, prompt: &str) -> Option<Pin> {
        match prompt.ends_with(" SO PIN: ") {
            true => Some(Pin::new(self.so_pin.clone())),
            false => Some(Pin::new(self.pin.clone())),
        }
    }

    fn pin_variable(&self, name: &str) -> Option<String> {
        match self.so_variables.iter().any(|v| v == name) {
            true => Some(self.so_pin.clone()),
            false => Some(self.pin.clone()),
        }
    }
}
