//! What `init` lays out, independent of any plan: the tokens (EP11 or CCA, each with its
//! slot, store, config file, APQNs, the patterns its registers start with and the new ones the
//! TKE loads), the systemd units and command services, the applications that use the keys,
//! and the slots that are configured without a token. [`HostSpec::from_plan`] makes one from
//! a plan (its EP11 and CCA tokens); `mkplan-sim init --host FILE`
//! reads one (JSON, the serde form of these types).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::SimError;
use crate::cca::{CcaSysfsForm, MkType, Mkvp};
use mkplan_plan::model::{Apqn, Plan, ServiceControl, Wkvp};

/// How often a simulated application uses a key, by default.
pub const DEFAULT_INTERVAL_MS: u64 = 100;

/// A simulated host.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    pub tokens: Vec<TokenSpec>,
    /// Simulated systemd units (`….service`).
    #[serde(default)]
    pub units: Vec<String>,
    /// Services controlled by their own commands (stand-ins at their programs' paths).
    #[serde(default)]
    pub commands: Vec<CommandSpec>,
    /// Processes that use the keys in a loop and count what worked (`mkplan-sim apps`).
    #[serde(default)]
    pub apps: Vec<AppSpec>,
    /// Slots openCryptoki is configured with that have no token present (a TPM or ICA slot
    /// of the default `opencryptoki.conf`): `pkcshsm_mk_change reencipher` asks whether to
    /// continue.
    #[serde(default)]
    pub absent_slots: Vec<u64>,
    /// Which CCA registers the kernel's `mkvps` shows (its version).
    #[serde(default)]
    pub cca_sysfs: CcaSysfsForm,
}

/// A token: exactly one of `ep11` and `cca` says which kind.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSpec {
    /// The token's name in the simulator (and its label unless `label` is given).
    pub name: String,
    /// The token label (32 characters at most); tokens may share one, as a misconfigured
    /// host does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub slot: u64,
    /// The data store, as the host sees it (`/var/lib/opencryptoki/ep11tok`).
    pub store: PathBuf,
    /// `ep11tok.conf` or `ccatok.conf`, as the host sees it; none: the token has no file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<PathBuf>,
    /// lszcrypt notation (`0a.0011`). EP11 APQNs sit on CEX8P cards, CCA ones on CEX8C.
    #[serde(with = "apqn_list")]
    pub apqns: Vec<Apqn>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ep11: Option<Ep11Spec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cca: Option<CcaSpec>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ep11Spec {
    #[serde(with = "wkvp_text")]
    pub wkvp_current: Wkvp,
    /// What `tke load` loads by default.
    #[serde(with = "wkvp_text")]
    pub wkvp_new: Wkvp,
    /// Write `EXPECTED_WKVP` (the current WKVP) into the config file.
    #[serde(default = "yes")]
    pub expected_wkvp: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CcaSpec {
    /// The MK types this token's keys use; the others are never loaded on its cards.
    pub mks: BTreeMap<MkType, MkPatterns>,
    /// Write `EXPECTED_MKVPS` (the current MKVPs) into the config file.
    #[serde(default = "yes")]
    pub expected_mkvps: bool,
}

/// One MK type's patterns: what CUR holds at first, what `tke load` loads, and what OLD
/// holds (none: OLD is invalid).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MkPatterns {
    pub current: Mkvp,
    pub new: Mkvp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<Mkvp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandSpec {
    pub name: String,
    pub stop: Vec<String>,
    pub start: Vec<String>,
    pub is_active: Vec<String>,
}

/// An application that uses the keys of `tokens` (all tokens when empty), one operation
/// every `interval_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSpec {
    pub name: String,
    /// `name` is a unit (or command service) and the app is that service's process: it
    /// stops and starts with it. Otherwise the app is a process of its own.
    #[serde(default)]
    pub in_unit: bool,
    #[serde(default)]
    pub tokens: Vec<String>,
    #[serde(default = "default_interval")]
    pub interval_ms: u64,
}

fn yes() -> bool {
    true
}

fn default_interval() -> u64 {
    DEFAULT_INTERVAL_MS
}

impl TokenSpec {
    pub fn label(&self) -> &str {
        self.label.as_deref().unwrap_or(&self.name)
    }
}

impl HostSpec {
    /// The host a plan runs on: its EP11 tokens with their current WK everywhere and the
    /// new WK as the TKE's default, its CCA tokens likewise per MK type, its services, and every service using the keys of every
    /// token (they are the applications the plan stops).
    pub fn from_plan(plan: &Plan) -> HostSpec {
        let tokens = plan
            .tokens
            .values()
            .map(|token| TokenSpec {
                name: token.id.to_string(),
                label: None,
                slot: u64::from(token.slot.get()),
                store: token.store.clone(),
                config: token.config.clone(),
                apqns: token.apqns.clone(),
                ep11: (!token.is_cca()).then_some(Ep11Spec {
                    wkvp_current: token.wkvp_current,
                    wkvp_new: token.wkvp_new,
                    expected_wkvp: true,
                }),
                cca: token.is_cca().then(|| CcaSpec {
                    mks: token
                        .mks
                        .iter()
                        .map(|(mk, pair)| {
                            let mk = MkType::parse(mk.key())
                                .expect("the plan's MK types are the simulator's");
                            let patterns = MkPatterns {
                                current: Mkvp::new(*pair.current.bytes()),
                                new: Mkvp::new(*pair.new.bytes()),
                                old: None,
                            };
                            (mk, patterns)
                        })
                        .collect(),
                    expected_mkvps: true,
                }),
            })
            .collect();
        let mut units = Vec::new();
        let mut commands = Vec::new();
        for service in plan.services.values() {
            match &service.control {
                ServiceControl::Systemd(list) => units.extend(list.iter().cloned()),
                ServiceControl::Commands {
                    stop,
                    start,
                    is_active,
                } => commands.push(CommandSpec {
                    name: service.id.to_string(),
                    stop: stop.clone(),
                    start: start.clone(),
                    is_active: is_active.clone(),
                }),
            }
        }
        units.sort();
        units.dedup();
        let apps = units
            .iter()
            .chain(commands.iter().map(|c| &c.name))
            .map(|name| AppSpec {
                name: name.clone(),
                in_unit: true,
                tokens: Vec::new(),
                interval_ms: DEFAULT_INTERVAL_MS,
            })
            .collect();
        HostSpec {
            tokens,
            units,
            commands,
            apps,
            absent_slots: Vec::new(),
            cca_sysfs: CcaSysfsForm::default(),
        }
    }

    /// Reads a host description (JSON) and checks it.
    pub fn from_json(text: &str) -> Result<HostSpec, SimError> {
        let spec: HostSpec = serde_json::from_str(text)
            .map_err(|e| SimError::Usage(format!("the host description: {e}")))?;
        spec.check()?;
        Ok(spec)
    }

    /// Everything `init` relies on: names, slots, stores and APQNs are unique, each token is
    /// of one kind, a card holds APQNs of one kind, apps name tokens and units that exist.
    pub fn check(&self) -> Result<(), SimError> {
        let bad = |why: String| Err(SimError::Usage(format!("the host description: {why}")));
        if self.tokens.is_empty() {
            return bad("it has no token".into());
        }
        let mut seen = Seen::default();
        for token in &self.tokens {
            token.check(&mut seen).or_else(bad)?;
        }
        let (mut slots, names) = (seen.slots, seen.names);
        for slot in &self.absent_slots {
            if !slots.insert(*slot) {
                return bad(format!("slot {slot} is used twice"));
            }
        }
        self.check_apps(&names)
    }

    fn check_apps(&self, tokens: &BTreeSet<String>) -> Result<(), SimError> {
        let bad = |why: String| Err(SimError::Usage(format!("the host description: {why}")));
        let services: BTreeSet<&String> = self
            .units
            .iter()
            .chain(self.commands.iter().map(|c| &c.name))
            .collect();
        let mut seen = BTreeSet::new();
        for app in &self.apps {
            if app.name.is_empty() || app.name.contains('/') || !seen.insert(&app.name) {
                return bad(format!("app `{}`: names are unique, without `/`", app.name));
            }
            if app.in_unit && !services.contains(&app.name) {
                return bad(format!(
                    "app `{}` runs in a unit that is not listed",
                    app.name
                ));
            }
            if let Some(unknown) = app.tokens.iter().find(|t| !tokens.contains(*t)) {
                return bad(format!(
                    "app `{}` uses token `{unknown}`, which is not listed",
                    app.name
                ));
            }
            if app.interval_ms == 0 {
                return bad(format!("app `{}`: `interval_ms` is at least 1", app.name));
            }
        }
        Ok(())
    }
}

/// What the tokens checked so far use: names, slots, stores, APQNs, and each card's kind
/// (`true`: CCA).
#[derive(Default)]
struct Seen {
    names: BTreeSet<String>,
    slots: BTreeSet<u64>,
    stores: BTreeSet<PathBuf>,
    apqns: BTreeSet<Apqn>,
    card_is_cca: BTreeMap<u8, bool>,
}

impl TokenSpec {
    /// The token on its own, and against the tokens before it.
    fn check(&self, seen: &mut Seen) -> Result<(), String> {
        let name = &self.name;
        let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-_.".contains(&b);
        if name.is_empty() || !name.bytes().all(allowed) {
            return Err(format!(
                "token name `{name}`: use letters, digits, `-`, `_`, `.`"
            ));
        }
        if !seen.names.insert(name.clone()) {
            return Err(format!("two tokens are named `{name}`"));
        }
        if !seen.slots.insert(self.slot) {
            return Err(format!("slot {} is used twice", self.slot));
        }
        if self.label().len() > 32 {
            return Err(format!("token `{name}`: a label has at most 32 characters"));
        }
        if !self.store.is_absolute() || !seen.stores.insert(self.store.clone()) {
            return Err(format!(
                "token `{name}`: the store `{}` must be an absolute path of its own",
                self.store.display()
            ));
        }
        if self.config.as_ref().is_some_and(|c| !c.is_absolute()) {
            return Err(format!("token `{name}`: the config path must be absolute"));
        }
        let is_cca = match (&self.ep11, &self.cca) {
            (Some(_), None) => false,
            (None, Some(cca)) if !cca.mks.is_empty() => true,
            (None, Some(_)) => return Err(format!("token `{name}`: `cca.mks` is empty")),
            _ => {
                return Err(format!(
                    "token `{name}`: give exactly one of `ep11` and `cca`"
                ));
            }
        };
        if self.apqns.is_empty() {
            return Err(format!("token `{name}` has no APQN"));
        }
        for apqn in &self.apqns {
            if !seen.apqns.insert(*apqn) {
                return Err(format!("APQN {} belongs to two tokens", apqn.lszcrypt()));
            }
            if *seen.card_is_cca.entry(apqn.adapter()).or_insert(is_cca) != is_cca {
                return Err(format!(
                    "card {:02x} holds both EP11 and CCA APQNs; a card is one or the other",
                    apqn.adapter()
                ));
            }
        }
        Ok(())
    }
}

mod apqn_list {
    use serde::{Deserialize, Deserializer, Serializer};

    use mkplan_plan::model::Apqn;

    pub fn serialize<S: Serializer>(apqns: &[Apqn], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(apqns.iter().map(|a| a.lszcrypt()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Apqn>, D::Error> {
        Vec::<String>::deserialize(d)?
            .into_iter()
            .map(|text| {
                Apqn::from_plan_value(&serde_json::Value::String(text.clone())).map_err(|_| {
                    serde::de::Error::custom(format!(
                        "`{text}` is not an APQN in lszcrypt notation (0a.0011)"
                    ))
                })
            })
            .collect()
    }
}

mod wkvp_text {
    use serde::{Deserialize, Deserializer, Serializer};

    use mkplan_plan::model::Wkvp;

    pub fn serialize<S: Serializer>(wkvp: &Wkvp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&wkvp.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Wkvp, D::Error> {
        let text = String::deserialize(d)?;
        Wkvp::parse(&text)
            .map(|(w, _)| w)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mixed() -> String {
        r#"{
          "tokens": [
            {"name": "ep11", "slot": 4, "store": "/var/lib/opencryptoki/ep11tok",
             "config": "/etc/opencryptoki/ep11tok.conf", "apqns": ["0a.0011"],
             "ep11": {"wkvp_current": "0x6f1e1b26c2c5a2b4f1ea3fa7c1c9d3e5",
                      "wkvp_new": "0x9b7d4e0a11f35c8822d0b6e4a7f1c3d9"}},
            {"name": "cca", "slot": 5, "store": "/var/lib/opencryptoki/ccatok",
             "apqns": ["0c.0011"],
             "cca": {"mks": {"aes": {"current": "0x1111111111111111", "new": "0x2222222222222222"}}}}
          ],
          "apps": [{"name": "payments", "tokens": ["cca"]}]
        }"#
        .to_owned()
    }

    #[test]
    fn a_mixed_host_reads_and_checks() {
        let spec = HostSpec::from_json(&mixed()).unwrap();
        assert_eq!(spec.tokens.len(), 2);
        assert_eq!(spec.apps[0].interval_ms, DEFAULT_INTERVAL_MS);
        assert!(spec.tokens[0].ep11.as_ref().unwrap().expected_wkvp);
        let again = serde_json::to_string(&spec).unwrap();
        assert!(HostSpec::from_json(&again).is_ok());
    }

    #[test]
    fn what_a_host_cannot_be() {
        for (from, to, why) in [
            ("\"0c.0011\"", "\"0a.0011\"", "belongs to two tokens"),
            ("\"0c.0011\"", "\"0a.0012\"", "both EP11 and CCA"),
            ("\"slot\": 5", "\"slot\": 4", "slot 4 is used twice"),
            ("\"tokens\": [\"cca\"]", "\"tokens\": [\"nope\"]", "`nope`"),
            (
                "\"name\": \"payments\"",
                "\"name\": \"payments\", \"in_unit\": true",
                "not listed",
            ),
            ("{\"aes\"", "{\"des\"", "unknown variant"),
        ] {
            let text = mixed().replacen(from, to, 1);
            let error = HostSpec::from_json(&text).unwrap_err().to_string();
            assert!(error.contains(why), "{from} → {to}: {error}");
        }
    }
}
