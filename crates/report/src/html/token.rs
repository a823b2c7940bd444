//! The per-token part of `report.html` (APQN tables before and after, backup, migration,
//! key inventory) and the verification commands.

use std::fmt::Write as _;

use super::text::rich;
use super::{code, escape, kv, ms, opt, table};
use crate::model::{ApqnState, ApqnTable, InventoryFacts, RunReport, TokenReport};
use crate::sign::Algorithm;
use crate::{REPORT_DSSE, REPORT_JSON, REPORT_SIG, SIGNER_PUB};

/// Usable keys listed on the page (all unusable ones are).
const KEYS_SHOWN: usize = 25;

pub(super) fn apqn_table(out: &mut String, title: &str, table_data: Option<&ApqnTable>) {
    let Some(t) = table_data else {
        let _ = write!(
            out,
            "<h3>{}</h3><p class=\"muted\">No reading in this run.</p>",
            escape(title)
        );
        return;
    };
    let _ = write!(
        out,
        "<h3>{}</h3><p class=\"muted\">Read by {} ({}) at {}.</p>",
        escape(title),
        code(&t.step),
        escape(&t.source),
        escape(&t.time)
    );
    // A CCA card has no EP11 WK: one row per MK type its `mkvps` shows, with NEW/CUR/OLD.
    if !t.apqns.is_empty() && t.apqns.iter().all(|a| !a.cca.is_empty()) {
        let register = |state: &str, vp: Option<&str>| match vp {
            Some(vp) => format!("{} {}", escape(state), code(vp)),
            None => escape(state),
        };
        let rows: Vec<Vec<String>> = t
            .apqns
            .iter()
            .flat_map(|a| {
                a.cca.iter().map(move |mk| {
                    vec![
                        apqn_cell(a),
                        escape(&a.card_type),
                        card_flags(a),
                        escape(&mk.mk),
                        register(&mk.cur_state, mk.cur_mkvp.as_deref()),
                        register(&mk.new_state, mk.new_mkvp.as_deref()),
                        register(&mk.old_state, mk.old_mkvp.as_deref()),
                    ]
                })
            })
            .collect();
        table(
            out,
            &[
                "APQN",
                "Card",
                "Online / config / chkstop",
                "MK",
                "CUR",
                "NEW",
                "OLD",
            ],
            &rows,
        );
        return;
    }
    let rows: Vec<Vec<String>> = t
        .apqns
        .iter()
        .map(|a| {
            vec![
                apqn_cell(a),
                escape(&a.card_type),
                card_flags(a),
                escape(&a.cur_state),
                a.cur_wkvp.as_deref().map_or_else(|| "—".to_owned(), code),
                escape(&a.new_state),
                a.new_wkvp.as_deref().map_or_else(|| "—".to_owned(), code),
            ]
        })
        .collect();
    table(
        out,
        &[
            "APQN",
            "Card",
            "Online / config / chkstop",
            "WK CUR",
            "CUR WKVP",
            "WK NEW",
            "NEW WKVP",
        ],
        &rows,
    );
}

fn inventory_rows(inv: Option<&InventoryFacts>) -> String {
    inv.map_or_else(
        || "<span class=\"muted\">not probed</span>".to_owned(),
        |i| {
            let counts: Vec<String> = i
                .counts
                .iter()
                .map(|(k, v)| format!("{v} {}", escape(k)))
                .collect();
            format!(
                "{} objects, {} keys ({}) — {} at {}",
                i.objects,
                i.keys,
                counts.join(", "),
                code(&i.step),
                escape(&i.time)
            )
        },
    )
}

pub(super) fn token_section(out: &mut String, t: &TokenReport) {
    let _ = write!(
        out,
        "<h2>Appendix D — Token <code>{}</code> (slot {}) in detail</h2>",
        escape(&t.token),
        t.slot
    );
    kv(
        out,
        &[
            ("Store", code(&t.store)),
            (
                if t.cca {
                    "MKVPs current (plan)"
                } else {
                    "WKVP current (plan)"
                },
                code(&t.wkvp_current),
            ),
            (
                if t.cca {
                    "MKVPs new (plan)"
                } else {
                    "WKVP new (plan)"
                },
                code(&t.wkvp_new),
            ),
        ],
    );
    apqn_table(out, "APQNs before the migration", t.apqns_before.as_ref());
    // A rescued run never activated: its end state says where the APQNs are.
    if t.apqns_after.is_some() || t.end.is_none() {
        apqn_table(out, "APQNs after activation", t.apqns_after.as_ref());
    }
    super::end::end_section(out, t);
    out.push_str("<h3>Backup</h3>");
    match &t.backup {
        Some(b) => kv(
            out,
            &[
                (
                    "Archive",
                    format!("{}<br>sha256 {}", code(&b.archive), code(&b.archive_sha256)),
                ),
                (
                    "Size",
                    format!(
                        "{} bytes; {} files, {} bytes in the store",
                        b.archive_bytes, b.files, b.bytes
                    ),
                ),
                (
                    "Manifest",
                    format!(
                        "{}<br>sha256 {}",
                        code(&b.manifest),
                        code(&b.manifest_sha256)
                    ),
                ),
                (
                    "Verified",
                    if b.verified {
                        "<span class=\"ok\">yes</span>".to_owned()
                    } else {
                        "<span class=\"bad\">no</span>".to_owned()
                    },
                ),
                (
                    "Step / target",
                    format!("{} → {}", code(&b.step), escape(&b.target)),
                ),
            ],
        ),
        None => out.push_str("<p class=\"muted\">No backup in this run.</p>"),
    }
    out.push_str("<h3>Migration</h3>");
    match &t.migration {
        Some(m) => kv(
            out,
            &[
                (
                    "Status",
                    format!("<span class=\"s-{0}\">{0}</span>", escape(&m.status)),
                ),
                (
                    "Tool",
                    format!(
                        "{} (version {})",
                        opt(m.tool.as_deref()),
                        opt(m.tool_version.as_deref())
                    ),
                ),
                ("Command", opt(m.argv.as_deref())),
                (
                    "Keys re-enciphered",
                    format!(
                        "{} of {} started ({} objects listed)",
                        m.keys_reenciphered
                            .map_or("—".to_owned(), |n| n.to_string()),
                        m.keys_started.map_or("—".to_owned(), |n| n.to_string()),
                        m.objects_listed.map_or("—".to_owned(), |n| n.to_string())
                    ),
                ),
                (
                    "Exit",
                    format!(
                        "code {}{}{}; success line {}",
                        m.exit_code.map_or("—".to_owned(), |c| c.to_string()),
                        m.signal.map_or(String::new(), |s| format!(", signal {s}")),
                        if m.timed_out { ", timed out" } else { "" },
                        if m.success_line {
                            "printed"
                        } else {
                            "not printed"
                        }
                    ),
                ),
                ("Duration", ms(m.duration_ms)),
                (
                    "Error",
                    m.error.as_deref().map_or_else(|| "—".to_owned(), rich),
                ),
            ],
        ),
        None => out.push_str("<p class=\"muted\">This run did not migrate the token.</p>"),
    }
    if let Some(r) = &t.restore {
        let _ = write!(
            out,
            "<h3>Restore</h3><p>{} <span class=\"s-{1}\">{1}</span> ({2}): {3}</p>",
            code(&r.step),
            escape(&r.status),
            escape(r.action.as_deref().unwrap_or("no action")),
            rich(&r.detail)
        );
    }
    out.push_str("<h3>Key inventory</h3>");
    kv(
        out,
        &[
            ("Before", inventory_rows(t.inventory_before.as_ref())),
            ("After", inventory_rows(t.inventory_after.as_ref())),
            (
                "Comparison",
                match &t.comparison {
                    Some(c) if c.ok => format!(
                        "<span class=\"ok\">same keys, all usable</span> ({} re-enciphered)",
                        c.reenciphered
                    ),
                    Some(c) => format!(
                        "<span class=\"bad\">{}{}</span>",
                        if c.same_keys {
                            "same keys"
                        } else {
                            "different keys"
                        },
                        if c.all_usable {
                            ", all usable"
                        } else {
                            ", NOT all usable"
                        }
                    ),
                    None => "<span class=\"muted\">no before/after pair</span>".to_owned(),
                },
            ),
        ],
    );
    if let Some(c) = &t.comparison {
        let lists = [
            ("Missing after", &c.missing),
            ("Added after", &c.extra),
            ("No longer usable", &c.newly_unusable),
        ];
        for (title, list) in lists.iter().filter(|(_, l)| !l.is_empty()) {
            let _ = write!(out, "<p class=\"bad\">{}:</p><ul>", escape(title));
            for item in list.iter() {
                let _ = write!(out, "<li>{}</li>", rich(item));
            }
            out.push_str("</ul>");
        }
    }
    if let Some(inv) = t.inventory_after.as_ref().or(t.inventory_before.as_ref()) {
        // A printable page cannot hold thousands of keys: every unusable key, then the
        // first few others; report.json lists them all.
        let shown: Vec<_> = inv
            .key_list
            .iter()
            .filter(|k| k.usable == "unusable")
            .chain(
                inv.key_list
                    .iter()
                    .filter(|k| k.usable != "unusable")
                    .take(KEYS_SHOWN),
            )
            .collect();
        let rows: Vec<Vec<String>> = shown
            .iter()
            .map(|k| {
                vec![
                    escape(&k.class),
                    opt(k.key_type.as_deref()),
                    code(&k.id),
                    escape(&k.label),
                    k.blob_sha256
                        .as_deref()
                        .map_or_else(|| "—".to_owned(), code),
                    format!(
                        "{}{}",
                        escape(&k.usable),
                        k.reason
                            .as_deref()
                            .map_or(String::new(), |r| format!(": {}", rich(r)))
                    ),
                ]
            })
            .collect();
        if !rows.is_empty() {
            let _ = write!(
                out,
                "<p class=\"muted\">Keys as {} probed them{}:</p>",
                code(&inv.step),
                if t.inventory_after.is_none() && t.end.is_some() {
                    " (during the run, before the change: the end of run is above)"
                } else {
                    ""
                }
            );
            table(
                out,
                &["Class", "Type", "ID", "Label", "Blob SHA-256", "Usable"],
                &rows,
            );
            let listed_in = inv
                .key_file
                .as_ref()
                .map_or(REPORT_JSON, |file| file.name.as_str());
            if inv.keys > shown.len() as u64 {
                let _ = write!(
                    out,
                    "<p class=\"muted\">… and {} more keys, all listed in <code>{}</code>.</p>",
                    inv.keys - shown.len() as u64,
                    escape(listed_in)
                );
            }
        }
    }
}

/// The exact commands of `reference/operator-expectations.md`, for this report's algorithm.
pub fn verification_commands(algorithm: Algorithm) -> String {
    let verify = |what: &str, data: &str| match algorithm {
        Algorithm::EcdsaP256 => {
            format!("openssl dgst -sha256 -verify {SIGNER_PUB} -signature {what} {data}")
        }
        Algorithm::Ed25519 => format!(
            "openssl pkeyutl -verify -pubin -inkey {SIGNER_PUB} -rawin -in {data} -sigfile {what}"
        ),
    };
    format!(
        "# the signature over the exact bytes of the report\n{}\n\n\
         # the DSSE envelope (in-toto Statement v1 about report.json)\n\
         jq -r .payload {REPORT_DSSE} | base64 -d > payload.json\n\
         jq -r '.signatures[0].sig' {REPORT_DSSE} | base64 -d > sig.der\n\
         PT=$(jq -r .payloadType {REPORT_DSSE})\n\
         {{ printf 'DSSEv1 %d %s %d ' \"$(printf %s \"$PT\" | wc -c)\" \"$PT\" \"$(wc -c < payload.json)\"; cat payload.json; }} > pae.bin\n\
         {}\n\
         sha256sum {REPORT_JSON}; jq -r '.subject[0].digest.sha256' payload.json   # must match\n\n\
         # the key id (the envelope's keyid)\n\
         openssl pkey -pubin -in {SIGNER_PUB} -outform DER | sha256sum\n\n\
         # everything at once, with the journal's hash chain and the plan digest\n\
         mkplan report verify . --key TRUSTED-PUBLIC-KEY.pem\n",
        verify(REPORT_SIG, REPORT_JSON),
        verify("sig.der", "pae.bin"),
    )
}

pub(super) fn verification(out: &mut String, r: &RunReport, algorithm: Algorithm, key_id: &str) {
    out.push_str("<h2>Appendix E — How to verify this report</h2>");
    let _ = write!(
        out,
        "<p>Signed with {} ({}), key id <code>{}</code>. In the report's directory:</p><pre>{}</pre>",
        escape(algorithm.describe()),
        escape(&r.signing.method),
        escape(key_id),
        escape(&verification_commands(algorithm))
    );
}

/// An APQN as the tables name it: lszcrypt notation, adapter and domain beneath.
fn apqn_cell(a: &ApqnState) -> String {
    format!(
        "{}<br><span class=\"muted\">adapter {}, domain {}</span>",
        code(&a.apqn),
        a.adapter,
        a.domain
    )
}

/// The card's online / config / chkstop flags.
fn card_flags(a: &ApqnState) -> String {
    format!(
        "{} / {} / {}",
        flag(a.online, true),
        flag(a.config, true),
        flag(a.chkstop, false)
    )
}

/// `b`, marked good when it is the value a usable card has.
fn flag(b: bool, good: bool) -> String {
    if b == good {
        format!("<span class=\"ok\">{b}</span>")
    } else {
        format!("<span class=\"bad\">{b}</span>")
    }
}
