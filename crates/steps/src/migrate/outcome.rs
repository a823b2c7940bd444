//! What a run of `pkcsep11_migrate` showed, and whether it succeeded: the output lines the
//! contract defines (opencryptoki-ep11.md 1.2, 1.4), counted and kept (bounded, the PIN
//! redacted), and design rule 6's verdict.

use mkplan_engine::secret::Pin;
use mkplan_plan::model::MigrateStep;

/// The prompt of every version since 3.9 (reference 1.3), trailing space included.
pub const PIN_PROMPT: &str = "Enter the USER PIN: ";
/// Per-key lines on stderr, with the source's typos (reference 1.2, step 12).
pub const KEY_STARTED: &str = "going to reencrpyt key ";
pub const KEY_DONE: &str = "reencryption success obj: ";
pub const SUCCESS_LINE: &str = "all keys successfully reencrypted";
/// Failures after which the released tool still exits 0 (reference 1.4).
pub const EXIT_ZERO_FAILURES: &[(&str, &str)] = &[
    (
        "ERROR do_GetFunctionList()",
        "openCryptoki's PKCS#11 library could not be loaded (the tool exits 0 here)",
    ),
    (
        "get_user_pin() failed",
        "the tool could not read the PIN (openCryptoki up to 3.27 exits 0 here)",
    ),
];
/// How much of the tool's output is kept in the journal.
const OUTPUT_LIMIT: usize = 64 * 1024;

/// What the run of the tool showed.
#[derive(Debug, Default)]
pub(super) struct Observed {
    pub(super) lines: Vec<String>,
    kept_bytes: usize,
    pub(super) dropped_lines: u64,
    pub(super) started: u64,
    pub(super) succeeded: u64,
    pub(super) success_line: bool,
    exit_zero_failure: Option<&'static str>,
    pub(super) prompted: bool,
}

impl Observed {
    pub(super) fn line(&mut self, line: &str, pin: &Pin) {
        let line = redact(line.trim_end_matches('\r'), pin);
        if line.starts_with(KEY_STARTED) {
            self.started += 1;
        } else if line.starts_with(KEY_DONE) {
            self.succeeded += 1;
        } else if line.trim() == SUCCESS_LINE {
            self.success_line = true;
        }
        for (marker, meaning) in EXIT_ZERO_FAILURES {
            if line.contains(marker) {
                self.exit_zero_failure = Some(meaning);
            }
        }
        if self.kept_bytes + line.len() <= OUTPUT_LIMIT {
            self.kept_bytes += line.len() + 1;
            self.lines.push(line);
        } else {
            self.dropped_lines += 1;
        }
    }
}

/// The PIN can never reach the journal, even if a tool echoed it.
fn redact(line: &str, pin: &Pin) -> String {
    if pin.expose().is_empty() {
        line.to_owned()
    } else {
        line.replace(pin.expose(), "<redacted>")
    }
}

/// Design rule 6: success needs exit 0, the success line, equal started and succeeded counts,
/// and none of the exit-0 failure lines.
pub(super) fn verdict(
    o: &Observed,
    code: Option<i32>,
    signal: Option<i32>,
    timed_out: bool,
    step: &MigrateStep,
) -> Result<String, String> {
    let partly = if o.succeeded > 0 || o.started > 0 {
        format!(
            " — it stopped at key {} of the run after {} succeeded: the store is partly migrated; rescue restores the verified backup",
            o.started, o.succeeded
        )
    } else {
        " — no key was re-enciphered".to_owned()
    };
    if timed_out {
        return Err(format!(
            "pkcsep11_migrate did not finish within the step's timeout and was stopped{partly}"
        ));
    }
    if let Some(signal) = signal {
        return Err(format!(
            "pkcsep11_migrate was killed by signal {signal}{partly}"
        ));
    }
    if let Some(meaning) = o.exit_zero_failure {
        return Err(format!("pkcsep11_migrate failed: {meaning}{partly}"));
    }
    match code {
        Some(0) if o.success_line && o.started == o.succeeded => Ok(format!(
            "{} keys re-enciphered through {} (`all keys successfully reencrypted`)",
            o.succeeded, step.apqn
        )),
        Some(0) if !o.success_line => Err(format!(
            "pkcsep11_migrate exited 0 without printing `{SUCCESS_LINE}`, so success cannot be confirmed{partly}"
        )),
        Some(0) => Err(format!(
            "pkcsep11_migrate started {} keys but confirmed {}{partly}",
            o.started, o.succeeded
        )),
        Some(1) => Err(format!(
            "pkcsep11_migrate found no committed new WK on {} (exit 1){partly}",
            step.apqn
        )),
        Some(6) => Err(format!(
            "the EP11 host library (libep11) could not be loaded or lacks a function (exit 6){partly}"
        )),
        Some(144) => Err(format!(
            "pkcsslotd is not running: openCryptoki could not initialise (exit 144){partly}"
        )),
        Some(160) => Err(format!(
            "the USER PIN is wrong (exit 160, CKR_PIN_INCORRECT): the token's failed-login counter was incremented{partly}"
        )),
        Some(164) => Err(format!(
            "the USER PIN is locked (exit 164, CKR_PIN_LOCKED){partly}"
        )),
        Some(224) => Err(format!(
            "the token is not present (exit 224): openCryptoki could not start it; check ep11tok.conf, EXPECTED_WKVP and that all APQNs have the same WK{partly}"
        )),
        Some(255) if o.started > 0 => Err(format!(
            "pkcsep11_migrate failed on a key (exit 255){partly}"
        )),
        Some(255) => Err(format!(
            "pkcsep11_migrate refused its arguments or could not set up (exit 255): {}",
            o.lines
                .iter()
                .rev()
                .find(|l| !l.trim().is_empty())
                .cloned()
                .unwrap_or_default()
        )),
        Some(other) => Err(format!(
            "pkcsep11_migrate failed with exit {other} (a PKCS#11 return code & 0xFF){partly}"
        )),
        None => Err(format!(
            "pkcsep11_migrate ended without an exit code{partly}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mkplan_plan::model::{Apqn, PinDelivery};

    fn step() -> MigrateStep {
        MigrateStep {
            token: serde_json::from_str("\"ep11\"").expect("an id"),
            apqn: Apqn::new(10, 17),
            tool: None,
            pin_delivery: PinDelivery::Prompt,
            mks: Vec::new(),
            mks_named: false,
        }
    }

    fn observed(lines: &[&str]) -> Observed {
        let pin = Pin::new("S3cr3t-PIN-4711".to_owned());
        let mut o = Observed::default();
        for line in lines {
            o.line(line, &pin);
        }
        o
    }

    const KEY: &str = "going to reencrpyt key 0 with blob len 170: 'aes-1'";
    const DONE: &str = "reencryption success obj: 0 'aes-1:";

    #[test]
    fn success_needs_exit_zero_the_success_line_and_equal_counts() {
        let ok = observed(&[KEY, DONE, SUCCESS_LINE]);
        assert!(verdict(&ok, Some(0), None, false, &step()).is_ok());
        let no_line = observed(&[KEY, DONE]);
        assert!(
            verdict(&no_line, Some(0), None, false, &step())
                .unwrap_err()
                .contains("without printing")
        );
        let unequal = observed(&[KEY, KEY, DONE, SUCCESS_LINE]);
        assert!(
            verdict(&unequal, Some(0), None, false, &step())
                .unwrap_err()
                .contains("partly migrated")
        );
    }

    #[test]
    fn the_tools_exit_zero_failures_are_failures() {
        for line in [
            "ERROR do_GetFunctionList() Failed, rx = 0x0",
            "get_user_pin() failed",
        ] {
            let o = observed(&["Using slot #4...", line]);
            let e = verdict(&o, Some(0), None, false, &step()).unwrap_err();
            assert!(e.contains("exits 0 here"), "{e}");
        }
    }

    #[test]
    fn known_exit_codes_become_clear_messages() {
        let none = observed(&[]);
        let cases = [
            (1, "no committed new WK on 0a.0011 (adapter 10, domain 17)"),
            (6, "EP11 host library"),
            (144, "pkcsslotd is not running"),
            (160, "failed-login counter was incremented"),
            (224, "token is not present"),
        ];
        for (code, text) in cases {
            let e = verdict(&none, Some(code), None, false, &step()).unwrap_err();
            assert!(e.contains(text), "{code}: {e}");
        }
        let half = observed(&[KEY, DONE, KEY, "reencryption failed: 0x30"]);
        let e = verdict(&half, Some(255), None, false, &step()).unwrap_err();
        assert!(
            e.contains("stopped at key 2") && e.contains("partly migrated"),
            "{e}"
        );
    }

    #[test]
    fn the_pin_never_survives_into_kept_output() {
        let o = observed(&["echoed S3cr3t-PIN-4711 by a careless tool"]);
        assert!(!o.lines.join("\n").contains("S3cr3t"));
    }
}
