//! `pkcshsm_mk_change`'s command line (opencryptoki-ep11.md 2.1): the command is argv[1],
//! then GNU `getopt_long` with `"a:e:s:S:A:p:i:v:h"` (options in any order, `--name=value`
//! or `--name value`, unique prefixes of long names, `--` ends the options, arguments that
//! are not options are collected and refused afterwards). Every diagnostic is `warnx`'s
//! `pkcshsm_mk_change: …` on stderr and exit 1; getopt's own messages start with argv[0].
//! Messages the reference quotes are kept to the letter; the others (a missing command, `-i`
//! with `reencipher`, a bad `-v` level, a non-hex pattern) are the simulator's wording.

use std::collections::BTreeMap;

use crate::cca::{MkType, Mkvp};
use crate::mkchange_ops::ToolApqn;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Command {
    Reencipher,
    Finalize,
    Cancel,
    List,
}

impl Command {
    pub fn name(self) -> &'static str {
        match self {
            Command::Reencipher => "reencipher",
            Command::Finalize => "finalize",
            Command::Cancel => "cancel",
            Command::List => "list",
        }
    }
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Args {
    pub command: Command,
    pub apqns: Vec<ToolApqn>,
    pub ep11_wkvp: Option<[u8; 16]>,
    pub cca: BTreeMap<MkType, Mkvp>,
    pub id: Option<String>,
    /// Warnings printed before the command runs (`… remaining bytes are ignored`).
    pub warnings: Vec<String>,
}

/// What parsing decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Parsed {
    Run(Args),
    Exit {
        code: i32,
        stdout: String,
        stderr: String,
    },
}

const WARNX: &str = "pkcshsm_mk_change: ";
const LEVELS: [&str; 6] = ["none", "error", "warn", "info", "devel", "debug"];

/// (long name, short letter, takes an argument).
const LONG: [(&str, char, bool); 9] = [
    ("apqns", 'a', true),
    ("ep11-wkvp", 'e', true),
    ("cca-sym-mkvp", 's', true),
    ("cca-asym-mkvp", 'S', true),
    ("cca-aes-mkvp", 'A', true),
    ("cca-apka-mkvp", 'p', true),
    ("id", 'i', true),
    ("verbose", 'v', true),
    ("help", 'h', false),
];

pub(crate) fn usage() -> String {
    "Usage: pkcshsm_mk_change COMMAND [OPTIONS]\n\n\
     Manage concurrent HSM master key change operations (mkplan-sim stand-in).\n\n\
     COMMANDS:\n  \
       reencipher   Re-encipher all keys of the affected tokens with the new master key(s)\n  \
       finalize     Finalize a master key change operation\n  \
       cancel       Cancel a master key change operation\n  \
       list         List master key change operations\n\n\
     OPTIONS:\n  \
       -a, --apqns APQNS          APQNs (card.domain, hex), separated by commas or spaces\n  \
       -e, --ep11-wkvp WKVP       New EP11 wrapping key verification pattern (16 bytes)\n  \
       -s, --cca-sym-mkvp MKVP    New CCA SYM master key verification pattern (8 bytes)\n  \
       -S, --cca-asym-mkvp MKVP   New CCA ASYM master key verification pattern (8 bytes)\n  \
       -A, --cca-aes-mkvp MKVP    New CCA AES master key verification pattern (8 bytes)\n  \
       -p, --cca-apka-mkvp MKVP   New CCA APKA master key verification pattern (8 bytes)\n  \
       -i, --id OPID              The ID of the operation (finalize, cancel, list)\n  \
       -v, --verbose LEVEL        none, error, warn, info, devel, debug\n  \
       -h, --help                 Print this help and exit\n"
        .to_owned()
}

fn fail(stderr: String) -> Parsed {
    Parsed::Exit {
        code: 1,
        stdout: String::new(),
        stderr,
    }
}

fn warnx(text: &str) -> Parsed {
    fail(format!("{WARNX}{text}\n"))
}

/// One option as getopt returns it: its letter and argument.
type Opt = (char, Option<String>);

/// Parses `args` (without argv[0]).
pub(crate) fn parse(argv0: &str, args: &[String]) -> Parsed {
    let command = match args.first() {
        Some(first) if !first.starts_with('-') => Some(first.as_str()),
        _ => None,
    };
    let command = match command {
        Some("reencipher") => Some(Command::Reencipher),
        Some("finalize") => Some(Command::Finalize),
        Some("cancel") => Some(Command::Cancel),
        Some("list") => Some(Command::List),
        Some(other) => return warnx(&format!("unrecognized command '{other}'")),
        None => None,
    };
    let start = usize::from(command.is_some());
    let (options, positional) = match getopt(argv0, &args[start..]) {
        Ok(parsed) => parsed,
        Err(exit) => return exit,
    };
    if options.iter().any(|(c, _)| *c == 'h') {
        return Parsed::Exit {
            code: 0,
            stdout: usage(),
            stderr: String::new(),
        };
    }
    let Some(command) = command else {
        return warnx("a command is required; use '-h' or '--help' for help");
    };
    let mut parsed = Args {
        command,
        apqns: Vec::new(),
        ep11_wkvp: None,
        cca: BTreeMap::new(),
        id: None,
        warnings: Vec::new(),
    };
    for (letter, value) in options {
        if let Err(exit) = apply(&mut parsed, letter, value.unwrap_or_default()) {
            return exit;
        }
    }
    if let Some(extra) = positional.first() {
        return warnx(&format!("unrecognized option '{extra}'"));
    }
    let cmd = command.name();
    match command {
        Command::Reencipher if parsed.apqns.is_empty() => warnx(&format!(
            "option -a/--apqns is required for the '{cmd}' command"
        )),
        Command::Reencipher if parsed.ep11_wkvp.is_none() && parsed.cca.is_empty() => {
            warnx("at least one master key verification pattern must be specified")
        }
        Command::Finalize | Command::Cancel if parsed.id.is_none() => warnx(&format!(
            "option -i/--id is required for the '{cmd}' command"
        )),
        _ => Parsed::Run(parsed),
    }
}

/// GNU getopt_long over `args`: the options in order and the other arguments.
fn getopt(argv0: &str, args: &[String]) -> Result<(Vec<Opt>, Vec<String>), Parsed> {
    let mut options = Vec::new();
    let mut positional = Vec::new();
    // The arguments still to read (an option's value may take the next one).
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let result = if arg == "--" {
            positional.extend(rest.by_ref().cloned());
            break;
        } else if let Some(long) = arg.strip_prefix("--") {
            long_option(arg, long, &mut rest).map(|opt| options.push(opt))
        } else if arg.len() > 1 && arg.starts_with('-') {
            short_options(&arg[1..], &mut rest, &mut options)
        } else {
            positional.push(arg.clone());
            Ok(())
        };
        result.map_err(|text| fail(format!("{argv0}: {text}\n")))?;
    }
    Ok((options, positional))
}

/// `--name`, `--name=value` or `--name value`; a unique prefix of a name will do.
fn long_option<'a>(
    arg: &str,
    long: &str,
    rest: &mut impl Iterator<Item = &'a String>,
) -> Result<Opt, String> {
    let (name, inline) = match long.split_once('=') {
        Some((n, v)) => (n, Some(v.to_owned())),
        None => (long, None),
    };
    let exact = LONG.iter().find(|(n, _, _)| *n == name);
    let matches: Vec<_> = LONG
        .iter()
        .filter(|(n, _, _)| n.starts_with(name))
        .collect();
    let &(full, letter, takes) = match (exact, matches.as_slice()) {
        (Some(found), _) => found,
        (None, [one]) => *one,
        (None, []) => return Err(format!("unrecognized option '{arg}'")),
        (None, many) => {
            let names: Vec<String> = many.iter().map(|(n, _, _)| format!("'--{n}'")).collect();
            return Err(format!(
                "option '--{name}' is ambiguous; possibilities: {}",
                names.join(" ")
            ));
        }
    };
    let value = match (takes, inline) {
        (false, Some(_)) => return Err(format!("option '--{full}' doesn't allow an argument")),
        (false, None) => None,
        (true, Some(v)) => Some(v),
        (true, None) => Some(
            rest.next()
                .cloned()
                .ok_or_else(|| format!("option '--{full}' requires an argument"))?,
        ),
    };
    Ok((letter, value))
}

/// `-h`, `-hv LEVEL`, `-aVALUE`, `-a VALUE`: letters, the first that takes a value ends the
/// cluster.
fn short_options<'a>(
    letters: &str,
    rest: &mut impl Iterator<Item = &'a String>,
    options: &mut Vec<Opt>,
) -> Result<(), String> {
    for (at, c) in letters.char_indices() {
        let Some(&(_, _, takes)) = LONG.iter().find(|(_, l, _)| *l == c) else {
            return Err(format!("invalid option -- '{c}'"));
        };
        if !takes {
            options.push((c, None));
            continue;
        }
        let inline = &letters[at + c.len_utf8()..];
        let value = if inline.is_empty() {
            rest.next()
                .cloned()
                .ok_or_else(|| format!("option requires an argument -- '{c}'"))?
        } else {
            inline.to_owned()
        };
        options.push((c, Some(value)));
        break;
    }
    Ok(())
}

/// The option's effect, or the tool's refusal.
fn apply(parsed: &mut Args, letter: char, value: String) -> Result<(), Parsed> {
    let (long, _, _) = LONG
        .iter()
        .find(|(_, l, _)| *l == letter)
        .expect("known letter");
    let option = format!("-{letter}/--{long}");
    let reencipher_only = "aesSAp".contains(letter);
    if reencipher_only && parsed.command != Command::Reencipher {
        return Err(warnx(&format!(
            "option {option} is only valid for the 'reencipher' command"
        )));
    }
    match letter {
        'a' => parsed.apqns.extend(parse_apqns(&value)?),
        'e' => {
            let bytes = pattern(&option, &value, 16, &mut parsed.warnings)?;
            parsed.ep11_wkvp = Some(bytes.try_into().expect("16 bytes"));
        }
        's' | 'S' | 'A' | 'p' => {
            let mk = match letter {
                's' => MkType::Sym,
                'S' => MkType::Asym,
                'A' => MkType::Aes,
                _ => MkType::Apka,
            };
            let bytes = pattern(&option, &value, 8, &mut parsed.warnings)?;
            parsed
                .cca
                .insert(mk, Mkvp::new(bytes.try_into().expect("8 bytes")));
        }
        'i' if parsed.command == Command::Reencipher => {
            return Err(warnx(&format!(
                "option {option} is not valid for the 'reencipher' command"
            )));
        }
        'i' => parsed.id = Some(value),
        'v' if !LEVELS.contains(&value.as_str()) => {
            return Err(warnx(&format!(
                "invalid verbose level '{value}'; use one of: {}",
                LEVELS.join(", ")
            )));
        }
        _ => {}
    }
    Ok(())
}

/// `-a`: entries separated by commas and/or spaces, each `sscanf("%x.%x")`: hex card ≤ 0xFF
/// and domain ≤ 0xFFFF, an optional `0x` on each, anything after the domain ignored.
fn parse_apqns(list: &str) -> Result<Vec<ToolApqn>, Parsed> {
    let mut apqns = Vec::new();
    for entry in list.split([',', ' ', '\t', '\n']).filter(|e| !e.is_empty()) {
        let scanned = scan_hex(entry).and_then(|(card, rest)| {
            let (domain, _) = scan_hex(rest.strip_prefix('.')?)?;
            Some((u8::try_from(card).ok()?, u16::try_from(domain).ok()?))
        });
        match scanned {
            Some(apqn) => apqns.push(apqn),
            None => return Err(warnx(&format!("Invalid APQN specification: {entry}"))),
        }
    }
    Ok(apqns)
}

/// scanf's `%x`: leading blanks, an optional `0x`, one or more hex digits.
fn scan_hex(text: &str) -> Option<(u64, &str)> {
    let text = text.trim_start();
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .filter(|rest| rest.starts_with(|c: char| c.is_ascii_hexdigit()))
        .unwrap_or(text);
    let end = digits
        .find(|c: char| !c.is_ascii_hexdigit())
        .unwrap_or(digits.len());
    if end == 0 {
        return None;
    }
    let value = u64::from_str_radix(&digits[..end.min(16)], 16).ok()?;
    Some((value, &digits[end..]))
}

/// A pattern of `bytes` bytes: an optional `0x`, at least that many hex pairs (more are
/// ignored with a warning), each pair read as `%02x` reads it (one digit will do).
fn pattern(
    option: &str,
    text: &str,
    bytes: usize,
    warnings: &mut Vec<String>,
) -> Result<Vec<u8>, Parsed> {
    let hex = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    if hex.len() < bytes * 2 {
        return Err(warnx(&format!(
            "option {option} must specify at least {bytes} bytes"
        )));
    }
    if hex.len() > bytes * 2 {
        warnings.push(format!(
            "{WARNX}option {option} specifies more than {bytes} bytes, remaining bytes are ignored"
        ));
    }
    let digit = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes);
    for pair in hex.as_bytes()[..bytes * 2].chunks(2) {
        let value = match (digit(pair[0]), digit(pair[1])) {
            (Some(high), Some(low)) => high * 16 + low,
            (Some(only), None) => only,
            _ => return Err(warnx(&format!("option {option} must specify a hex string"))),
        };
        out.push(u8::try_from(value).expect("two hex digits"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(list: &[&str]) -> Parsed {
        let args: Vec<String> = list.iter().map(|s| (*s).to_owned()).collect();
        parse("/usr/sbin/pkcshsm_mk_change", &args)
    }

    fn stderr(parsed: Parsed) -> String {
        match parsed {
            Parsed::Exit {
                code: 1, stderr, ..
            } => stderr,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn getopt_long_forms() {
        let wkvp = "9b7d4e0a11f35c8822d0b6e4a7f1c3d9";
        let Parsed::Run(args) = run(&[
            "reencipher",
            "--apq=0a.0011 0b.0011",
            "-e",
            wkvp,
            "-a0c.11xyz",
            "--cca-aes-mkvp",
            "0x1122334455667788",
        ]) else {
            panic!()
        };
        assert_eq!(args.apqns, vec![(10, 17), (11, 17), (12, 17)]);
        assert_eq!(hex::encode(args.ep11_wkvp.unwrap()), wkvp);
        assert_eq!(args.cca[&MkType::Aes].to_string(), "0x1122334455667788");
        let Parsed::Run(list) = run(&["list", "-v", "debug", "-iAbC123"]) else {
            panic!()
        };
        assert_eq!(list.id.as_deref(), Some("AbC123"));
        assert!(matches!(
            run(&["finalize", "-h", "--bogus"]),
            Parsed::Exit { code: 1, .. }
        ));
        assert!(matches!(run(&["-h"]), Parsed::Exit { code: 0, .. }));
    }

    #[test]
    fn refusals_have_the_tools_words() {
        let w = "9b7d4e0a11f35c8822d0b6e4a7f1c3d9";
        for (argv, want) in [
            (
                vec!["rekey"],
                "pkcshsm_mk_change: unrecognized command 'rekey'\n",
            ),
            (
                vec!["finalize", "-a", "0a.0011"],
                "pkcshsm_mk_change: option -a/--apqns is only valid for the 'reencipher' command\n",
            ),
            (
                vec!["reencipher", "-e", w],
                "pkcshsm_mk_change: option -a/--apqns is required for the 'reencipher' command\n",
            ),
            (
                vec!["reencipher", "-a", "0a.0011"],
                "pkcshsm_mk_change: at least one master key verification pattern must be specified\n",
            ),
            (
                vec!["reencipher", "-a", "0a.0011", "-e", &w[..30]],
                "pkcshsm_mk_change: option -e/--ep11-wkvp must specify at least 16 bytes\n",
            ),
            (
                vec!["reencipher", "-a", "0x100.1", "-e", w],
                "pkcshsm_mk_change: Invalid APQN specification: 0x100.1\n",
            ),
            (
                vec!["reencipher", "-a", "0a-0011", "-e", w],
                "pkcshsm_mk_change: Invalid APQN specification: 0a-0011\n",
            ),
            (
                vec!["cancel"],
                "pkcshsm_mk_change: option -i/--id is required for the 'cancel' command\n",
            ),
            (
                vec!["list", "extra"],
                "pkcshsm_mk_change: unrecognized option 'extra'\n",
            ),
            (
                vec!["reencipher", "--ep11wkvp", w],
                "/usr/sbin/pkcshsm_mk_change: unrecognized option '--ep11wkvp'\n",
            ),
            (
                vec!["list", "--cca", "x"],
                "/usr/sbin/pkcshsm_mk_change: option '--cca' is ambiguous; possibilities: '--cca-sym-mkvp' '--cca-asym-mkvp' '--cca-aes-mkvp' '--cca-apka-mkvp'\n",
            ),
            (
                vec!["list", "-i"],
                "/usr/sbin/pkcshsm_mk_change: option requires an argument -- 'i'\n",
            ),
        ] {
            assert_eq!(stderr(run(&argv)), want, "{argv:?}");
        }
        let Parsed::Run(long) = run(&["reencipher", "-a", "0a.0011", "-e", &format!("{w}ff")])
        else {
            panic!()
        };
        assert_eq!(
            long.warnings,
            [
                "pkcshsm_mk_change: option -e/--ep11-wkvp specifies more than 16 bytes, remaining bytes are ignored"
            ]
        );
    }
}
