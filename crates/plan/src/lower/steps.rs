//! Lowering the steps of `steps`, `rescue` and `always`: one [`StepKind`] per step, with
//! its references to tokens, services and backup targets resolved.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use crate::diagnostic::Diagnostic;
use crate::lower::{DEFAULT_END_DELAY, DEFAULT_UNTIL_DELAY, Lowering};
use crate::model::{
    Apqn, AssertMk, AssertWk, BackupId, CcaMk, Checkpoint, CommandStep, CurrentWk, MigrateStep,
    NewMk, NewWk, OldMk, PinDelivery, Section, ServiceId, Step, StepKind, TkeAction, Token,
    TokenId, Until, UntilCheck,
};
use crate::model::{
    BackupStep, EndOperationStep, ExpectedTarget, ExpectedWkvpStep, ProbeKeysStep, ReencipherStep,
    RestoreStep,
};
use crate::raw::{
    RawAssertMk, RawAssertWk, RawCcaMkName, RawCommand, RawCurrentWk, RawEndOperation,
    RawExpectedTarget, RawMigrateStep, RawMkChange, RawNewMk, RawNewWk, RawOldMk, RawPinDelivery,
    RawStep,
};
use crate::schema::dotted_path;
use crate::suggest::did_you_mean;
use crate::yaml::escape_pointer_segment;

impl Lowering {
    pub(super) fn step(
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
                    let check = match (&u.assert_wk, &u.assert_mk) {
                        (Some(wk), None) => {
                            UntilCheck::Wk(self.assert_wk(wk, &format!("{at}/until/assert_wk"))?)
                        }
                        (None, Some(mk)) => {
                            UntilCheck::Mk(self.assert_mk(mk, &format!("{at}/until/assert_mk"))?)
                        }
                        _ => {
                            self.errors.push(
                                Diagnostic::error(
                                    "one-of",
                                    "`until` takes exactly one of `assert_wk` or `assert_mk`",
                                )
                                .with_pointer(format!("{at}/until"))
                                .with_hint(
                                    "`assert_wk` for an EP11 token, `assert_mk` for a CCA token",
                                ),
                            );
                            return None;
                        }
                    };
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
                park: c.park,
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
            return Some(StepKind::Backup(BackupStep {
                token: token?,
                to: to?,
            }));
        }
        if let Some(r) = &raw.restore {
            let token = self.token_ref(&r.token, &format!("{base}/restore/token"));
            let from = self.backup_ref(&r.from, &format!("{base}/restore/from"));
            return Some(StepKind::Restore(RestoreStep {
                token: token?,
                from: from?,
            }));
        }
        if let Some(m) = &raw.migrate {
            return self
                .migrate(m, &format!("{base}/migrate"), tokens)
                .map(StepKind::Migrate);
        }
        if let Some(t) = &raw.set_expected_wkvp {
            let token = self.token_ref(&t.token, &format!("{base}/set_expected_wkvp/token"))?;
            let to = match t.to {
                None | Some(RawExpectedTarget::New) => ExpectedTarget::New,
                Some(RawExpectedTarget::Current) => ExpectedTarget::Current,
            };
            return Some(StepKind::SetExpectedWkvp(ExpectedWkvpStep { token, to }));
        }
        if let Some(t) = &raw.set_expected_mkvps {
            let token = self.token_ref(&t.token, &format!("{base}/set_expected_mkvps/token"))?;
            let to = match t.to {
                None | Some(RawExpectedTarget::New) => ExpectedTarget::New,
                Some(RawExpectedTarget::Current) => ExpectedTarget::Current,
            };
            return Some(StepKind::SetExpectedMkvps(ExpectedWkvpStep { token, to }));
        }
        if let Some(a) = &raw.assert_mk {
            return self
                .assert_mk(a, &format!("{base}/assert_mk"))
                .map(StepKind::AssertMk);
        }
        if let Some(p) = &raw.probe_keys {
            let token = self.token_ref(&p.token, &format!("{base}/probe_keys/token"))?;
            return Some(StepKind::ProbeKeys(ProbeKeysStep {
                token,
                module: p.module.as_ref().map(PathBuf::from),
            }));
        }
        if let Some(c) = &raw.command {
            return self
                .command(c, &format!("{base}/command"))
                .map(StepKind::Command);
        }
        if let Some(m) = &raw.mk_change {
            return self.mk_change(m, &format!("{base}/mk_change"), tokens);
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

    fn assert_mk(&mut self, raw: &RawAssertMk, pointer: &str) -> Option<AssertMk> {
        let token = self.token_ref(&raw.token, &format!("{pointer}/token"))?;
        Some(AssertMk {
            token,
            current: match raw.current {
                RawCurrentWk::Expected => CurrentWk::Expected,
                RawCurrentWk::New => CurrentWk::New,
            },
            new: match raw.new {
                RawNewMk::Full => NewMk::Full,
                RawNewMk::Empty => NewMk::Empty,
                RawNewMk::Any => NewMk::Any,
            },
            old: match raw.old {
                Some(RawOldMk::Expected) => OldMk::Expected,
                None | Some(RawOldMk::Any) => OldMk::Any,
            },
        })
    }

    fn migrate(
        &mut self,
        raw: &RawMigrateStep,
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
            mks: match &raw.mks {
                Some(named) => named.iter().map(|mk| cca_mk(*mk)).collect(),
                None => token.mks.keys().copied().collect(),
            },
            mks_named: raw.mks.is_some(),
        })
    }

    fn mk_change(
        &mut self,
        raw: &RawMkChange,
        pointer: &str,
        tokens: &BTreeMap<TokenId, Token>,
    ) -> Option<StepKind> {
        if let Some(r) = &raw.reencipher {
            let at = format!("{pointer}/reencipher");
            let named: Vec<Option<TokenId>> = r
                .tokens
                .iter()
                .enumerate()
                .map(|(i, t)| self.token_ref(t, &format!("{at}/tokens/{i}")))
                .collect();
            let mut named: Vec<TokenId> = named.into_iter().collect::<Option<_>>()?;
            // The tool asks for the PINs in slot order.
            named.sort_by_key(|t| tokens.get(t).map(|t| t.slot));
            return Some(StepKind::MkReencipher(ReencipherStep {
                tokens: named,
                tool: r.tool.as_ref().map(PathBuf::from),
            }));
        }
        if let Some(f) = &raw.finalize {
            return self
                .end_operation(f, &format!("{pointer}/finalize"))
                .map(StepKind::MkFinalize);
        }
        let c = raw.cancel.as_ref()?;
        self.end_operation(c, &format!("{pointer}/cancel"))
            .map(StepKind::MkCancel)
    }

    /// `of` is resolved once every step is lowered ([`Lowering::resolve_operations`]).
    fn end_operation(&mut self, raw: &RawEndOperation, pointer: &str) -> Option<EndOperationStep> {
        let delay = match &raw.delay {
            Some(d) => self.duration(d, &format!("{pointer}/delay"))?,
            None => DEFAULT_END_DELAY,
        };
        Some(EndOperationStep {
            of: raw.of.clone(),
            of_index: usize::MAX,
            tokens: Vec::new(),
            retries: u32::try_from(raw.retries.unwrap_or(1)).unwrap_or(u32::MAX),
            delay,
        })
    }

    /// Points each finalize and cancel at the reencipher step its `of` names, and takes
    /// that operation's tokens.
    pub(super) fn resolve_operations(&mut self, steps: &mut [Step]) {
        let operations: Vec<(String, usize, Vec<TokenId>, &'static str)> = steps
            .iter()
            .filter_map(|s| Some((s.id.clone()?, s)))
            .map(|(id, s)| match &s.kind {
                StepKind::MkReencipher(r) if s.section == Section::Steps => {
                    (id, s.index, r.tokens.clone(), "")
                }
                other => (id, s.index, Vec::new(), other.name().as_str()),
            })
            .collect();
        let ids: Vec<String> = operations.iter().map(|(id, ..)| id.clone()).collect();
        for step in steps.iter_mut() {
            let pointer = step.pointer();
            let (end, key) = match &mut step.kind {
                StepKind::MkFinalize(end) => (end, "finalize"),
                StepKind::MkCancel(end) => (end, "cancel"),
                _ => continue,
            };
            let at = format!("{pointer}/mk_change/{key}/of");
            match operations.iter().find(|(id, ..)| *id == end.of) {
                Some((_, index, tokens, "")) => {
                    end.of_index = *index;
                    end.tokens = tokens.clone();
                }
                Some((_, _, _, kind)) => self.errors.push(
                    Diagnostic::error(
                        "reference",
                        format!(
                            "`of: {}` names a `{kind}` step, not a `mk_change: {{reencipher}}` of `steps`",
                            end.of
                        ),
                    )
                    .with_pointer(at)
                    .with_hint("name the `id` of the step that re-enciphers the tokens"),
                ),
                None => {
                    let _ = resolve(&end.of, &ids, "step id", "steps", &at, &mut self.errors);
                }
            }
        }
    }

    fn command(&mut self, raw: &RawCommand, pointer: &str) -> Option<CommandStep> {
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

    pub(super) fn unique_step_ids(&mut self, steps: &[Step]) {
        let mut seen: HashMap<&str, &Step> = HashMap::new();
        for step in steps {
            let Some(id) = step.id.as_deref() else {
                continue;
            };
            if let Some(first) = seen.get(id) {
                self.errors.push(
                    Diagnostic::error("duplicate-id", format!("step id `{id}` is used twice"))
                        .with_pointer(format!("{}/id", step.pointer()))
                        .with_note_at(
                            format!(
                                "first used by `{}` at `{}`",
                                first.name,
                                dotted_path(&first.pointer())
                            ),
                            format!("{}/id", first.pointer()),
                        )
                        .with_hint("give each step its own id"),
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

fn cca_mk(raw: RawCcaMkName) -> CcaMk {
    match raw {
        RawCcaMkName::Sym => CcaMk::Sym,
        RawCcaMkName::Asym => CcaMk::Asym,
        RawCcaMkName::Aes => CcaMk::Aes,
        RawCcaMkName::Apka => CcaMk::Apka,
    }
}
