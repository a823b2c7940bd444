//! The `interrupted-read` fault (zcrypt-sysfs.md 1.6b): a signal during the kernel's card
//! query makes a `mkvps` read print `- -` placeholders: on every line, or (CCA's info is two
//! card queries) on the APKA lines only. The fault lives in the APQN's state, so the sysfs
//! tree is rendered with it. It lasts until cleared, or for a number of reads
//! (`read_watcher` counts them). This file is the fault's data only: it depends on nothing
//! of the simulator, so the registers' state can hold it.

use serde::{Deserialize, Serialize};

use mkplan_plan::model::Apqn;

/// Which lines of `mkvps` show `- -`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadScope {
    /// Every line (EP11: both).
    All,
    /// CCA: the three APKA lines (the second card query); EP11 reads it as `All`.
    Apka,
}

/// An interrupted read in force on one APQN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadFault {
    pub scope: ReadScope,
    /// `None`: every read until the fault is cleared.
    pub reads: Option<u32>,
}

/// The fault as `mkplan-sim fault interrupted-read APQN[:apka][:N]` names it (and so
/// `faults.json` holds it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadFaultSpec {
    pub apqn: Apqn,
    pub fault: ReadFault,
}

impl ReadFaultSpec {
    /// `0c.0011`, `0c.0011:apka`, `0c.0011:3`, `0c.0011:apka:3`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = text.split(':');
        let apqn_text = parts.next().unwrap_or_default();
        let apqn = Apqn::from_plan_value(&serde_json::Value::String(apqn_text.to_owned()))
            .map_err(|_| format!("`{apqn_text}` is not an APQN in lszcrypt notation (0c.0011)"))?;
        let mut fault = ReadFault {
            scope: ReadScope::All,
            reads: None,
        };
        for part in parts {
            match part {
                "apka" => fault.scope = ReadScope::Apka,
                "all" => fault.scope = ReadScope::All,
                n => match n.parse::<u32>() {
                    Ok(n) if n > 0 => fault.reads = Some(n),
                    _ => {
                        return Err(format!(
                            "`{part}` in `{text}`: give `apka`, `all` or a number of reads (1 or more)"
                        ));
                    }
                },
            }
        }
        Ok(Self { apqn, fault })
    }
}

impl std::fmt::Display for ReadFaultSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.apqn.lszcrypt())?;
        if self.fault.scope == ReadScope::Apka {
            f.write_str(":apka")?;
        }
        if let Some(n) = self.fault.reads {
            write!(f, ":{n}")?;
        }
        Ok(())
    }
}

impl Serialize for ReadFaultSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ReadFaultSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ReadFaultSpec::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fault_argument_names_apqn_scope_and_reads() {
        let spec = ReadFaultSpec::parse("0c.0011:apka:3").unwrap();
        assert_eq!(spec.apqn, Apqn::new(12, 17));
        assert_eq!(
            spec.fault,
            ReadFault {
                scope: ReadScope::Apka,
                reads: Some(3)
            }
        );
        assert_eq!(spec.to_string(), "0c.0011:apka:3");
        let all = ReadFaultSpec::parse("0a.0011").unwrap();
        assert_eq!((all.fault.scope, all.fault.reads), (ReadScope::All, None));
        assert!(ReadFaultSpec::parse("0a.0011:0").is_err());
        assert!(ReadFaultSpec::parse("0a.0011:sym").is_err());
        assert!(ReadFaultSpec::parse("10.17").is_err());
    }
}
