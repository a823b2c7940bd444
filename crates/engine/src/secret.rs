//! Secrets by type: a PIN can be handed to the one place that needs it, and never prints.

use std::collections::BTreeMap;
use std::fmt;

use secrecy::{ExposeSecret, SecretString};

use mkplan_plan::model::TokenId;

/// A token PIN. `Debug` and `Display` never show it; the memory is wiped on drop.
pub struct Pin(SecretString);

impl Pin {
    pub fn new(pin: String) -> Self {
        Self(SecretString::from(pin))
    }

    /// The PIN itself, for the one call that delivers it (a pty, a PKCS#11 login).
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(<redacted>)")
    }
}

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The token PINs the preflight of `run` obtained and verified, one login each (design rule
/// 9): the steps use these and never ask or log in to check again.
#[derive(Default)]
pub struct Pins(BTreeMap<TokenId, Pin>);

impl Pins {
    pub fn insert(&mut self, token: TokenId, pin: Pin) {
        self.0.insert(token, pin);
    }

    pub fn get(&self, token: &TokenId) -> Option<&Pin> {
        self.0.get(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_never_formats() {
        let pin = Pin::new("S3cr3t-PIN-4711".to_owned());
        assert!(!format!("{pin:?} {pin}").contains("S3cr3t"));
        assert_eq!(pin.expose(), "S3cr3t-PIN-4711");
    }
}
