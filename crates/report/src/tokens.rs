//! The per-token part of the report: APQN states before the migration and after activation,
//! the backup, the migration, a restore, and the key inventories with their comparison —
//! each picked from the step data the journal holds, relative to the token's `migrate`.

use std::path::Path;

use crate::end_state::{RunEnd, TokenFacts, apqn_rows, end_facts, key_summary, token_warnings};
use crate::model::{
    ApqnTable, BackupFacts, ComparisonFacts, InventoryFacts, KeyFacts, KeyFileFacts,
    MigrationFacts, RestoreFacts, TokenReport,
};
use crate::timeline::{StepOutcome, Timeline, one_line, plan_step};
use mkplan_engine::events::StepRef;
use mkplan_engine::keylist::{self, KeyListError};
use mkplan_engine::record::Record;
use mkplan_engine::record::backup::{BackupOutput, RestoreOutput};
use mkplan_engine::record::checkpoint::CheckpointOutput;
use mkplan_engine::record::migrate::MigrateOutput;
use mkplan_engine::record::mk::MkTable;
use mkplan_engine::record::probe::{
    Inventory, ObjectIdentity, ObjectInfo, ProbeOutput, Usability, compare,
};
use mkplan_engine::record::wk::WkTable;
use mkplan_plan::model::{BackupStep, ProbeKeysStep, RestoreStep};
use mkplan_plan::model::{CurrentWk, Plan, StepKind, Token};

/// What a step is to this token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    AssertWk {
        current_new: bool,
    },
    /// A checkpoint whose `until` checks this token.
    Until {
        current_new: bool,
    },
    Backup,
    Migrate,
    Restore,
    Probe,
}

fn role(plan: &Plan, token: &Token, outcome: &StepOutcome<'_>) -> Option<Role> {
    let step = plan_step(plan, outcome.step)?;
    let mine = |id: &mkplan_plan::model::TokenId| *id == token.id;
    match &step.kind {
        StepKind::AssertWk(a) if mine(&a.token) => Some(Role::AssertWk {
            current_new: a.current == CurrentWk::New,
        }),
        // A CCA token's registers read by `assert_mk` stand where EP11's WK readings do.
        StepKind::AssertMk(a) if mine(&a.token) => Some(Role::AssertWk {
            current_new: a.current == CurrentWk::New,
        }),
        StepKind::Checkpoint(c) => {
            c.until
                .as_ref()
                .filter(|u| mine(u.check.token()))
                .map(|u| Role::Until {
                    current_new: u.check.current() == CurrentWk::New,
                })
        }
        StepKind::Backup(BackupStep { token, .. }) if mine(token) => Some(Role::Backup),
        StepKind::Migrate(m) if mine(&m.token) => Some(Role::Migrate),
        StepKind::Restore(RestoreStep { token, .. }) if mine(token) => Some(Role::Restore),
        StepKind::ProbeKeys(ProbeKeysStep { token, .. }) if mine(token) => Some(Role::Probe),
        _ => None,
    }
}

pub(crate) fn token_report(
    run_dir: &Path,
    plan: &Plan,
    token: &Token,
    timeline: &Timeline<'_>,
    run_end: Option<&RunEnd>,
    warnings: &mut Vec<String>,
) -> TokenReport {
    let mine: Vec<(Role, &StepOutcome<'_>)> = timeline
        .outcomes
        .iter()
        .filter_map(|o| role(plan, token, o).map(|r| (r, o)))
        .collect();
    // The last migrate attempt that started, and its outcome if it has one.
    let migrate_start = timeline
        .starts
        .iter()
        .filter(|(_, _, s)| {
            plan_step(plan, s).is_some_and(
                |step| matches!(&step.kind, StepKind::Migrate(m) if m.token == token.id),
            )
        })
        .map(|(seq, _, s)| (*seq, *s))
        .next_back();
    let migrate_outcome = mine
        .iter()
        .rev()
        .find(|(r, o)| *r == Role::Migrate && migrate_start.is_some_and(|(s, _)| o.start_seq == s))
        .map(|(_, o)| *o);
    let (before_limit, after_from) = match (migrate_start, migrate_outcome) {
        (Some((start, _)), Some(o)) => (start, o.seq),
        (Some((start, _)), None) => (start, start),
        (None, _) => (u64::MAX, 0),
    };
    let migrated = migrate_start.is_some();
    let before = |want: fn(Role) -> bool| {
        let mut candidates = mine
            .iter()
            .filter(|(r, o)| want(*r) && o.seq < before_limit);
        // The reading closest before the migration; without one, the run's first.
        if migrated {
            candidates.next_back().map(|(_, o)| *o)
        } else {
            candidates.next().map(|(_, o)| *o)
        }
    };

    // A CCA token's MKs are set before its migration (the order is reversed), so its
    // registers before the change are the run's first reading, not the one nearest the
    // migration (already after the set).
    let first_reading = mine
        .iter()
        .find(|(r, o)| matches!(r, Role::AssertWk { .. }) && o.seq < before_limit)
        .map(|(_, o)| *o);
    let mut apqns_before = match token.is_cca() {
        true => first_reading,
        false => before(|r| matches!(r, Role::AssertWk { .. })),
    }
    .and_then(|o| apqn_table(o, assert_source(o), registers(o).as_ref()));
    if apqns_before.is_none()
        && let Some(o) = migrate_outcome
    {
        let preflight = MigrateOutput::of(&o.output).and_then(|m| m.preflight.as_ref());
        let table = preflight.and_then(|p| p.apqns.as_ref());
        apqns_before = apqn_table(o, "migrate preflight", table);
    }
    let apqns_after = mine
        .iter()
        .rev()
        .filter(|(_, o)| o.succeeded && o.seq > after_from)
        .find_map(|(r, o)| match r {
            Role::AssertWk { current_new: true } => {
                apqn_table(o, assert_source(o), registers(o).as_ref())
            }
            Role::Until { current_new: true } => {
                let output = CheckpointOutput::of(&o.output);
                let mk = output.and_then(|c| c.until_mk.as_ref()).map(|t| WkTable {
                    token: t.token.clone(),
                    apqns: t.apqns.clone(),
                });
                let until = output.and_then(|c| c.until.clone()).or(mk);
                apqn_table(o, "checkpoint until", until.as_ref())
            }
            _ => None,
        });
    let backup = mine
        .iter()
        .rev()
        .filter(|(r, o)| *r == Role::Backup && o.succeeded && o.seq < before_limit)
        .find_map(|(_, o)| backup_facts(o));
    let migration = migrate_start.map(|(_, step)| migration_facts(step, migrate_outcome));
    let restore = mine
        .iter()
        .rev()
        .find(|(r, _)| *r == Role::Restore)
        .map(|(_, o)| RestoreFacts {
            step: o.step.position(),
            status: status(o).to_owned(),
            action: RestoreOutput::of(&o.output).map(|r| r.action.as_str().to_owned()),
            detail: one_line(o.text),
        });
    let probes: Vec<(&StepOutcome<'_>, &Inventory)> = mine
        .iter()
        .filter(|(r, _)| *r == Role::Probe)
        .filter_map(|(_, o)| Some((*o, &ProbeOutput::of(&o.output)?.inventory)))
        .collect();
    let probe_before = if migrated {
        probes.iter().rev().find(|(o, _)| o.seq < before_limit)
    } else {
        probes.first()
    };
    let probe_after = if migrated {
        probes.iter().rev().find(|(o, _)| o.seq > after_from)
    } else {
        probes
            .last()
            .filter(|(o, _)| probes.len() > 1 && o.seq > probes[0].0.seq)
    };
    let comparison = match (probe_before, probe_after) {
        (Some((_, a)), Some((_, b))) => {
            match comparison_facts(run_dir, a, b) {
                Ok(facts) => Some(facts),
                Err(e) => {
                    warnings.push(format!("token `{}`: the key inventories before and after could not be compared: {e}", token.id));
                    None
                }
            }
        }
        _ => None,
    };

    // Restored after the migration began: the store holds the old WK's keys again.
    let restored_by = restore
        .as_ref()
        .filter(|r| migrated && r.action.as_deref() == Some("restored"))
        .map(|r| r.step.clone());
    let token_end = run_end.and_then(|e| e.record.tokens.iter().find(|t| t.token == token.id));
    let end = run_end
        .zip(token_end)
        .map(|(e, t)| end_facts(e, t, restored_by.clone()));
    // Streamed from the side file; a file that fails its digest is warned about by its
    // inventory's facts above.
    let before_objects = probe_before
        .and_then(|(_, inv)| keylist::objects(inv, run_dir).ok())
        .map(|objects| objects.map_while(Result::ok));
    let key_summary = key_summary(before_objects, token_end);
    let (wkvp_current, wkvp_new) = match token.is_cca() {
        // A CCA token has no WK: its MK types' patterns, named as such.
        true => (
            cca_patterns(token, |p| p.current),
            cca_patterns(token, |p| p.new),
        ),
        false => (token.wkvp_current.to_string(), token.wkvp_new.to_string()),
    };
    warnings.extend(token_warnings(&TokenFacts {
        token: token.id.as_str(),
        wkvp_current: &wkvp_current,
        wkvp_new: &wkvp_new,
        cca: token.is_cca(),
        migrated,
        migration_succeeded: migration.as_ref().is_some_and(|m| m.status == "succeeded"),
        restored_by: restored_by.as_deref(),
        probe_before: probe_before.is_some(),
        probe_after: probe_after.is_some(),
        apqns_after: apqns_after.is_some(),
        end: end.as_ref(),
    }));
    if migrated && backup.as_ref().is_some_and(|b| !b.verified) {
        warnings.push(format!("token `{}`: the backup was not verified", token.id));
    }
    // What the backup step warned of (a backup directory others can write).
    for (_, o) in mine
        .iter()
        .filter(|(r, o)| *r == Role::Backup && o.succeeded)
    {
        for warning in BackupOutput::of(&o.output).map_or(&[][..], |b| &b.warnings[..]) {
            warnings.push(format!("token `{}`: {warning}", token.id));
        }
    }
    if let Some(c) = comparison.as_ref().filter(|c| !c.ok) {
        warnings.push(format!(
            "token `{}`: the keys after differ from before: {} missing, {} extra, {} no longer usable",
            token.id,
            c.missing_total.unwrap_or(c.missing.len() as u64),
            c.extra_total.unwrap_or(c.extra.len() as u64),
            c.newly_unusable_total
                .unwrap_or(c.newly_unusable.len() as u64)
        ));
    }

    TokenReport {
        token: token.id.to_string(),
        slot: token.slot.get(),
        store: token.store.display().to_string(),
        wkvp_current,
        wkvp_new,
        cca: token.is_cca(),
        apqns_before,
        apqns_after,
        backup,
        migration,
        restore,
        inventory_before: probe_before.map(|(o, inv)| inventory_facts(run_dir, o, inv, warnings)),
        inventory_after: probe_after.map(|(o, inv)| inventory_facts(run_dir, o, inv, warnings)),
        comparison,
        end,
        key_summary,
    }
}

fn status(o: &StepOutcome<'_>) -> &'static str {
    if o.succeeded { "succeeded" } else { "failed" }
}

/// An APQN table as a step recorded it.
/// The APQNs an `assert_wk` (EP11) or `assert_mk` (CCA) read.
fn registers(o: &StepOutcome<'_>) -> Option<WkTable> {
    WkTable::of(&o.output).cloned().or_else(|| {
        MkTable::of(&o.output).map(|t| WkTable {
            token: t.token.clone(),
            apqns: t.apqns.clone(),
        })
    })
}

fn assert_source(o: &StepOutcome<'_>) -> &'static str {
    match MkTable::of(&o.output) {
        Some(_) => "assert_mk",
        None => "assert_wk",
    }
}

fn apqn_table(o: &StepOutcome<'_>, source: &str, table: Option<&WkTable>) -> Option<ApqnTable> {
    Some(ApqnTable {
        step: o.step.position(),
        source: source.to_owned(),
        time: o.time.to_owned(),
        apqns: apqn_rows(table?),
    })
}

fn backup_facts(o: &StepOutcome<'_>) -> Option<BackupFacts> {
    let backup = BackupOutput::of(&o.output)?;
    let record = &backup.record;
    Some(BackupFacts {
        step: o.step.position(),
        target: backup.target.to_string(),
        archive: record.archive.display().to_string(),
        archive_sha256: record.archive_sha256.clone(),
        archive_bytes: record.archive_bytes,
        manifest: record.manifest.display().to_string(),
        manifest_sha256: record.manifest_sha256.clone(),
        files: record.files,
        bytes: record.bytes,
        verified: record.verified,
    })
}

fn migration_facts(step: &StepRef, outcome: Option<&StepOutcome<'_>>) -> MigrationFacts {
    let none = MigrateOutput::default();
    let m = outcome
        .and_then(|o| MigrateOutput::of(&o.output))
        .unwrap_or(&none);
    MigrationFacts {
        step: step.position(),
        status: outcome.map_or("uncertain", status).to_owned(),
        tool_started: m.tool_started.unwrap_or(outcome.is_none()),
        tool: m.tool.as_ref().map(|t| t.display().to_string()),
        tool_version: m.tool_version.clone(),
        argv: m.argv.clone(),
        apqn: m.apqn.clone(),
        exit_code: m.exit_code,
        signal: m.signal,
        timed_out: m.timed_out.unwrap_or(false),
        keys_started: m.keys_started,
        keys_reenciphered: m.keys_reenciphered,
        objects_listed: m.objects_listed,
        success_line: m.success_line.unwrap_or(false),
        duration_ms: m.duration_ms,
        error: outcome.filter(|o| !o.succeeded).map(|o| one_line(o.text)),
    }
}

/// Unusable keys, and other keys, a report's `key_list` names when the full list is a file.
const UNUSABLE_LISTED: usize = 100;
const OTHERS_LISTED: usize = 25;

fn inventory_facts(
    run_dir: &Path,
    o: &StepOutcome<'_>,
    inventory: &Inventory,
    warnings: &mut Vec<String>,
) -> InventoryFacts {
    let totals = inventory.totals();
    let mut key_list = Vec::new();
    let (mut unusable, mut others) = (0, 0);
    let objects = keylist::objects(inventory, run_dir).and_then(|objects| {
        for object in objects {
            let object = object?;
            if !object.is_key() {
                continue;
            }
            let bounded = inventory.file.is_some();
            let take = match object.usable {
                Usability::Unusable(_) => {
                    (unusable < UNUSABLE_LISTED || !bounded).then(|| unusable += 1)
                }
                _ => (others < OTHERS_LISTED || !bounded).then(|| others += 1),
            };
            if take.is_some() {
                key_list.push(key_facts(object));
            }
        }
        Ok(())
    });
    if let Err(e) = objects {
        warnings.push(format!(
            "the key inventory of {} could not be read: {e}",
            o.step.position()
        ));
    }
    InventoryFacts {
        step: o.step.position(),
        time: o.time.to_owned(),
        objects: totals.objects,
        keys: totals.keys,
        counts: inventory
            .counts
            .iter()
            .map(|(k, v)| (k.clone(), *v as u64))
            .collect(),
        // A run from before the side file reports as it always did.
        usable: inventory.file.is_some().then_some(totals.usable),
        unusable: inventory.file.is_some().then_some(totals.unusable),
        key_list,
        key_file: inventory.file.as_ref().map(|f| KeyFileFacts {
            name: f.name.clone(),
            sha256: f.sha256.clone(),
            lines: f.lines,
        }),
    }
}

fn key_facts(key: ObjectInfo) -> KeyFacts {
    let (usable, reason) = match key.usable {
        Usability::Usable => ("usable", None),
        Usability::Unusable(r) => ("unusable", Some(r)),
        Usability::NotExercised(r) => ("not_exercised", Some(r)),
    };
    KeyFacts {
        class: key.class,
        key_type: key.key_type,
        id: key.id,
        label: key.label,
        blob_sha256: key.blob_sha256,
        usable: usable.to_owned(),
        reason,
    }
}

/// The two inventories compared as a merge of their sorted streams.
fn comparison_facts(
    run_dir: &Path,
    before: &Inventory,
    after: &Inventory,
) -> Result<ComparisonFacts, KeyListError> {
    let c = compare(
        keylist::objects(before, run_dir)?,
        keylist::objects(after, run_dir)?,
    )?;
    let name = |k: &ObjectIdentity| format!("{} id {} label `{}`", k.class, k.id, k.label);
    // A run from before the side file reports as it always did.
    let total = |n: u64| (before.file.is_some() || after.file.is_some()).then_some(n);
    Ok(ComparisonFacts {
        ok: c.ok(),
        same_keys: c.same_keys,
        all_usable: c.all_usable,
        missing: c.missing.iter().map(name).collect(),
        extra: c.extra.iter().map(name).collect(),
        newly_unusable: c
            .newly_unusable
            .iter()
            .map(|u| format!("{}: {}", name(&u.key), u.reason))
            .collect(),
        reenciphered: c.totals.blob_changed,
        missing_total: total(c.totals.missing),
        extra_total: total(c.totals.extra),
        newly_unusable_total: total(c.totals.newly_unusable),
    })
}

/// `CCA AES 0x…, APKA 0x…`: a CCA token's MKVPs where an EP11 token's WKVP goes.
fn cca_patterns(
    token: &mkplan_plan::model::Token,
    which: impl Fn(&mkplan_plan::model::MkvpPair) -> mkplan_plan::model::Mkvp,
) -> String {
    let each: Vec<String> = token
        .mks
        .iter()
        .map(|(mk, pair)| format!("{mk} {}", which(pair)))
        .collect();
    format!("CCA {}", each.join(", "))
}
