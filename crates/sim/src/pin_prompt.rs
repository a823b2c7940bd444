//! openCryptoki 3.19+'s `pin_prompt()` (opencryptoki-ep11.md 1.3), shared by the
//! `pkcshsm_mk_change` and `pkcscca` stand-ins, and the tools' other line reads from stdin.
//! All of them read through the process's one buffered stdin, so answers piped in one go
//! (`y\nPIN\nPIN\n`) are consumed one line per question.

use std::io::{BufRead, Read, Write};

/// A line longer than this is cut (getline is unbounded; no answer is longer).
const MAX_LINE: u64 = 4096;

pub(crate) fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

/// One line of stdin without its line end; `None` at end of input.
pub(crate) fn read_line() -> Option<String> {
    let mut line = Vec::new();
    let read = std::io::stdin()
        .lock()
        .take(MAX_LINE)
        .read_until(b'\n', &mut line);
    if !matches!(read, Ok(n) if n > 0) {
        return None;
    }
    let end = line
        .iter()
        .position(|b| *b == b'\r' || *b == b'\n')
        .unwrap_or(line.len());
    line.truncate(end);
    Some(String::from_utf8_lossy(&line).into_owned())
}

/// Prints `prompt` on stdout, turns echo off if stdin is a terminal (errors ignored), reads
/// one line, restores echo and prints a newline. `None` at end of input.
pub(crate) fn pin_prompt(prompt: &str) -> Option<String> {
    out(prompt);
    let stdin = std::io::stdin();
    let saved = rustix::termios::tcgetattr(&stdin).ok();
    if let Some(saved) = &saved {
        let mut quiet = saved.clone();
        quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
        let _ = rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Flush, &quiet);
    }
    let line = read_line();
    if let Some(saved) = &saved {
        let _ = rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Flush, saved);
    }
    out("\n");
    line
}

/// Appends the invocation (argv and the *names* of the environment variables) to
/// `var/log/mkplan-sim/<tool>.log`, so tests can prove no PIN reached argv or the
/// environment.
pub(crate) fn log_invocation(root: &std::path::Path, tool: &str, argv0: &str, args: &[String]) {
    use std::io::IsTerminal;
    let mut env_keys: Vec<String> = std::env::vars_os()
        .map(|(k, _)| k.to_string_lossy().into_owned())
        .collect();
    env_keys.sort();
    let mut argv = vec![argv0.to_owned()];
    argv.extend(args.iter().cloned());
    let line = serde_json::json!({
        "time": jiff::Timestamp::now().to_string(),
        "pid": std::process::id(),
        "argv": argv,
        "env_keys": env_keys,
        "stdin_is_tty": std::io::stdin().is_terminal(),
    });
    let dir = root.join("var/log/mkplan-sim");
    let _ = std::fs::create_dir_all(&dir);
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{tool}.log")))
    {
        let _ = file.write_all(format!("{line}\n").as_bytes());
    }
}
