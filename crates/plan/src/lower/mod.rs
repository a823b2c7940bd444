//! Raw plan → validated [`Plan`]: parse the notations into newtypes, render templates,
//! resolve every reference (with "did you mean"), and check what one field alone cannot show.
//! Every problem is collected; a `Plan` exists only when there are none. The steps are
//! lowered in `steps.rs`, and paths checked in `paths.rs`.

mod approvers;
mod paths;
mod steps;
mod token_keys;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::diagnostic::Diagnostic;
use crate::model::{
    Apqn, BackupId, BackupTarget, Change, PinSource, Pkcs11KeyRef, Plan, Policy, Report, Section,
    Service, ServiceControl, ServiceId, SignKey, Slot, Token, TokenId, Wkvp, parse_duration,
};
use crate::raw::{
    RawApqn, RawDuration, RawNumber, RawPinSource, RawPlan, RawReport, RawService, RawToken,
};
use crate::template::{RESERVED_NAMES, Templates};
use crate::yaml::escape_pointer_segment;
use token_keys::TokenKeys;

/// Default pause between polls of a checkpoint's `until` check.
const DEFAULT_UNTIL_DELAY: Duration = Duration::from_secs(10);

/// Default pause between attempts of a `mk_change` finalize or cancel that left ERROR.
const DEFAULT_END_DELAY: Duration = Duration::from_secs(30);

pub fn lower(raw: RawPlan, json: &Value) -> Result<Plan, Vec<Diagnostic>> {
    let mut cx = Lowering {
        templates: Templates::new(json),
        errors: Vec::new(),
        token_names: raw.tokens.keys().cloned().collect(),
        service_names: raw.services.keys().cloned().collect(),
        backup_names: raw.backups.keys().cloned().collect(),
    };
    for name in raw.vars.keys() {
        if RESERVED_NAMES.contains(&name.as_str()) {
            cx.errors.push(
                Diagnostic::error(
                    "reserved-name",
                    format!("`{name}` cannot be a variable name"),
                )
                .with_pointer(format!("/vars/{name}"))
                .at_key()
                .with_note("templates already use it for the plan's own sections")
                .with_hint("rename the variable"),
            );
        }
    }

    let tokens: BTreeMap<TokenId, Token> = raw
        .tokens
        .iter()
        .filter_map(|(name, t)| {
            let token = cx.token(name, t)?;
            Some((token.id.clone(), token))
        })
        .collect();
    let services: BTreeMap<ServiceId, Service> = raw
        .services
        .iter()
        .filter_map(|(name, s)| {
            let id = ServiceId::new(name);
            let control = cx.service_control(name, s)?;
            Some((id.clone(), Service { id, control }))
        })
        .collect();
    let backups = cx.backups(&raw, &tokens);
    let (approvers, approver_keys) = cx.approvers(&raw.change.approvers);
    let mut steps = Vec::new();
    for (section, list) in [
        (Section::Steps, &raw.steps),
        (Section::Rescue, &raw.rescue),
        (Section::Always, &raw.always),
    ] {
        for (index, step) in list.iter().enumerate() {
            if let Some(step) = cx.step(section, index, step, &tokens, &approvers) {
                steps.push(step);
            }
        }
    }
    cx.unique_step_ids(&steps);
    cx.resolve_operations(&mut steps);
    let mut report = cx.report(raw.report.as_ref());
    report.cosign = raw
        .report
        .as_ref()
        .and_then(|r| r.cosign.as_ref())
        .and_then(|c| cx.cosign(c, &approver_keys));

    if !cx.errors.is_empty() {
        return Err(cx.errors);
    }
    let (mut main, mut rescue, mut always) = (Vec::new(), Vec::new(), Vec::new());
    for step in steps {
        match step.section {
            Section::Steps => main.push(step),
            Section::Rescue => rescue.push(step),
            Section::Always => always.push(step),
        }
    }
    Ok(Plan {
        name: raw.name,
        change: Change {
            ticket: raw.change.ticket,
            summary: raw.change.summary,
            approvers,
            policy: raw.change.policy.map(|p| Policy {
                reference: p.reference,
                cryptoperiod: p.cryptoperiod,
            }),
            approver_keys,
            asserted_approvals_allowed: raw.change.asserted_approvals
                == Some(crate::raw::RawAssertedApprovals::Warn),
        },
        vars: raw.vars.into_iter().collect(),
        tokens,
        services,
        backups,
        steps: main,
        rescue,
        always,
        report,
        template_scope: cx.templates.scope().clone(),
    })
}

struct Lowering {
    templates: Templates,
    errors: Vec<Diagnostic>,
    token_names: Vec<String>,
    service_names: Vec<String>,
    backup_names: Vec<String>,
}

impl Lowering {
    fn token(&mut self, name: &str, raw: &RawToken) -> Option<Token> {
        let base = format!("/tokens/{}", escape_pointer_segment(name));
        let store = self.normal_path(&raw.store, "token store", &format!("{base}/store"));
        let config = match &raw.config {
            Some(config) => {
                Some(self.normal_path(config, "token config", &format!("{base}/config"))?)
            }
            None => None,
        };
        let slot = Slot::new(raw.slot);
        let apqns: Vec<Apqn> = raw
            .apqns
            .iter()
            .enumerate()
            .filter_map(|(i, a)| self.apqn(a, &format!("{base}/apqns/{i}")))
            .collect();
        let keys = self.token_keys(raw, &base);
        let pin = self.pin(&raw.pin, &format!("{base}/pin"))?;
        let so_pin = self.so_pin(raw, &base);
        Some(Token {
            id: TokenId::new(name),
            slot: slot?,
            store: store?,
            config,
            apqns: (apqns.len() == raw.apqns.len()).then_some(apqns)?,
            pin,
            so_pin: so_pin?,
            token_type: keys.as_ref()?.token_type(),
            wkvp_current: match &keys {
                Some(TokenKeys::Ep11 { current, .. }) => *current,
                _ => Wkvp::UNUSED,
            },
            wkvp_new: match &keys {
                Some(TokenKeys::Ep11 { new, .. }) => *new,
                _ => Wkvp::UNUSED,
            },
            mks: match keys? {
                TokenKeys::Cca(mks) => mks,
                TokenKeys::Ep11 { .. } => BTreeMap::new(),
            },
        })
    }

    fn apqn(&mut self, raw: &RawApqn, pointer: &str) -> Option<Apqn> {
        let value = match raw {
            RawApqn::Lszcrypt(s) => Value::String(s.clone()),
            RawApqn::Pair(p) => serde_json::json!({
                "adapter": raw_number(&p.adapter),
                "domain": raw_number(&p.domain),
            }),
        };
        match Apqn::from_plan_value(&value) {
            Ok(apqn) => Some(apqn),
            Err(errors) => {
                // Already reported beside the schema; keep the plan unbuilt.
                self.errors.extend(errors.into_iter().map(|e| {
                    Diagnostic::error("apqn", e.message)
                        .with_pointer(format!("{pointer}{}", e.relative_pointer))
                }));
                None
            }
        }
    }

    fn wkvp(&mut self, text: &str, pointer: &str) -> Option<Wkvp> {
        match Wkvp::parse(text) {
            Ok((wkvp, _)) => Some(wkvp),
            Err(message) => {
                self.errors
                    .push(Diagnostic::error("wkvp", message).with_pointer(pointer));
                None
            }
        }
    }

    fn pin(&mut self, raw: &RawPinSource, pointer: &str) -> Option<PinSource> {
        match (&raw.env, &raw.file, raw.prompt) {
            (Some(env), None, None) => Some(PinSource::Env(env.clone())),
            (None, Some(file), None) => Some(PinSource::File(PathBuf::from(file))),
            (None, None, Some(true)) => Some(PinSource::Prompt),
            _ => {
                self.errors.push(
                    Diagnostic::error(
                        "one-of",
                        "a PIN source is exactly one of `env`, `file` or `prompt: true`",
                    )
                    .with_pointer(pointer),
                );
                None
            }
        }
    }

    fn backups(
        &mut self,
        raw: &RawPlan,
        tokens: &BTreeMap<TokenId, Token>,
    ) -> BTreeMap<BackupId, BackupTarget> {
        let mut rendered = serde_json::Map::new();
        let mut out = BTreeMap::new();
        for (name, target) in &raw.backups {
            let pointer = format!("/backups/{}/dir", escape_pointer_segment(name));
            let Some(dir) = self.render(&target.dir, &pointer) else {
                continue;
            };
            if !dir.starts_with('/') {
                self.errors.push(
                    Diagnostic::error("path", format!("backup directory `{dir}` is not absolute"))
                        .with_pointer(&pointer)
                        .with_hint("write the full path, e.g. `/var/backups/mkplan`"),
                );
                continue;
            }
            let Some(dir) = self.normal_path(&dir, "backup directory", &pointer) else {
                continue;
            };
            for token in tokens.values() {
                if dir.starts_with(&token.store) {
                    self.errors.push(
                        Diagnostic::error(
                            "path",
                            format!(
                                "backup directory `{}` is inside the store of token `{}`",
                                dir.display(),
                                token.id
                            ),
                        )
                        .with_pointer(&pointer)
                        .with_note("a restore replaces the whole store, and the backup with it")
                        .with_hint("keep backups outside every token store"),
                    );
                }
            }
            rendered.insert(
                name.clone(),
                serde_json::json!({"dir": dir.display().to_string(), "keep": target.keep}),
            );
            let id = BackupId::new(name);
            out.insert(
                id.clone(),
                BackupTarget {
                    id,
                    dir,
                    keep: target.keep.map(|k| u32::try_from(k).unwrap_or(u32::MAX)),
                },
            );
        }
        self.templates.set("backups", Value::Object(rendered));
        out
    }

    fn report(&mut self, raw: Option<&RawReport>) -> Report {
        let Some(raw) = raw else {
            return Report::default();
        };
        let dir = raw.dir.as_ref().and_then(|d| {
            let dir = self.render(d, "/report/dir")?;
            if dir.starts_with('/') {
                self.normal_path(&dir, "report directory", "/report/dir")
            } else {
                self.errors.push(
                    Diagnostic::error("path", format!("report directory `{dir}` is not absolute"))
                        .with_pointer("/report/dir"),
                );
                None
            }
        });
        let sign = raw.sign.as_ref().and_then(|s| match (&s.key, &s.pkcs11) {
            (Some(key), None) => self
                .normal_path(key, "signing key", "/report/sign/key")
                .map(SignKey::File),
            (None, Some(p)) => {
                let key = match (&p.label, &p.id) {
                    (Some(label), None) => Some(Pkcs11KeyRef::Label(label.clone())),
                    (None, Some(id)) => Some(Pkcs11KeyRef::Id(hex_bytes(id))),
                    _ => {
                        self.errors.push(
                            Diagnostic::error(
                                "one-of",
                                "a PKCS#11 signing key is named by exactly one of `label` or `id`",
                            )
                            .with_pointer("/report/sign/pkcs11"),
                        );
                        None
                    }
                };
                let pin = self.pin(&p.pin, "/report/sign/pkcs11/pin");
                Some(SignKey::Pkcs11 {
                    module: PathBuf::from(&p.module),
                    slot: Slot::new(p.slot)?,
                    key: key?,
                    pin: pin?,
                })
            }
            _ => None,
        });
        let mode = raw.mode.as_deref().and_then(|text| self.report_mode(text));
        Report {
            dir,
            mode,
            sign,
            cosign: None,
        }
    }

    /// `report.mode`: octal, readable by the owner, writable by nobody else, executable by
    /// nobody (the schema has checked the digits).
    fn report_mode(&mut self, text: &str) -> Option<u32> {
        let mode = u32::from_str_radix(text, 8).ok()?;
        if mode & !0o644 == 0 && mode & 0o400 != 0 {
            return Some(mode);
        }
        self.errors.push(
            Diagnostic::error(
                "mode",
                format!("report mode `{text}` is not allowed: the copy must be readable by its owner, and writable or executable by nobody else"),
            )
            .with_pointer("/report/mode")
            .with_hint("`0600` (the default), `0640` to share it with the directory's group, or `0644` for everyone"),
        );
        None
    }

    /// A service's units or commands, rendered (a command's program may be `{{ ctl }}`).
    fn service_control(&mut self, name: &str, raw: &RawService) -> Option<ServiceControl> {
        let base = format!("/services/{}", escape_pointer_segment(name));
        let mut list = |items: &[String], pointer: String| -> Option<Vec<String>> {
            let rendered: Vec<Option<String>> = items
                .iter()
                .enumerate()
                .map(|(i, item)| self.render(item, &format!("{pointer}/{i}")))
                .collect();
            rendered.into_iter().collect()
        };
        match (&raw.systemd, &raw.command) {
            (Some(units), None) => {
                list(units, format!("{base}/systemd")).map(ServiceControl::Systemd)
            }
            (None, Some(c)) => {
                let stop = list(&c.stop, format!("{base}/command/stop"));
                let start = list(&c.start, format!("{base}/command/start"));
                let is_active = list(&c.is_active, format!("{base}/command/is_active"));
                Some(ServiceControl::Commands {
                    stop: stop?,
                    start: start?,
                    is_active: is_active?,
                })
            }
            _ => {
                self.errors.push(
                    Diagnostic::error(
                        "one-of",
                        "a service is exactly one of `systemd` or `command`",
                    )
                    .with_pointer(base),
                );
                None
            }
        }
    }

    fn render(&mut self, text: &str, pointer: &str) -> Option<String> {
        match self.templates.render(text, pointer) {
            Ok(s) => Some(s),
            Err(d) => {
                self.errors.push(d);
                None
            }
        }
    }

    fn duration(&mut self, raw: &RawDuration, pointer: &str) -> Option<Duration> {
        match raw {
            RawDuration::Seconds(s) => Some(Duration::from_secs(*s)),
            RawDuration::Text(t) => {
                let parsed = parse_duration(t);
                if parsed.is_none() {
                    self.errors.push(
                        Diagnostic::error("duration", format!("`{t}` is not a duration"))
                            .with_pointer(pointer)
                            .with_hint("write seconds (`30`) or `30s`, `500ms`, `5m`, `2h`"),
                    );
                }
                parsed
            }
        }
    }
}

fn raw_number(n: &RawNumber) -> Value {
    match n {
        RawNumber::Int(i) => Value::from(*i),
        RawNumber::Text(t) => Value::from(t.clone()),
    }
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
        .collect()
}

/// Is `inner` at or below `outer`? (Lexically: plans name paths, not the live tree.)
pub fn path_within(inner: &Path, outer: &Path) -> bool {
    inner.starts_with(outer)
}
