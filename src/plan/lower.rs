//! Raw plan → validated [`Plan`]: parse the notations into newtypes, render templates,
//! resolve every reference (with "did you mean"), and check what one field alone cannot show.
//! Every problem is collected; a `Plan` exists only when there are none.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::plan::diagnostic::Diagnostic;
use crate::plan::model::{
    Apqn, AssertWk, BackupId, BackupTarget, Change, Checkpoint, CommandStep, CurrentWk,
    MigrateStep, NewWk, PinDelivery, PinSource, Pkcs11KeyRef, Plan, Report, Section, Service,
    ServiceControl, ServiceId, SignKey, Slot, Step, StepKind, TkeAction, Token, TokenId, Until,
    Wkvp, parse_duration,
};
use crate::plan::raw::{
    RawApqn, RawAssertWk, RawCurrentWk, RawDuration, RawNewWk, RawPinDelivery, RawPinSource,
    RawPlan, RawReport, RawService, RawStep,
};
use crate::plan::suggest::did_you_mean;
use crate::plan::template::{RESERVED_NAMES, Templates};
use crate::plan::yaml::escape_pointer_segment;

/// Default pause between polls of a checkpoint's `until` check.
const DEFAULT_UNTIL_DELAY: Duration = Duration::from_secs(10);

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
        .map(|(name, s)| {
            let id = ServiceId::new(name);
            (
                id.clone(),
                Service {
                    id,
                    control: service_control(s),
                },
            )
        })
        .collect();
    let backups = cx.backups(&raw, &tokens);
    let approvers = raw.change.approvers.clone();
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
    let report = cx.report(raw.report.as_ref());

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
        },
        vars: raw.vars.into_iter().collect(),
        tokens,
        services,
        backups,
        steps: main,
        rescue,
        always,
        report,
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
    fn token(&mut self, name: &str, raw: &crate::plan::raw::RawToken) -> Option<Token> {
        let base = format!("/tokens/{}", escape_pointer_segment(name));
        let slot = Slot::new(raw.slot);
        let apqns: Vec<Apqn> = raw
            .apqns
            .iter()
            .enumerate()
            .filter_map(|(i, a)| self.apqn(a, &format!("{base}/apqns/{i}")))
            .collect();
        let current = self.wkvp(&raw.wkvp.current, &format!("{base}/wkvp/current"));
        let new = self.wkvp(&raw.wkvp.new, &format!("{base}/wkvp/new"));
        if let (Some(c), Some(n)) = (current, new)
            && c == n
        {
            self.errors.push(
                Diagnostic::error("wkvp", format!("the new WKVP equals the current one ({c})"))
                    .with_pointer(format!("{base}/wkvp/new"))
                    .with_note("a master-key change needs a different new key")
                    .with_hint("copy the new key's pattern from the TKE after it is loaded"),
            );
        }
        let pin = self.pin(&raw.pin, &format!("{base}/pin"))?;
        Some(Token {
            id: TokenId::new(name),
            slot: slot?,
            store: PathBuf::from(&raw.store),
            config: raw.config.as_ref().map(PathBuf::from),
            apqns: (apqns.len() == raw.apqns.len()).then_some(apqns)?,
            pin,
            wkvp_current: current?,
            wkvp_new: new?,
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
            let dir = PathBuf::from(dir);
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

    fn step(
        &mut self,
        section: Section,
        index: usize,
        raw: &RawStep,
        tokens: &BTreeMap<TokenId, Token>,
        change_approvers: &[String],
    ) -> Option<Step> {
        let base = format!("/{}/{index}", section.key());
        let name = self.render(&raw.name, &format!("{base}/name"));
        if let Some(when) = &raw.when
            && let Err(d) = self
                .templates
                .check_expression(when, &format!("{base}/when"))
        {
            self.errors.push(d);
        }
        let timeout = raw
            .timeout
            .as_ref()
            .and_then(|t| self.duration(t, &format!("{base}/timeout")));
        let kind = self.step_kind(raw, &base, tokens, change_approvers)?;
        Some(Step {
            section,
            index,
            id: raw.id.clone(),
            name: name?,
            when: raw.when.clone(),
            tags: raw.tags.clone(),
            timeout,
            kind,
        })
    }

    fn step_kind(
        &mut self,
        raw: &RawStep,
        base: &str,
        tokens: &BTreeMap<TokenId, Token>,
        change_approvers: &[String],
    ) -> Option<StepKind> {
        if let Some(a) = &raw.assert_wk {
            return self
                .assert_wk(a, &format!("{base}/assert_wk"))
                .map(StepKind::AssertWk);
        }
        if let Some(c) = &raw.checkpoint {
            let at = format!("{base}/checkpoint");
            let say = self.render(&c.say, &format!("{at}/say"));
            let approvals = c.approvals.unwrap_or(1);
            let approvers = c
                .approvers
                .clone()
                .unwrap_or_else(|| change_approvers.to_vec());
            if !approvers.is_empty() && approvals > approvers.len() as u64 {
                self.errors.push(
                    Diagnostic::error(
                        "approvals",
                        format!(
                            "this checkpoint needs {approvals} approvals but only {} people may approve",
                            approvers.len()
                        ),
                    )
                    .with_pointer(format!("{at}/approvals"))
                    .with_hint("add approvers (here or in `change.approvers`) or lower `approvals`"),
                );
            }
            let timeout = c
                .timeout
                .as_ref()
                .and_then(|t| self.duration(t, &format!("{at}/timeout")));
            let until = match &c.until {
                Some(u) => {
                    let check = self.assert_wk(&u.assert_wk, &format!("{at}/until/assert_wk"))?;
                    let delay = match &u.delay {
                        Some(d) => self.duration(d, &format!("{at}/until/delay"))?,
                        None => DEFAULT_UNTIL_DELAY,
                    };
                    Some(Until {
                        check,
                        retries: u32::try_from(u.retries.unwrap_or(0)).unwrap_or(u32::MAX),
                        delay,
                    })
                }
                None => None,
            };
            return Some(StepKind::Checkpoint(Checkpoint {
                say: say?,
                tke: c.tke.as_deref().map(|t| match t {
                    "commit" => TkeAction::Commit,
                    "activate" => TkeAction::Activate,
                    other => TkeAction::Other(other.to_owned()),
                }),
                approvals: u32::try_from(approvals).unwrap_or(u32::MAX),
                approvers,
                timeout,
                until,
            }));
        }
        if let Some(s) = &raw.stop {
            return self
                .service_ref(s, &format!("{base}/stop"))
                .map(StepKind::Stop);
        }
        if let Some(s) = &raw.start {
            return self
                .service_ref(s, &format!("{base}/start"))
                .map(StepKind::Start);
        }
        if let Some(b) = &raw.backup {
            let token = self.token_ref(&b.token, &format!("{base}/backup/token"));
            let to = self.backup_ref(&b.to, &format!("{base}/backup/to"));
            return Some(StepKind::Backup {
                token: token?,
                to: to?,
            });
        }
        if let Some(r) = &raw.restore {
            let token = self.token_ref(&r.token, &format!("{base}/restore/token"));
            let from = self.backup_ref(&r.from, &format!("{base}/restore/from"));
            return Some(StepKind::Restore {
                token: token?,
                from: from?,
            });
        }
        if let Some(m) = &raw.migrate {
            return self
                .migrate(m, &format!("{base}/migrate"), tokens)
                .map(StepKind::Migrate);
        }
        if let Some(t) = &raw.set_expected_wkvp {
            let token = self.token_ref(&t.token, &format!("{base}/set_expected_wkvp/token"))?;
            return Some(StepKind::SetExpectedWkvp { token });
        }
        if let Some(p) = &raw.probe_keys {
            let token = self.token_ref(&p.token, &format!("{base}/probe_keys/token"))?;
            return Some(StepKind::ProbeKeys {
                token,
                module: p.module.as_ref().map(PathBuf::from),
            });
        }
        if let Some(c) = &raw.command {
            return self
                .command(c, &format!("{base}/command"))
                .map(StepKind::Command);
        }
        self.errors
            .push(Diagnostic::error("one-of", "the step has no kind").with_pointer(base));
        None
    }

    fn assert_wk(&mut self, raw: &RawAssertWk, pointer: &str) -> Option<AssertWk> {
        let token = self.token_ref(&raw.token, &format!("{pointer}/token"))?;
        Some(AssertWk {
            token,
            current: match raw.current {
                RawCurrentWk::Expected => CurrentWk::Expected,
                RawCurrentWk::New => CurrentWk::New,
            },
            new: match raw.new {
                RawNewWk::Committed => NewWk::Committed,
                RawNewWk::Uncommitted => NewWk::Uncommitted,
                RawNewWk::Empty => NewWk::Empty,
                RawNewWk::Any => NewWk::Any,
            },
        })
    }

    fn migrate(
        &mut self,
        raw: &crate::plan::raw::RawMigrateStep,
        pointer: &str,
        tokens: &BTreeMap<TokenId, Token>,
    ) -> Option<MigrateStep> {
        let token_id = self.token_ref(&raw.token, &format!("{pointer}/token"))?;
        let token = tokens.get(&token_id)?;
        let apqn = match &raw.apqn {
            Some(a) => {
                let apqn = self.apqn(a, &format!("{pointer}/apqn"))?;
                if !token.apqns.contains(&apqn) {
                    self.errors.push(
                        Diagnostic::error(
                            "reference",
                            format!("APQN {apqn} is not one of token `{token_id}`'s APQNs"),
                        )
                        .with_pointer(format!("{pointer}/apqn"))
                        .with_note(format!(
                            "the token uses {}",
                            token.apqns.iter().map(Apqn::to_string).collect::<Vec<_>>().join(", ")
                        ))
                        .with_hint("migrate through one of the token's own APQNs, or leave `apqn` out to use the first"),
                    );
                    return None;
                }
                apqn
            }
            None => *token.apqns.first()?,
        };
        Some(MigrateStep {
            token: token_id,
            apqn,
            tool: raw.tool.as_ref().map(PathBuf::from),
            pin_delivery: match raw.pin_delivery {
                None | Some(RawPinDelivery::Prompt) => PinDelivery::Prompt,
                Some(RawPinDelivery::Env) => PinDelivery::Env,
            },
        })
    }

    fn command(
        &mut self,
        raw: &crate::plan::raw::RawCommand,
        pointer: &str,
    ) -> Option<CommandStep> {
        if raw.shell && raw.argv.len() != 1 {
            self.errors.push(
                Diagnostic::error(
                    "command",
                    format!(
                        "with `shell: true`, `argv` is one script, not {} items",
                        raw.argv.len()
                    ),
                )
                .with_pointer(format!("{pointer}/argv"))
                .with_hint("write the whole script as one string, or drop `shell: true`"),
            );
            return None;
        }
        let argv: Vec<Option<String>> = raw
            .argv
            .iter()
            .enumerate()
            .map(|(i, a)| self.render(a, &format!("{pointer}/argv/{i}")))
            .collect();
        let env: Vec<Option<(String, String)>> = raw
            .env
            .iter()
            .map(|(k, v)| {
                self.render(v, &format!("{pointer}/env/{}", escape_pointer_segment(k)))
                    .map(|v| (k.clone(), v))
            })
            .collect();
        let ok_codes = raw
            .ok_codes
            .clone()
            .unwrap_or_else(|| vec![0])
            .into_iter()
            .map(|c| u8::try_from(c).unwrap_or(u8::MAX))
            .collect();
        Some(CommandStep {
            argv: argv.into_iter().collect::<Option<_>>()?,
            shell: raw.shell,
            env: env.into_iter().collect::<Option<_>>()?,
            ok_codes,
            read_only: raw.read_only,
        })
    }

    fn report(&mut self, raw: Option<&RawReport>) -> Report {
        let Some(raw) = raw else {
            return Report::default();
        };
        let dir = raw.dir.as_ref().and_then(|d| {
            let dir = self.render(d, "/report/dir")?;
            if dir.starts_with('/') {
                Some(PathBuf::from(dir))
            } else {
                self.errors.push(
                    Diagnostic::error("path", format!("report directory `{dir}` is not absolute"))
                        .with_pointer("/report/dir"),
                );
                None
            }
        });
        let sign = raw.sign.as_ref().and_then(|s| match (&s.key, &s.pkcs11) {
            (Some(key), None) => Some(SignKey::File(PathBuf::from(key))),
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
        Report { dir, sign }
    }

    fn unique_step_ids(&mut self, steps: &[Step]) {
        let mut seen: HashMap<&str, &Step> = HashMap::new();
        for step in steps {
            let Some(id) = step.id.as_deref() else {
                continue;
            };
            if let Some(first) = seen.get(id) {
                self.errors.push(
                    Diagnostic::error("duplicate-id", format!("step id `{id}` is used twice"))
                        .with_pointer(format!("{}/id", step.pointer()))
                        .with_note(format!(
                            "first used by `{}` at {}",
                            first.name,
                            first.pointer()
                        )),
                );
            } else {
                seen.insert(id, step);
            }
        }
    }

    fn token_ref(&mut self, name: &str, pointer: &str) -> Option<TokenId> {
        resolve(
            name,
            &self.token_names,
            "token",
            "tokens",
            pointer,
            &mut self.errors,
        )
        .map(TokenId::new)
    }

    fn service_ref(&mut self, name: &str, pointer: &str) -> Option<ServiceId> {
        resolve(
            name,
            &self.service_names,
            "service group",
            "services",
            pointer,
            &mut self.errors,
        )
        .map(ServiceId::new)
    }

    fn backup_ref(&mut self, name: &str, pointer: &str) -> Option<BackupId> {
        resolve(
            name,
            &self.backup_names,
            "backup target",
            "backups",
            pointer,
            &mut self.errors,
        )
        .map(BackupId::new)
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

fn resolve<'a>(
    name: &'a str,
    known: &[String],
    what: &str,
    section: &str,
    pointer: &str,
    errors: &mut Vec<Diagnostic>,
) -> Option<&'a str> {
    if known.iter().any(|k| k == name) {
        return Some(name);
    }
    let mut d = Diagnostic::error("reference", format!("unknown {what} `{name}`"))
        .with_pointer(pointer)
        .with_label(format!("not defined under `{section}`"));
    d = match did_you_mean(name, known.iter().map(String::as_str)) {
        Some(best) => d.with_hint(format!("did you mean `{best}`?")),
        None if known.is_empty() => d.with_hint(format!("define it under `{section}:`")),
        None => d.with_hint(format!(
            "defined {section}: {}",
            known
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    };
    errors.push(d);
    None
}

fn service_control(raw: &RawService) -> ServiceControl {
    match (&raw.systemd, &raw.command) {
        (Some(units), _) => ServiceControl::Systemd(units.clone()),
        (None, Some(c)) => ServiceControl::Commands {
            stop: c.stop.clone(),
            start: c.start.clone(),
            is_active: c.is_active.clone(),
        },
        // The schema requires exactly one form.
        (None, None) => ServiceControl::Systemd(Vec::new()),
    }
}

fn raw_number(n: &crate::plan::raw::RawNumber) -> Value {
    match n {
        crate::plan::raw::RawNumber::Int(i) => Value::from(*i),
        crate::plan::raw::RawNumber::Text(t) => Value::from(t.clone()),
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
