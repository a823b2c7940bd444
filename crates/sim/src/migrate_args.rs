//! `pkcsep11_migrate`'s command line as the released versions (3.3 – 3.27.0) parse it
//! (opencryptoki-ep11.md 1.1, `do_ParseArgs`): exact-string options, the `isdigit` check on
//! the first character only, then `(int) strtol(value, NULL, 0)`: decimal, `0x` hex and
//! leading-`0` octal, trailing junk ignored (`08` → 0, `12abc` → 12). Every message goes to
//! stdout; errors exit 255 (−1); a value option given last dereferences `argv[argc]` (NULL)
//! and crashes.

/// What parsing decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// Go on with these values (`CK_SLOT_ID` is unsigned, adapter and domain are `CK_LONG`).
    Run {
        slot: u64,
        adapter: i64,
        domain: i64,
    },
    /// Print `stdout` and exit with `code` (usage: 0, errors: 255).
    Exit { code: i32, stdout: String },
    /// The NULL dereference of a value option given last: SIGSEGV.
    Crash,
}

/// The usage text, with the program name as invoked.
pub(crate) fn usage(argv0: &str) -> String {
    format!("usage:  {argv0} [-slot <num>] [-adapter <num>] [-domain <num>] [-h]\n\n")
}

/// Parses `args` (without argv[0]) the way the released tool does.
pub(crate) fn parse(argv0: &str, args: &[String]) -> Parsed {
    let error = |text: &str| Parsed::Exit {
        code: 255,
        stdout: format!("{text}\n"),
    };
    if args.is_empty() {
        return error("No Arguments given. For help use the '--help' or '-h' option.");
    }
    // `CK_SLOT_ID SLOT_ID = -1; CK_LONG adapter = -1, domain = -1;`
    let (mut slot, mut adapter, mut domain) = (u64::MAX, -1i64, -1i64);
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        let (name, target) = match arg {
            "-h" | "--help" => {
                return Parsed::Exit {
                    code: 0,
                    stdout: usage(argv0),
                };
            }
            "-slot" => ("Slot", 0),
            "-adapter" => ("Adapter", 1),
            "-domain" => ("Domain", 2),
            other => {
                return Parsed::Exit {
                    code: 255,
                    stdout: format!(
                        "Invalid argument passed as option: {other}\n{}",
                        usage(argv0)
                    ),
                };
            }
        };
        let Some(value) = args.get(i + 1) else {
            return Parsed::Crash;
        };
        if !value.as_bytes().first().is_some_and(u8::is_ascii_digit) {
            return error(&format!("{name} parameter is not numeric!"));
        }
        // `(int) strtol(…)`, then widened to the variable's type (sign-extended).
        let number = i64::from(strtol_base0(value) as i32);
        match target {
            0 => slot = number as u64,
            1 => adapter = number,
            _ => domain = number,
        }
        i += 2;
    }
    if slot == u64::MAX {
        return error("Slot-ID not set!");
    }
    if adapter == -1 {
        return error("Adapter-ID not set!");
    }
    if domain == -1 {
        return error("Domain-ID not set!");
    }
    Parsed::Run {
        slot,
        adapter,
        domain,
    }
}

/// C's `strtol(text, NULL, 0)`: leading blanks, a sign, then `0x`/`0X` + hex, `0` + octal, or
/// decimal; it stops at the first character that does not fit; out of range saturates to
/// `LONG_MAX`/`LONG_MIN` (64-bit `long`).
pub(crate) fn strtol_base0(text: &str) -> i64 {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() && matches!(bytes[i], b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
        i += 1;
    }
    let negative = match bytes.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let base = if bytes.get(i) == Some(&b'0')
        && matches!(bytes.get(i + 1), Some(b'x' | b'X'))
        && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
    {
        i += 2;
        16
    } else if bytes.get(i) == Some(&b'0') {
        8
    } else {
        10
    };
    let mut value: i128 = 0;
    let mut overflow = false;
    while let Some(digit) = bytes.get(i).and_then(|b| (*b as char).to_digit(base)) {
        value = value * i128::from(base) + i128::from(digit);
        if value > i128::from(i64::MAX) + 1 {
            overflow = true;
            value = i128::from(i64::MAX) + 1;
        }
        i += 1;
    }
    match (negative, overflow || value > i128::from(i64::MAX)) {
        (false, true) => i64::MAX,
        (true, _) if value > i128::from(i64::MAX) => i64::MIN,
        (true, _) => -(value as i64),
        (false, false) => value as i64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn run(list: &[&str]) -> Parsed {
        parse("pkcsep11_migrate", &args(list))
    }

    #[test]
    fn base_zero_numbers_as_strtol_reads_them() {
        for (text, want) in [
            ("10", 10),
            ("0x0a", 10),
            ("0X1F", 31),
            ("012", 10),
            ("08", 0),
            ("09", 0),
            ("12abc", 12),
            ("0x", 0),
            ("0xg", 0),
            ("0", 0),
            ("99999999999999999999", i64::MAX),
            ("-5", -5),
        ] {
            assert_eq!(strtol_base0(text), want, "{text}");
        }
    }

    #[test]
    fn the_released_parser_quirks() {
        assert_eq!(
            run(&["-slot", "4", "-adapter", "08", "-domain", "0x11"]),
            Parsed::Run {
                slot: 4,
                adapter: 0,
                domain: 17
            }
        );
        assert_eq!(
            run(&[
                "-domain", "1", "-domain", "021", "-slot", "4", "-adapter", "12abc"
            ]),
            Parsed::Run {
                slot: 4,
                adapter: 12,
                domain: 17
            }
        );
        let exit = |code: i32, text: &str| Parsed::Exit {
            code,
            stdout: text.to_owned(),
        };
        assert_eq!(
            run(&[]),
            exit(
                255,
                "No Arguments given. For help use the '--help' or '-h' option.\n"
            )
        );
        assert_eq!(
            run(&["-slot", "x"]),
            exit(255, "Slot parameter is not numeric!\n")
        );
        assert_eq!(
            run(&["-adapter", ""]),
            exit(255, "Adapter parameter is not numeric!\n")
        );
        assert_eq!(
            run(&["-slot", "4", "-adapter", "1"]),
            exit(255, "Domain-ID not set!\n")
        );
        assert_eq!(
            run(&["-adapter", "1", "-domain", "1"]),
            exit(255, "Slot-ID not set!\n")
        );
        assert_eq!(
            run(&["-slot", "4294967295", "-adapter", "1", "-domain", "1"]),
            exit(255, "Slot-ID not set!\n"),
            "(int) -1 is the unset marker"
        );
        assert_eq!(
            run(&["--slot", "4"]),
            exit(
                255,
                &format!(
                    "Invalid argument passed as option: --slot\n{}",
                    usage("pkcsep11_migrate")
                )
            )
        );
        assert_eq!(
            run(&["-slot", "4", "-h", "-bogus"]),
            exit(0, &usage("pkcsep11_migrate"))
        );
        assert_eq!(run(&["-slot", "4", "-domain"]), Parsed::Crash);
    }
}
