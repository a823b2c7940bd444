//! `Apqn`: an adapter/domain pair, parsed from every notation the plan accepts and shown in
//! both the lszcrypt form and decimal, so nobody has to convert in their head.

use std::fmt;

use serde_json::Value;

/// An adapter (card) and domain, each 0..255.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Apqn {
    adapter: u8,
    domain: u8,
}

impl Apqn {
    pub fn new(adapter: u8, domain: u8) -> Self {
        Self { adapter, domain }
    }

    pub fn adapter(self) -> u8 {
        self.adapter
    }

    pub fn domain(self) -> u8 {
        self.domain
    }

    /// `0a.0011`: lszcrypt's notation and the sysfs queue directory name (`%02x.%04x`).
    pub fn lszcrypt(self) -> String {
        format!("{:02x}.{:04x}", self.adapter, self.domain)
    }

    /// Parses a plan value: an lszcrypt string or `{adapter, domain}`. Errors are
    /// `(relative pointer, message, hint)` so the caller can place them.
    pub fn from_plan_value(value: &Value) -> Result<Self, Vec<ApqnError>> {
        match value {
            Value::String(text) => parse_lszcrypt(text).map_err(|e| vec![e]),
            Value::Object(map) => {
                let adapter = number_field(map.get("adapter"), "adapter");
                let domain = number_field(map.get("domain"), "domain");
                match (adapter, domain) {
                    (Ok(a), Ok(d)) => Ok(Self::new(a, d)),
                    (a, d) => Err([a.err(), d.err()].into_iter().flatten().collect()),
                }
            }
            _ => Err(vec![ApqnError::new(
                "",
                "an APQN is `\"0a.0011\"` (lszcrypt) or `{adapter: 10, domain: 17}`",
            )]),
        }
    }
}

/// `0a.0011 (adapter 10, domain 17)`.
impl fmt::Display for Apqn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (adapter {}, domain {})",
            self.lszcrypt(),
            self.adapter,
            self.domain
        )
    }
}

/// A problem with one part of an APQN, relative to the APQN's own pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApqnError {
    pub relative_pointer: &'static str,
    pub message: String,
    pub hint: Option<String>,
}

impl ApqnError {
    fn new(relative_pointer: &'static str, message: impl Into<String>) -> Self {
        Self {
            relative_pointer,
            message: message.into(),
            hint: None,
        }
    }

    fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

fn parse_lszcrypt(text: &str) -> Result<Apqn, ApqnError> {
    let shape = "lszcrypt notation is two hex digits of card, a dot and four hex digits of domain, e.g. `0a.0011`";
    let Some((card, domain)) = text.split_once('.') else {
        return Err(ApqnError::new("", format!("`{text}` is not an APQN"))
            .hint(format!("{shape}; or write `{{adapter: …, domain: …}}`")));
    };
    let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    if card.len() != 2 || domain.len() != 4 || !hex(card) || !hex(domain) {
        let mut error = ApqnError::new("", format!("`{text}` is not lszcrypt notation"));
        if hex(card) && hex(domain) && card.len() <= 2 && domain.len() <= 4 {
            let (c, d) = (
                u32::from_str_radix(card, 16).unwrap_or(0),
                u32::from_str_radix(domain, 16).unwrap_or(0),
            );
            error = error.hint(format!(
                "{shape}; pad with zeros: `{c:02x}.{d:04x}` (both parts are hex)"
            ));
        } else {
            error = error.hint(shape);
        }
        return Err(error);
    }
    let card = u16::from_str_radix(card, 16).expect("two hex digits");
    let domain_value = u32::from_str_radix(domain, 16).expect("four hex digits");
    let domain = u8::try_from(domain_value).map_err(|_| {
        ApqnError::new(
            "",
            format!("domain 0x{domain} ({domain_value}) in `{text}` is out of range 0..255"),
        )
    })?;
    Ok(Apqn::new(card as u8, domain))
}

fn number_field(value: Option<&Value>, field: &'static str) -> Result<u8, ApqnError> {
    let pointer = if field == "adapter" {
        "/adapter"
    } else {
        "/domain"
    };
    let value = value.ok_or_else(|| ApqnError::new("", format!("missing `{field}`")))?;
    let number = match value {
        Value::Number(n) if n.is_f64() => {
            let whole = n
                .as_f64()
                .filter(|v| v.fract() == 0.0 && (0.0..=255.0).contains(v));
            let hint = match whole {
                Some(v) => format!("write `{v}`: YAML reads `{n}` as a fractional number"),
                None => "write a whole number 0..255".to_owned(),
            };
            return Err(
                ApqnError::new(pointer, format!("{field} `{n}` must be an integer")).hint(hint),
            );
        }
        Value::Number(n) => n.as_u64().ok_or_else(|| {
            ApqnError::new(pointer, format!("{field} `{n}` is out of range 0..255"))
        })?,
        Value::String(text) => parse_number_text(text).map_err(|(message, hint)| {
            ApqnError::new(pointer, format!("{field} {message}")).hint(hint)
        })?,
        _ => {
            return Err(ApqnError::new(
                pointer,
                format!("{field} must be a number 0..255"),
            ));
        }
    };
    u8::try_from(number)
        .map_err(|_| ApqnError::new(pointer, format!("{field} {number} is out of range 0..255")))
}

/// Decimal, `0x` hex or leading-`0` octal, strictly (the whole text).
fn parse_number_text(text: &str) -> Result<u64, (String, String)> {
    let notations = "write decimal (`10`), hex (`0x0a`) or octal with a leading zero (`012`)";
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        return parse_hex(text, hex, notations);
    }
    if let Some(octal) = text.strip_prefix("0o").or_else(|| text.strip_prefix("0O")) {
        let hint = match u64::from_str_radix(octal, 8) {
            Ok(value) => format!(
                "write octal with a leading zero, as the tool does (`0{}`), or decimal `{value}`",
                octal.trim_start_matches('0')
            ),
            Err(_) => notations.to_owned(),
        };
        return Err((
            format!("`{text}` is YAML's octal notation, which `pkcsep11_migrate` does not know"),
            hint,
        ));
    }
    if text.len() > 1 && text.starts_with('0') {
        if text.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return u64::from_str_radix(text, 8)
                .map_err(|_| (format!("`{text}` is not a number"), notations.to_owned()));
        }
        if text.bytes().all(|b| b.is_ascii_digit()) {
            let octal_prefix: String = text
                .chars()
                .take_while(|c| ('0'..='7').contains(c))
                .collect();
            let tool_reads = u64::from_str_radix(&octal_prefix, 8).unwrap_or(0);
            let decimal = text.trim_start_matches('0');
            let decimal = if decimal.is_empty() { "0" } else { decimal };
            return Err((
                format!("`{text}` is not a valid octal number"),
                format!(
                    "a leading zero means octal, and octal has no digit 8 or 9; the released \
                     pkcsep11_migrate silently reads `{text}` as {tool_reads}; write `{decimal}` for decimal"
                ),
            ));
        }
    }
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse()
            .map_err(|_| (format!("`{text}` is too large"), notations.to_owned()));
    }
    Err((format!("`{text}` is not a number"), notations.to_owned()))
}

/// `0x` and one or two hex digits. Longer hex is refused even when it fits (`0x00a`): the
/// schema's pattern allows two digits, and the two must agree.
fn parse_hex(text: &str, digits: &str, notations: &str) -> Result<u64, (String, String)> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err((
            format!("`{text}` is not a hex number"),
            notations.to_owned(),
        ));
    }
    let significant = digits.trim_start_matches('0');
    let value = u64::from_str_radix(significant, 16).ok();
    match value {
        _ if significant.is_empty() && digits.len() <= 2 => Ok(0),
        Some(value) if value <= 255 && digits.len() <= 2 => Ok(value),
        Some(value) if value <= 255 => Err((
            format!("`{text}` has more than two hex digits"),
            format!("write at most two hex digits: `{value:#04x}`"),
        )),
        Some(value) => Err((
            format!("`{text}` ({value}) is out of range 0..255"),
            "the largest adapter or domain number is 255 (`0xff`)".to_owned(),
        )),
        None if significant.is_empty() => Err((
            format!("`{text}` has more than two hex digits"),
            "write at most two hex digits: `0x00`".to_owned(),
        )),
        None => Err((
            format!("`{text}` is out of range 0..255"),
            "the largest adapter or domain number is 255 (`0xff`)".to_owned(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Apqn, Vec<ApqnError>> {
        Apqn::from_plan_value(&v)
    }

    #[test]
    fn every_notation_gives_the_same_apqn() {
        let want = Apqn::new(10, 17);
        assert_eq!(parse(json!("0a.0011")).unwrap(), want);
        assert_eq!(parse(json!("0A.0011")).unwrap(), want);
        assert_eq!(parse(json!({"adapter": 10, "domain": 17})).unwrap(), want);
        assert_eq!(
            parse(json!({"adapter": "0x0a", "domain": "021"})).unwrap(),
            want
        );
        assert_eq!(
            parse(json!({"adapter": "10", "domain": "0x11"})).unwrap(),
            want
        );
        assert_eq!(want.to_string(), "0a.0011 (adapter 10, domain 17)");
    }

    #[test]
    fn bad_notations_are_refused_with_a_reason() {
        let e = parse(json!({"adapter": "08", "domain": 1})).unwrap_err();
        assert!(e[0].hint.as_deref().unwrap().contains("reads `08` as 0"));
        assert!(parse(json!({"adapter": 256, "domain": 1})).is_err());
        assert!(
            parse(json!("0a.11")).unwrap_err()[0]
                .hint
                .as_deref()
                .unwrap()
                .contains("0a.0011")
        );
        assert!(parse(json!("0a.0100")).is_err());
        assert!(parse(json!({"adapter": "12abc", "domain": 1})).is_err());
        assert!(parse(json!({"adapter": "", "domain": 1})).is_err());
        let e = parse(json!({"adapter": "0o12", "domain": 1})).unwrap_err();
        assert_eq!(
            e[0].message,
            "adapter `0o12` is YAML's octal notation, which `pkcsep11_migrate` does not know"
        );
        assert_eq!(
            e[0].hint.as_deref(),
            Some("write octal with a leading zero, as the tool does (`012`), or decimal `10`")
        );
    }

    #[test]
    fn a_fraction_must_be_an_integer_and_a_negative_is_out_of_range() {
        let e = parse(json!({"adapter": 8.0, "domain": -1})).unwrap_err();
        assert_eq!(e[0].message, "adapter `8.0` must be an integer");
        assert_eq!(
            e[0].hint.as_deref(),
            Some("write `8`: YAML reads `8.0` as a fractional number")
        );
        assert_eq!(e[1].message, "domain `-1` is out of range 0..255");
        let e = parse(json!({"adapter": 8.5, "domain": 256.0})).unwrap_err();
        assert_eq!(e[0].hint.as_deref(), Some("write a whole number 0..255"));
        assert_eq!(e[1].message, "domain `256.0` must be an integer");
    }

    #[test]
    fn long_hex_is_out_of_range_or_too_many_digits() {
        let message = |text: &str| parse_number_text(text).unwrap_err().0;
        assert_eq!(message("0x1ff"), "`0x1ff` (511) is out of range 0..255");
        assert_eq!(
            message("0x10000000000000000"),
            "`0x10000000000000000` is out of range 0..255"
        );
        assert_eq!(message("0x00a"), "`0x00a` has more than two hex digits");
        assert_eq!(
            parse_number_text("0x00a").unwrap_err().1,
            "write at most two hex digits: `0x0a`"
        );
        assert_eq!(message("0x000"), "`0x000` has more than two hex digits");
        assert_eq!(message("0xg1"), "`0xg1` is not a hex number");
        assert_eq!(parse_number_text("0x00"), Ok(0));
        assert_eq!(parse_number_text("0xFF"), Ok(255));
        let e = parse(json!({"adapter": 1, "domain": "0x1ff"})).unwrap_err();
        assert_eq!(e[0].message, "domain `0x1ff` (511) is out of range 0..255");
    }

    #[test]
    fn text_notation_agrees_with_the_schema_pattern() {
        let pattern = regex_lite(crate::raw::NUMBER_TEXT_PATTERN);
        for text in [
            "0", "7", "10", "255", "256", "0x0a", "0xff", "0x100", "0x00a", "0x1ff", "0x000",
            "0x0", "0x", "0xg", "012", "0377", "0400", "08", "09", "018", "abc", "1a", "",
        ] {
            let parsed = parse_number_text(text).ok().filter(|n| *n <= 255);
            assert_eq!(pattern(text), parsed.is_some(), "{text}");
        }
    }

    /// The schema's pattern applied with the same validator the plan goes through.
    fn regex_lite(pattern: &str) -> impl Fn(&str) -> bool {
        let schema = json!({"type": "string", "pattern": pattern});
        let validator = jsonschema::validator_for(&schema).unwrap();
        move |text| validator.is_valid(&json!(text))
    }
}
