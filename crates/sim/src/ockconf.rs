//! The simulated host's `/etc/opencryptoki/opencryptoki.conf`: one slot per token of the
//! host description (EP11 or CCA), in the real file's format (opencryptoki-ep11.md 3.1), beside a soft-token slot
//! as a real host has, so `mkplan init` reads the simulated host like a real one.

use std::fmt::Write as _;
use std::path::Path;

use crate::host_spec::HostSpec;

const CONF_DIR: &str = "/etc/opencryptoki";
const STORE_DIR: &str = "/var/lib/opencryptoki";
const SOFT_SLOT: u16 = 3;

pub(crate) fn opencryptoki_conf(spec: &HostSpec) -> String {
    let mut text = String::from(
        "# opencryptoki.conf, written by mkplan-sim (simulated host)\nversion opencryptoki-3.27\n\n",
    );
    let mut tokens: Vec<_> = spec.tokens.iter().collect();
    tokens.sort_by_key(|t| t.slot);
    if !tokens.iter().any(|t| t.slot == u64::from(SOFT_SLOT)) {
        let _ = write!(
            text,
            "slot {SOFT_SLOT}\n{{\nstdll = libpkcs11_sw.so\ntokversion = 3.12\n}}\n\n"
        );
    }
    for token in tokens {
        let stdll = if token.cca.is_some() {
            "libpkcs11_cca.so"
        } else {
            "libpkcs11_ep11.so"
        };
        let _ = write!(text, "slot {}\n{{\nstdll = {stdll}\n", token.slot);
        if let Some(config) = &token.config {
            // A plain name is what the EP11 token resolves under /etc/opencryptoki.
            let name = match config.parent() {
                Some(dir) if dir == Path::new(CONF_DIR) => {
                    config.file_name().map(|n| n.to_string_lossy().into_owned())
                }
                _ => None,
            };
            let _ = writeln!(
                text,
                "confname = {}",
                name.unwrap_or_else(|| config.display().to_string())
            );
        }
        if let Some(name) = token.store.file_name() {
            if token.store.parent() != Some(Path::new(STORE_DIR)) {
                let _ = writeln!(
                    text,
                    "# the plan's store {} is not under {STORE_DIR}: openCryptoki would need PKCS_APP_STORE",
                    token.store.display()
                );
            }
            let _ = writeln!(text, "tokname = {}", name.to_string_lossy());
        }
        let _ = write!(text, "tokversion = 3.12\n}}\n\n");
    }
    text
}
