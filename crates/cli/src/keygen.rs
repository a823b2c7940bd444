//! `mkplan keygen`: a report-signing key pair as PEM files — the private key PKCS#8, mode
//! 0600, created exclusively (an existing key is never overwritten: it may be the one whose
//! public half auditors already trust).

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use clap::ValueEnum;

use crate::error::CliError;
use mkplan_report::sign::{Algorithm, SoftKey};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyAlgorithm {
    /// ECDSA P-256 with SHA-256: verifies with every OpenSSL from 1.1.1 on; FIPS-approved.
    P256,
    /// Ed25519: verifies with `openssl pkeyutl -verify -rawin` (OpenSSL 3).
    Ed25519,
}

/// Make a report-signing key pair: PREFIX.pem (private, 0600) and PREFIX.pub.pem.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Use it in a plan with `report: { sign: { key: /abs/path/PREFIX.pem } }`, and give auditors
PREFIX.pub.pem to verify reports with (`mkplan report verify RUN --key PREFIX.pub.pem`).")]
pub struct Args {
    /// Path prefix of the two files.
    #[arg(long, value_name = "PREFIX")]
    out: PathBuf,
    #[arg(long, value_enum, default_value_t = KeyAlgorithm::P256)]
    algorithm: KeyAlgorithm,
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut name = prefix.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Creates `path` with `mode`; fails if it exists.
fn create_new(path: &Path, mode: u32, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

pub fn run(args: Args) -> Result<(), CliError> {
    let private = with_suffix(&args.out, ".pem");
    let public = with_suffix(&args.out, ".pub.pem");
    for path in [&private, &public] {
        if path.symlink_metadata().is_ok() {
            eprintln!(
                "mkplan: error: `{}` exists; keygen never overwrites a key (choose another --out)",
                path.display()
            );
            return Err(CliError::FailedSaid);
        }
    }
    let algorithm = match args.algorithm {
        KeyAlgorithm::P256 => Algorithm::EcdsaP256,
        KeyAlgorithm::Ed25519 => Algorithm::Ed25519,
    };
    let key = SoftKey::generate(algorithm).map_err(anyhow::Error::msg)?;
    let pem = zeroize::Zeroizing::new(key.private_pem().map_err(anyhow::Error::msg)?);
    if let Err(e) = create_new(&private, 0o600, pem.as_bytes()) {
        eprintln!("mkplan: error: cannot create `{}`: {e}", private.display());
        return Err(CliError::FailedSaid);
    }
    let public_key = key.public();
    if let Err(e) = create_new(&public, 0o644, public_key.to_pem().as_bytes()) {
        eprintln!("mkplan: error: cannot create `{}`: {e}", public.display());
        let _ = std::fs::remove_file(&private);
        return Err(CliError::FailedSaid);
    }
    println!("private key: {} (mode 0600)", private.display());
    println!("public key:  {}", public.display());
    println!("algorithm:   {}", algorithm.describe());
    println!("key id:      {}", public_key.key_id());
    Ok(())
}
