//! Where a token PIN comes from.

use std::path::PathBuf;

use crate::ports::operator::Operator;
use crate::secret::Pin;
use mkplan_plan::model::PinSource;

/// openCryptoki refuses PINs of 128 characters or more (reference 1.3).
pub const MAX_PIN_LEN: usize = 127;

/// Why no PIN could be read. Each names where it was looked for (`what` is the PIN's name,
/// as [`PinReader::read`] is given it), never what it is.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error(
        "the {what} PIN comes from the environment variable `{name}`, which is not set (or not UTF-8)"
    )]
    EnvUnset { what: String, name: String },
    #[error(
        "the {what} PIN is to be typed at a prompt, but there is no terminal (hint: use `pin: {{env: …}}` or `{{file: …}}` for unattended runs)"
    )]
    NoTerminal { what: String },
    #[error("no {what} PIN was entered")]
    NotEntered { what: String },
    #[error("the {what} PIN is empty")]
    Empty { what: String },
    #[error(
        "the {what} PIN is longer than {MAX_PIN_LEN} characters or contains a line break, which openCryptoki cannot take"
    )]
    Unusable { what: String },
    #[error("cannot read the PIN file `{}`: {source}", file.display())]
    FileUnreadable {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the PIN file `{}` is not a regular file", file.display())]
    FileNotRegular { file: PathBuf },
    #[error(
        "the PIN file `{}` has mode {mode:04o}; it must be 0600 or 0400 (hint: chmod 600 {})",
        file.display(),
        file.display()
    )]
    FileMode { file: PathBuf, mode: u32 },
    #[error(
        "the PIN file `{}` is owned by uid {owner}, not by the user mkplan runs as (uid {me})",
        file.display()
    )]
    FileOwner { file: PathBuf, owner: u32, me: u32 },
}

/// Reads a PIN from the source the plan names: an environment variable of mkplan's (through
/// the operator), a file only its owner can read (under the host root), or a no-echo prompt.
/// Errors say where it was looked for, never what it is.
pub trait PinReader: Send + Sync {
    /// `what` names the PIN in messages (`token `ep11``, `report-signing token`).
    fn read(
        &self,
        source: &PinSource,
        operator: &dyn Operator,
        what: &str,
    ) -> Result<Pin, PinError>;
}
