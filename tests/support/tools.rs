//! The programs tests run beside mkplan (openssl, softhsm2-util, pkcs11-tool, …), which
//! scripts/test installs, and how their output is read.

use std::process::{Command, Output};

/// A program the tests need; its absence fails the test, saying how to get it.
pub fn tool(name: &str) -> Command {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{name}` is not installed: run the tests with scripts/test, which installs it"
    );
    Command::new(name)
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// stdout, then stderr.
pub fn both(out: &Output) -> String {
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}

/// `what` must have succeeded; else its status and output.
pub fn ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}",
        out.status,
        both(out)
    );
}
