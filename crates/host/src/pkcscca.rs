//! The output of `pkcscca -m keys` (opencryptoki-ep11.md 5), parsed exactly as
//! `usr/sbin/pkcscca/pkcscca.c` prints it, from the pty that carries both PIN prompts: stdout
//! and stderr arrive mixed. The tool exits 0 even when keys failed or the key search failed,
//! so the summary is the verdict, and output that is not one of the tool's lines is an error.
//!
//! What the tool prints, in order:
//! * `Enter the SO PIN: ` and `Enter the USER PIN: `, each ended by a newline after the read;
//! * per key: `Skipping, <ALG> token is  wrapped with current master key. label=<l>,
//!   handle=<h>` (two spaces, as printed), `Skipping key, its a public key. …`, `… its not an
//!   old RSA key. …`, `… its not an new RSA key. …`; with `-v`: `Search for <ALG> keys` and
//!   `Successfully migrated <ALG> key. label=…, handle=…`;
//! * on stderr: `<file>:<line> <message>` (`cca_error`, `p11_error`: ended by a newline;
//!   `print_error`: not, so `Migrating <ALG> key failed. label=…, handle=<h>` runs into
//!   whatever follows);
//! * the summary, printed only when the search and the write-back worked:
//!   `Successfully migrated: ` if any key counted, then `<ALG>: <n>. ` per nonzero count, then
//!   `\nFailed to migrate: ` and its counts if any failed, then `\n`. With no keys at all the
//!   summary is the bare newline: an empty last line.

use mkplan_engine::record::pkcscca::{KeyCount, KeyRef, PkcsccaSummary, SkipReason, SkippedKey};

/// Output that is not what `pkcscca -m keys` prints: the outcome is unknown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PkcsccaOutputError {
    #[error(
        "pkcscca printed no summary (`Successfully migrated:` / `Failed to migrate:`, or the \
         bare newline of a run with no keys): the key search or the write-back failed, though \
         it exits 0; the token store may be partly rewritten{}",
        last_error.as_deref().map(|e| format!("; its last error: {e}")).unwrap_or_default()
    )]
    NoSummary { last_error: Option<String> },
    #[error(
        "pkcscca output line {line} `{text}`: {problem}; this is not what `pkcscca -m keys` \
         prints, so its outcome is unknown"
    )]
    Line {
        line: usize,
        text: String,
        problem: String,
    },
}

const SO_PROMPT: &str = "Enter the SO PIN: ";
const USER_PROMPT: &str = "Enter the USER PIN: ";
const SUCCESS: &str = "Successfully migrated: ";
const FAILED: &str = "Failed to migrate: ";

/// Parses the whole transcript of one run.
pub fn parse_migrate_output(output: &str) -> Result<PkcsccaSummary, PkcsccaOutputError> {
    let text = output.replace('\r', "");
    let body = text.strip_suffix('\n');
    let lines: Vec<&str> = match body {
        Some(body) => body.split('\n').collect(),
        None if text.is_empty() => Vec::new(),
        // The last line was cut short: no summary can follow.
        None => text.split('\n').collect(),
    };
    let complete = body.is_some();
    let mut summary = PkcsccaSummary::default();
    let mut summary_seen = false;
    let mut summary_at = None;
    // Whether the previous line ended in a newline of its own, and whether the last did.
    let mut prev_blank = false;
    let mut ends_blank = false;
    for (index, raw) in lines.iter().enumerate() {
        let number = index + 1;
        let error = |problem: String| PkcsccaOutputError::Line {
            line: number,
            text: (*raw).to_owned(),
            problem,
        };
        if summary_seen && !raw.starts_with(FAILED) {
            return Err(error("output after the summary line".into()));
        }
        // The only newlines of their own: the summary of a run without keys (the last line),
        // and the one before `Failed to migrate:` when nothing migrated. (A line that ends in
        // `print_error`'s text, which has no newline, ends with such a newline too.)
        let last = index + 1 == lines.len();
        let after_blank = std::mem::take(&mut prev_blank);
        if after_blank && !raw.starts_with(FAILED) {
            let text = lines[index - 1].to_owned();
            let problem = "an empty line where pkcscca prints none".into();
            return Err(PkcsccaOutputError::Line {
                line: index,
                text,
                problem,
            });
        }
        let mut blank = raw.is_empty();
        let mut rest: &str = raw;
        while !rest.is_empty() {
            if let Some(after) = rest
                .strip_prefix(SO_PROMPT)
                .or(rest.strip_prefix(USER_PROMPT))
            {
                rest = after;
            } else if let Some((message, after)) = stderr_message(rest) {
                if let Some(key) = message
                    .strip_prefix("Migrating ")
                    .and_then(|m| m.split_once(" key failed. "))
                {
                    // Not ended by a newline: whatever follows the handle is the next output.
                    let (key, after_key) = key_ref(Some(key.0), key.1, false).map_err(&error)?;
                    summary.failed_keys.push(key);
                    rest = &message[message.len() - after_key.len()..];
                    rest = if rest.is_empty() { after } else { rest };
                    blank = rest.is_empty();
                    continue;
                }
                summary.errors.push(message.to_owned());
                rest = after;
            } else if let Some(counts) = rest.strip_prefix(SUCCESS) {
                if summary_at.is_some() {
                    return Err(error("a second summary".into()));
                }
                summary.migrated = key_counts(counts).map_err(&error)?;
                (summary_seen, summary_at) = (true, Some(index));
                rest = "";
            } else if let Some(counts) = rest.strip_prefix(FAILED) {
                // After `Successfully migrated:`, or after the bare newline that starts the
                // failure line when nothing migrated.
                let after_success = summary_seen && summary_at == Some(index - 1);
                let after_blank = after_blank && !summary_seen;
                if !(after_success || after_blank) || !summary.failed.is_empty() {
                    return Err(error("`Failed to migrate:` out of place".into()));
                }
                summary.failed = key_counts(counts).map_err(&error)?;
                (summary_seen, summary_at) = (true, Some(index));
                rest = "";
            } else if let Some(skip) = skipped(rest) {
                summary.skipped.push(skip.map_err(&error)?);
                rest = "";
            } else if is_verbose(rest) {
                rest = "";
            } else {
                return Err(error("not a line pkcscca prints".into()));
            }
        }
        prev_blank = blank && !last;
        if blank && last {
            ends_blank = true;
        }
    }
    if summary_seen && !complete {
        // The final newline comes after the failure counts: without it they may be missing.
        return Err(PkcsccaOutputError::NoSummary {
            last_error: summary.errors.last().cloned(),
        });
    }
    if !summary_seen {
        // The bare newline of a run without keys: an empty last line after everything else.
        // A key that failed is counted, so a run with one always prints `Failed to migrate:`.
        let bare = complete && ends_blank && lines.len() > 1 && summary.failed_keys.is_empty();
        if !bare {
            return Err(PkcsccaOutputError::NoSummary {
                last_error: summary.errors.last().cloned(),
            });
        }
    }
    Ok(summary)
}

/// `<file>.c:<line> <message>` at the start of `text`: the message (up to the next such
/// prefix, or the end of the line) and what follows it.
fn stderr_message(text: &str) -> Option<(&str, &str)> {
    let (file, after) = text.split_once(".c:")?;
    if file.is_empty() || file.contains(' ') {
        return None;
    }
    let digits = after.bytes().take_while(u8::is_ascii_digit).count();
    let message = after[digits..].strip_prefix(' ').filter(|_| digits > 0)?;
    Some((message, ""))
}

/// `label=<label>, handle=<n>` at the start of `text` (after `<ALG> key failed. ` or a skip
/// line's text): the key and whatever follows the handle's digits on the line.
fn key_ref<'a>(
    algorithm: Option<&str>,
    text: &'a str,
    whole_line: bool,
) -> Result<(KeyRef, &'a str), String> {
    let expected = || format!("expected `label=<label>, handle=<number>`, found `{text}`");
    let rest = text.strip_prefix("label=").ok_or_else(expected)?;
    // A label may hold anything, `, handle=` too: on a line of its own the last one is the
    // tool's; where more output may follow on the line, the first.
    let split = if whole_line {
        rest.rsplit_once(", handle=")
    } else {
        rest.split_once(", handle=")
    };
    let (label, handle) = split.ok_or_else(expected)?;
    let digits = handle.bytes().take_while(u8::is_ascii_digit).count();
    let number = handle[..digits].parse::<u64>().map_err(|_| expected())?;
    let key = KeyRef {
        algorithm: algorithm.map(str::to_owned),
        label: label.to_owned(),
        handle: number,
    };
    Ok((key, &handle[digits..]))
}

/// A skip line, if `text` is one.
fn skipped(text: &str) -> Option<Result<SkippedKey, String>> {
    let key = |algorithm: Option<&str>, reason: SkipReason, rest: &str| {
        let (key, trailing) = key_ref(algorithm, rest, true)?;
        if !trailing.is_empty() {
            return Err(format!("`{trailing}` after the handle"));
        }
        Ok(SkippedKey { reason, key })
    };
    if let Some(rest) = text.strip_prefix("Skipping, ") {
        let (algorithm, rest) = rest.split_once(" token is  wrapped with current master key. ")?;
        return Some(key(Some(algorithm), SkipReason::AlreadyCurrent, rest));
    }
    let rest = text.strip_prefix("Skipping key, its ")?;
    let reasons = [
        ("a public key. ", SkipReason::PublicKey),
        ("not an old RSA key. ", SkipReason::NotOldRsa),
        ("not an new RSA key. ", SkipReason::NotNewRsa),
    ];
    reasons.into_iter().find_map(|(words, reason)| {
        let rest = rest.strip_prefix(words)?;
        Some(key(None, reason, rest))
    })
}

/// `-v`'s lines: `Search for <ALG> keys`, `Successfully migrated <ALG> key. label=…`.
fn is_verbose(text: &str) -> bool {
    let search = text
        .strip_prefix("Search for ")
        .and_then(|t| t.strip_suffix(" keys"))
        .is_some_and(|alg| !alg.is_empty());
    let migrated = text
        .strip_prefix("Successfully migrated ")
        .and_then(|t| t.split_once(" key. "))
        .is_some_and(|(_, rest)| key_ref(None, rest, true).is_ok_and(|(_, tail)| tail.is_empty()));
    search || migrated
}

/// `AES: 3. HMAC: 1. ` (each `<name>: <n>. `, the last space as printed, or trimmed).
fn key_counts(text: &str) -> Result<Vec<KeyCount>, String> {
    let mut counts = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let bad = || format!("expected `<key type>: <number>. ` at `{rest}`");
        let (algorithm, after) = rest.split_once(": ").ok_or_else(bad)?;
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        let count = after[..digits].parse::<u64>().map_err(|_| bad())?;
        let after = after[digits..].strip_prefix('.').ok_or_else(bad)?;
        let named = !algorithm.is_empty()
            && algorithm
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b" _-".contains(&b));
        if !named {
            return Err(bad());
        }
        counts.push(KeyCount {
            algorithm: algorithm.to_owned(),
            count,
        });
        rest = after.strip_prefix(' ').unwrap_or(after);
    }
    if counts.is_empty() {
        return Err("a summary without counts".into());
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROMPTS: &str = "Enter the SO PIN: \nEnter the USER PIN: \n";

    fn parse(tail: &str) -> Result<PkcsccaSummary, PkcsccaOutputError> {
        parse_migrate_output(&format!("{PROMPTS}{tail}"))
    }

    fn counts(summary: &[KeyCount]) -> Vec<(&str, u64)> {
        summary
            .iter()
            .map(|c| (c.algorithm.as_str(), c.count))
            .collect()
    }

    #[test]
    fn every_summary_form_of_key_migration_results() {
        // Every key migrated (opencryptoki-ep11.md 5: `Successfully migrated: AES: n. …`).
        let all = parse("Successfully migrated: AES: 3. HMAC: 1. \n").unwrap();
        assert_eq!(counts(&all.migrated), [("AES", 3), ("HMAC", 1)]);
        assert_eq!((all.migrated_total(), all.failed_total()), (4, 0));
        // Some failed: stderr's lines arrive first on the pty, the last one without a newline.
        let some = parse(
            "pkcscca.c:1147 CSNBKTC (Key Token Change) failed. return code: 12, reason code: 769\n\
             pkcscca.c:1148 Migrating AES key failed. label=aes-2, handle=7Successfully migrated: \
             AES: 2. \nFailed to migrate: AES: 1. \n",
        )
        .unwrap();
        assert_eq!(counts(&some.migrated), [("AES", 2)]);
        assert_eq!(counts(&some.failed), [("AES", 1)]);
        assert_eq!(some.failed_keys.len(), 1);
        assert_eq!(
            (
                some.failed_keys[0].label.as_str(),
                some.failed_keys[0].handle
            ),
            ("aes-2", 7)
        );
        assert_eq!(some.failed_keys[0].algorithm.as_deref(), Some("AES"));
        assert!(some.errors[0].starts_with("CSNBKTC (Key Token Change) failed"));
        // None migrated, one failed: the newline before `Failed to migrate:` stands alone.
        let none = parse(
            "pkcscca.c:1063 CSNDKTC (Key Token Change) failed. return code: 8, reason code: 48\n\
             pkcscca.c:1064 Migrating ECC key failed. label=ec, handle=12\nFailed to migrate: \
             ECC: 1. \n",
        )
        .unwrap();
        assert_eq!((none.migrated_total(), none.failed_total()), (0, 1));
        // No keys of the type: the summary is the bare newline.
        let empty = parse("\n").unwrap();
        assert_eq!(empty, PkcsccaSummary::default());
        // The names the tool prints, spaces and dashes included; the last space trimmed too.
        let pqc =
            parse("Successfully migrated: IBM Dilithium: 1. IBM ML-DSA: 2. ML-DSA: 3.\n").unwrap();
        assert_eq!(
            counts(&pqc.migrated),
            [("IBM Dilithium", 1), ("IBM ML-DSA", 2), ("ML-DSA", 3)]
        );
        // A pty's carriage returns change nothing.
        let crlf = parse_migrate_output(
            &format!("{PROMPTS}Successfully migrated: AES: 3. HMAC: 1. \n").replace('\n', "\r\n"),
        );
        assert_eq!(crlf.unwrap(), all);
    }

    #[test]
    fn skipped_keys_and_verbose_lines() {
        let out = parse(
            "Search for AES keys\n\
             Successfully migrated AES key. label=a1, handle=3\n\
             Successfully migrated AES key. label=a2, handle=4\n\
             Skipping, AES token is  wrapped with current master key. label=a2, handle=4\n\
             Search for HMAC keys\n\
             Skipping key, its a public key. label=pub, handle=9\n\
             Skipping key, its not an old RSA key. label=odd, handle=10\n\
             Skipping key, its not an new RSA key. label=label, handle=1, handle=11\n\
             Successfully migrated: AES: 2. \n",
        )
        .unwrap();
        let skipped: Vec<(SkipReason, &str, u64)> = out
            .skipped
            .iter()
            .map(|s| (s.reason, s.key.label.as_str(), s.key.handle))
            .collect();
        assert_eq!(
            skipped,
            [
                (SkipReason::AlreadyCurrent, "a2", 4),
                (SkipReason::PublicKey, "pub", 9),
                (SkipReason::NotOldRsa, "odd", 10),
                (SkipReason::NotNewRsa, "label, handle=1", 11),
            ]
        );
        assert_eq!(out.skipped[0].key.algorithm.as_deref(), Some("AES"));
        assert_eq!(out.migrated_total(), 2);
    }

    #[test]
    fn no_summary_is_an_unknown_outcome() {
        // The key search failed: errors, no summary, exit 0 all the same.
        let e = parse(
            "pkcscca.c:886 C_FindObjectsInit failed: rc=0x5 (CKR_GENERAL_ERROR)\n\
             pkcscca.c:887 Error finding CCA key objects",
        )
        .unwrap_err();
        assert_eq!(
            e,
            PkcsccaOutputError::NoSummary {
                last_error: Some("Error finding CCA key objects".into())
            }
        );
        assert!(
            e.to_string().contains("its last error: Error finding"),
            "{e}"
        );
        // A key failed, then the run broke off: its newline is no summary.
        let e = parse("pkcscca.c:1148 Migrating AES key failed. label=k, handle=7\n").unwrap_err();
        assert!(matches!(e, PkcsccaOutputError::NoSummary { .. }), "{e}");
        // Cut short: the failure counts may be missing.
        for tail in [
            "Successfully migrated: AES: 3. ",
            "Successfully migrated: AES: 3. \nFailed to migrate: AES: 1. ",
            "",
        ] {
            let e = parse(tail).unwrap_err();
            assert!(
                matches!(e, PkcsccaOutputError::NoSummary { .. }),
                "{tail:?}: {e}"
            );
        }
        assert!(matches!(
            parse_migrate_output("").unwrap_err(),
            PkcsccaOutputError::NoSummary { .. }
        ));
    }

    #[test]
    fn unrecognised_output_names_the_line() {
        let cases = [
            ("Segmentation fault\n", 3, "not a line pkcscca prints"),
            (
                "Successfully migrated: AES: x. \n",
                3,
                "expected `<key type>: <number>. `",
            ),
            (
                "Successfully migrated: AES 3. \n",
                3,
                "expected `<key type>: <number>. `",
            ),
            ("Successfully migrated: \n", 3, "without counts"),
            (
                "Successfully migrated: AES: 3. \nDone.\n",
                4,
                "after the summary",
            ),
            (
                "Successfully migrated: AES: 3. \nFailed to migrate: AES: 1. \nFailed to migrate: AES: 1. \n",
                5,
                "out of place",
            ),
            ("Failed to migrate: AES: 1. \n", 3, "out of place"),
            ("\nSuccessfully migrated: AES: 3. \n", 3, "empty line"),
            (
                "Skipping, AES token is  wrapped with current master key. label=k\n\n",
                3,
                "label=<label>, handle=<number>",
            ),
            (
                "Skipping, AES token is  wrapped with current master key. label=k, handle=4x\n\n",
                3,
                "after the handle",
            ),
        ];
        for (tail, line, problem) in cases {
            let e = parse(tail).unwrap_err();
            let PkcsccaOutputError::Line { line: at, .. } = &e else {
                panic!("{tail:?}: {e}");
            };
            assert_eq!(*at, line, "{tail:?}: {e}");
            assert!(e.to_string().contains(problem), "{tail:?}: {e}");
            assert!(e.to_string().contains("outcome is unknown"), "{e}");
        }
    }
}
