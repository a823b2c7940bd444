//! `mkplan report verify` of a fleet report: the signature over `fleet.json`, the DSSE
//! envelope's agreement with it, and every host report still where it was read, unchanged
//! and verifying as it did.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::dsse::{Envelope, PAYLOAD_TYPE, decode_signature, pae};
use crate::fleet::collect::VERIFIED;
use crate::fleet::model::FleetReport;
use crate::fleet::statement::FleetStatement;
use crate::fleet::{FLEET_DSSE, FLEET_JSON, FLEET_SIG};
use crate::sign::PublicKey;
use crate::verify::{self as report_verify, Verification, check};
use crate::{REPORT_JSON, SIGNER_PUB};

/// Verifies the fleet report in `dir`, with `key` or else the `signer.pub.pem` beside it.
pub fn verify(dir: &Path, key: Option<&Path>) -> Verification {
    let bytes = read(dir, FLEET_JSON);
    let public = load_key(dir, key);
    let mut signature = check(
        "signature",
        match (&bytes, &public) {
            (Ok(bytes), Ok((public, source))) => read(dir, FLEET_SIG).and_then(|sig| {
                public
                    .verify(bytes, &sig)
                    .map(|()| {
                        format!(
                            "{FLEET_SIG} verifies over {FLEET_JSON} with {source} ({}, key id {})",
                            public.algorithm().describe(),
                            public.key_id()
                        )
                    })
                    .map_err(|e| {
                        format!("{FLEET_SIG} does not verify over {FLEET_JSON} with {source}: {e}")
                    })
            }),
            (Err(e), _) | (_, Err(e)) => Err(e.clone()),
        },
    );
    if signature.ok && key.is_none() {
        signature.note = Some(format!(
            "{SIGNER_PUB} lies beside the fleet report, so this proves integrity only against that key: compare its key id with the signer's, or pass --key with the public key you trust"
        ));
    }
    let report = bytes.and_then(|b| {
        FleetReport::from_bytes(&b)
            .map(|r| (r, b))
            .map_err(|e| format!("{FLEET_JSON}: {e}"))
    });
    let described = report.as_ref().map_err(Clone::clone).map(|(r, _)| {
        format!(
            "{FLEET_JSON} is an mkplan fleet report, version {}: {} hosts, {} verified, {} not verified, {} without a report",
            r.fleet_report_version,
            r.summary.hosts,
            r.summary.verified,
            r.summary.not_verified,
            r.summary.no_report
        )
    });
    let envelope = match (&report, &public) {
        (Ok((report, bytes)), Ok((public, _))) => envelope(dir, report, bytes, public),
        (Err(_), _) => Err(format!("not checked: {FLEET_JSON} is unreadable")),
        (_, Err(e)) => Err(format!("not checked: {e}")),
    };
    let (hosts, note) = match &report {
        Ok((report, _)) => hosts(report),
        Err(_) => (
            Err(format!("not checked: {FLEET_JSON} is unreadable")),
            None,
        ),
    };
    let mut hosts = check("hosts", hosts);
    hosts.note = note;
    Verification {
        dir: dir.to_owned(),
        checks: vec![
            signature,
            check("fleet", described),
            check("envelope", envelope),
            hosts,
        ],
    }
}

fn envelope(
    dir: &Path,
    report: &FleetReport,
    report_bytes: &[u8],
    public: &PublicKey,
) -> Result<String, String> {
    let bytes = read(dir, FLEET_DSSE)?;
    let envelope: Envelope = serde_json::from_slice(&bytes)
        .map_err(|e| format!("{FLEET_DSSE} is not a DSSE envelope: {e}"))?;
    if envelope.to_bytes() != bytes {
        return Err(format!(
            "{FLEET_DSSE} is not byte for byte as mkplan writes it: it was edited"
        ));
    }
    if envelope.payload_type != PAYLOAD_TYPE {
        return Err(format!(
            "payloadType is `{}`, not `{PAYLOAD_TYPE}`",
            envelope.payload_type
        ));
    }
    let [signature] = envelope.signatures.as_slice() else {
        return Err(format!(
            "the envelope has {} signatures; mkplan writes exactly one",
            envelope.signatures.len()
        ));
    };
    if signature.keyid != public.key_id() {
        return Err(format!(
            "the envelope's keyid {} is not the verifying key's id {}",
            signature.keyid,
            public.key_id()
        ));
    }
    let payload = envelope.payload_bytes().map_err(|e| e.to_string())?;
    public
        .verify(
            &pae(&envelope.payload_type, &payload),
            &decode_signature(signature).map_err(|e| e.to_string())?,
        )
        .map_err(|e| format!("the envelope's signature over the PAE does not verify: {e}"))?;
    let statement: FleetStatement = serde_json::from_slice(&payload)
        .map_err(|e| format!("the payload is not an mkplan fleet statement: {e}"))?;
    if statement != FleetStatement::about(report, report_bytes) {
        return Err(format!(
            "the statement's subjects or predicate differ from {FLEET_JSON} (sha256 {})",
            hex::encode(Sha256::digest(report_bytes))
        ));
    }
    Ok(format!(
        "{FLEET_DSSE} is signed by the same key; its statement names {FLEET_JSON} and {} host report(s) by sha256",
        statement.subject.len() - 1
    ))
}

/// Every host report the fleet report read, if it is still there: the same bytes, and
/// verifying now exactly when it verified then. A report no longer at its path is a note.
fn hosts(report: &FleetReport) -> (Result<String, String>, Option<String>) {
    let mut problems = Vec::new();
    let mut checked = 0;
    let mut absent = Vec::new();
    for host in &report.hosts {
        let (Some(dir), Some(recorded)) = (&host.dir, &host.report_sha256) else {
            continue;
        };
        let dir = Path::new(dir);
        let Ok(bytes) =
            mkplan_plan::input::read(&dir.join(REPORT_JSON), mkplan_plan::input::REPORT)
        else {
            absent.push(host.name.clone());
            continue;
        };
        checked += 1;
        let digest = hex::encode(Sha256::digest(&bytes));
        if &digest != recorded {
            problems.push(format!(
                "{}: {REPORT_JSON} has sha256 {digest}, the fleet report records {recorded}",
                host.name
            ));
            continue;
        }
        let now = crate::verify::verify(dir, None).ok();
        if now != (host.status == VERIFIED) {
            problems.push(format!(
                "{}: its report {} now, but was recorded as {}",
                host.name,
                if now { "verifies" } else { "does not verify" },
                host.status
            ));
        }
    }
    let note = (!absent.is_empty()).then(|| {
        format!(
            "not re-checked, no longer at the recorded path: {}",
            absent.join(", ")
        )
    });
    if problems.is_empty() {
        (
            Ok(format!(
                "{checked} host report(s) re-read: the same bytes, verifying as recorded"
            )),
            note,
        )
    } else {
        (Err(problems.join("; ")), note)
    }
}

/// A file of the fleet directory; the reason as the report's verification words it.
fn read(dir: &Path, name: &str) -> Result<Vec<u8>, String> {
    report_verify::read(dir, name).map_err(|e| e.to_string())
}

/// The public key and how to name where it came from.
fn load_key(dir: &Path, key: Option<&Path>) -> Result<(PublicKey, String), String> {
    report_verify::load_key(dir, key).map_err(|e| e.to_string())
}
