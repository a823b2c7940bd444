//! Who runs a key-migration tool against a token right now, found in `/proc` and nowhere
//! else (design rule 8): a tool left over from a killed mkplan, or started by hand, keeps
//! rewriting key objects, so `resume`, `restore` and `migrate` must not act beside it. Not
//! even mkplan's own children are excluded: none of these checks runs while mkplan has one.

use std::fs;
use std::path::Path;

use super::{Targets, is_token_mapping, mapping_path};
use mkplan_engine::ports::host::RunningTool;
use mkplan_engine::ports::root::HostRoot;
use mkplan_engine::ports::root::token_shm_path;
use mkplan_plan::input;

/// The tools that rewrite secure keys in a token store (opencryptoki-ep11.md 1, 2, 5).
pub const MIGRATION_TOOLS: &[&str] = &["pkcsep11_migrate", "pkcshsm_mk_change", "pkcscca"];
/// `comm` keeps the first 15 bytes of the program's name.
const COMM_LEN: usize = 15;

/// Every live process (other than this one) that runs a migration tool — one of
/// [`MIGRATION_TOOLS`] or a name in `also` (a plan's own `tool:`) — against the token in
/// `slot` with its store at `store`: its slot argument names the slot or cannot be read, it
/// changes every token (`pkcshsm_mk_change reencipher|finalize|cancel`), or it maps the
/// token (its POSIX shm or the EP11 STDLL). On a host root other than `/`, only tools of that
/// root count (run from a path under it, or mapping its shm).
pub fn running_tools(
    proc_dir: &Path,
    root: &HostRoot,
    slot: u16,
    store: &Path,
    also: &[String],
) -> Vec<RunningTool> {
    let shm_file = token_shm_path(root, store);
    let shm = Targets::new(&shm_file);
    let me = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
    let Ok(entries) = fs::read_dir(proc_dir) else {
        return Vec::new();
    };
    let mut pids: Vec<i32> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter(|pid| *pid > 0 && *pid != me)
        .collect();
    pids.sort_unstable();
    pids.into_iter()
        .filter_map(|pid| {
            let dir = proc_dir.join(pid.to_string());
            let process = Process::read(&dir)?;
            let tool = process.tool(also)?;
            let maps_token = process.maps(&dir, &shm);
            if root.dir() != Path::new("/") && !maps_token && !process.runs_under(root.dir()) {
                return None;
            }
            let why = concern(&tool, &process.argv, slot)
                .or_else(|| maps_token.then(|| "it maps the token".to_owned()))?;
            Some(RunningTool {
                pid,
                argv: process.argv,
                why,
            })
        })
        .collect()
}

/// Why `tool` run with `argv` concerns the token in `slot`, if it does by its arguments.
fn concern(tool: &str, argv: &[String], slot: u16) -> Option<String> {
    let flag = match tool {
        "pkcshsm_mk_change" => {
            return matches!(
                argv.get(1).map(String::as_str),
                Some("reencipher" | "finalize" | "cancel")
            )
            .then(|| "it changes every token of its APQNs".to_owned());
        }
        "pkcscca" => "-s",
        _ => "-slot",
    };
    let value = argv
        .iter()
        .rposition(|a| a == flag)
        .map(|i| argv.get(i + 1).map(String::as_str));
    match value.map(|v| v.and_then(released_number)) {
        Some(Some(n)) if n == i64::from(slot) => Some(format!("its `{flag}` is {slot}")),
        Some(Some(_)) => None,
        Some(None) | None => Some(format!(
            "its `{flag}` cannot be read, so it may be this token's"
        )),
    }
}

/// A number as the released tools read it: a leading digit, then `strtol(…, 0)` (decimal,
/// `0x` hex, leading-`0` octal; trailing junk ignored) (opencryptoki-ep11.md 1.1).
fn released_number(text: &str) -> Option<i64> {
    if !text.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let (digits, radix) =
        if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
            (hex, 16)
        } else if text.len() > 1 && text.starts_with('0') {
            (&text[1..], 8)
        } else {
            (text, 10)
        };
    let end = digits
        .find(|c: char| !c.is_digit(radix))
        .unwrap_or(digits.len());
    if end == 0 {
        // `0x` without hex digits, or `0` followed by a non-octal digit: strtol reads 0.
        return Some(0);
    }
    i64::from_str_radix(&digits[..end], radix).ok()
}

/// What `/proc/<pid>` says about a live process.
struct Process {
    argv: Vec<String>,
    exe: Option<String>,
    comm: String,
}

impl Process {
    /// `None` for a process that is gone, a zombie, or a kernel thread.
    fn read(dir: &Path) -> Option<Self> {
        let stat = input::read(&dir.join("stat"), input::SMALL).ok()?;
        let close = stat.iter().rposition(|b| *b == b')')?;
        let state = stat[close + 1..].iter().find(|b| **b != b' ')?;
        if matches!(state, b'Z' | b'X' | b'x') {
            return None;
        }
        let argv: Vec<String> = input::read(&dir.join("cmdline"), input::PROC_MAPS)
            .ok()?
            .split(|b| *b == 0)
            .filter(|part| !part.is_empty())
            .map(|part| String::from_utf8_lossy(part).into_owned())
            .collect();
        if argv.is_empty() {
            return None;
        }
        let exe = fs::read_link(dir.join("exe")).ok().map(|p| {
            let text = p.to_string_lossy().into_owned();
            text.strip_suffix(" (deleted)").unwrap_or(&text).to_owned()
        });
        let comm = input::read_to_string(&dir.join("comm"), input::SMALL)
            .unwrap_or_default()
            .trim_end()
            .to_owned();
        Some(Self { argv, exe, comm })
    }

    /// The migration tool this process runs, by the name it was run as, its executable or
    /// its `comm`.
    fn tool(&self, also: &[String]) -> Option<String> {
        let base = |path: &str| {
            Path::new(path)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        };
        let names: Vec<&str> = MIGRATION_TOOLS
            .iter()
            .copied()
            .chain(also.iter().map(String::as_str))
            .collect();
        let argv0 = base(&self.argv[0]);
        let exe = self.exe.as_deref().and_then(base);
        names
            .iter()
            .find(|name| {
                argv0.as_deref() == Some(**name)
                    || exe.as_deref() == Some(**name)
                    || (!self.comm.is_empty() && name.get(..COMM_LEN).unwrap_or(name) == self.comm)
            })
            .map(|name| (*name).to_owned())
    }

    fn maps(&self, dir: &Path, shm: &Targets) -> bool {
        input::read(&dir.join("maps"), input::PROC_MAPS).is_ok_and(|maps| {
            maps.split(|b| *b == b'\n')
                .filter_map(mapping_path)
                .any(|path| is_token_mapping(path, shm))
        })
    }

    /// Whether it was run from a path under `root` (as a simulated host's stand-ins are).
    fn runs_under(&self, root: &Path) -> bool {
        Path::new(&self.argv[0]).starts_with(root)
            || self
                .exe
                .as_deref()
                .is_some_and(|e| Path::new(e).starts_with(root))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(text: &str) -> Vec<String> {
        text.split(' ').map(str::to_owned).collect()
    }

    #[test]
    fn slot_arguments_are_read_as_the_released_tool_reads_them() {
        assert_eq!(released_number("4"), Some(4));
        assert_eq!(released_number("0x04"), Some(4));
        assert_eq!(released_number("004"), Some(4));
        assert_eq!(released_number("4abc"), Some(4));
        assert_eq!(released_number("08"), Some(0));
        assert_eq!(released_number("x4"), None);
        assert_eq!(released_number(""), None);
        let tool = "pkcsep11_migrate";
        let ours = concern(
            tool,
            &argv("pkcsep11_migrate -slot 0x4 -adapter 10 -domain 17"),
            4,
        );
        assert_eq!(ours.as_deref(), Some("its `-slot` is 4"));
        assert!(concern(tool, &argv("pkcsep11_migrate -slot 5"), 4).is_none());
        // The last -slot wins, as in the tool; a missing value may be anyone's.
        assert!(concern(tool, &argv("pkcsep11_migrate -slot 4 -slot 5"), 4).is_none());
        assert!(concern(tool, &argv("pkcsep11_migrate -slot"), 4).is_some());
        assert!(concern(tool, &argv("pkcsep11_migrate --help"), 4).is_some());
        assert!(concern("pkcscca", &argv("pkcscca -m keys -s 4 -k aes"), 4).is_some());
        assert!(concern("pkcshsm_mk_change", &argv("pkcshsm_mk_change list"), 4).is_none());
        assert!(
            concern(
                "pkcshsm_mk_change",
                &argv("pkcshsm_mk_change reencipher -a 0a.0011"),
                4
            )
            .is_some()
        );
    }

    #[test]
    fn a_tool_is_found_by_name_comm_or_executable_and_others_are_not() {
        let process = |argv0: &str, exe: Option<&str>, comm: &str| Process {
            argv: vec![argv0.to_owned()],
            exe: exe.map(str::to_owned),
            comm: comm.to_owned(),
        };
        let none: &[String] = &[];
        assert!(
            process("/usr/sbin/pkcsep11_migrate", None, "")
                .tool(none)
                .is_some()
        );
        assert!(process("x", None, "pkcsep11_migrat").tool(none).is_some());
        assert!(
            process("x", Some("/opt/bin/pkcscca"), "x")
                .tool(none)
                .is_some()
        );
        assert!(
            process("/usr/bin/sleep", None, "sleep")
                .tool(none)
                .is_none()
        );
        let wrapper = ["ep11-migrate-wrapper".to_owned()];
        assert!(
            process("/opt/ep11-migrate-wrapper", None, "ep11-migrate-wr")
                .tool(&wrapper)
                .is_some()
        );
    }

    #[test]
    fn a_real_process_running_under_a_tools_name_is_found_until_it_ends() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::new(dir.path().canonicalize().unwrap());
        let tool = root.path("/usr/sbin/pkcsep11_migrate");
        // Run under the tool's name from under the root, with the tool's arguments.
        // The interpreter itself (not a shim that would exec it again under its own name).
        let out = std::process::Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .unwrap();
        let python = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        let mut child = std::process::Command::new("bash")
            .arg("-c")
            .arg("exec -a \"$0\" \"$1\" -c 'import time; time.sleep(30)' -slot 4")
            .arg(&tool)
            .arg(python)
            .spawn()
            .unwrap();
        let store = Path::new("/var/lib/opencryptoki/ep11tok");
        let pid = child.id() as i32;
        let found = (0..200).find_map(|_| {
            let tools = running_tools(Path::new("/proc"), &root, 4, store, &[]);
            if let Some(t) = tools.into_iter().find(|t| t.pid == pid) {
                return Some(t);
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
            None
        });
        let found = found.expect("the tool is found");
        assert_eq!(found.why, "its `-slot` is 4");
        assert!(found.describe().contains(&format!("pid {pid} `")));
        assert!(found.hint().contains(&format!("kill {pid}")));
        // Another slot, and another host root, are not this token's.
        assert!(running_tools(Path::new("/proc"), &root, 5, store, &[]).is_empty());
        let elsewhere = HostRoot::new("/nonexistent-root");
        assert!(
            !running_tools(Path::new("/proc"), &elsewhere, 4, store, &[])
                .iter()
                .any(|t| t.pid == pid)
        );
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(
            !running_tools(Path::new("/proc"), &root, 4, store, &[])
                .iter()
                .any(|t| t.pid == pid)
        );
    }
}
