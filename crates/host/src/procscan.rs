//! Who still uses an EP11 token: processes that map its STDLL or its POSIX shared memory,
//! found through `/proc/<pid>/maps` (opencryptoki-ep11.md 4).

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use mkplan_engine::record::users::{ScanResult, TokenUser};

mod tools;

pub use tools::{MIGRATION_TOOLS, running_tools};

/// The EP11 STDLL; every process that ran `C_Initialize` with an EP11 slot maps it (section 4).
const STDLL: &str = "libpkcs11_ep11.so";
/// How `/proc/<pid>/maps` marks a mapped file that has since been unlinked.
const DELETED: &str = " (deleted)";
/// Deeper process trees than this are not ours to walk.
const MAX_DEPTH: usize = 4096;

/// Every numeric entry of `proc_dir` (the real `/proc` in production) whose `maps` has the
/// EP11 STDLL (`libpkcs11_ep11.so`, `libpkcs11_ep11.so.<n>…`, any directory) or `shm_file`
/// mapped. Processes for which `exclude` is true are skipped without being read.
pub fn scan(proc_dir: &Path, shm_file: &Path, exclude: &dyn Fn(i32) -> bool) -> ScanResult {
    let shm = Targets::new(shm_file);
    let mut result = ScanResult::default();
    let Ok(entries) = fs::read_dir(proc_dir) else {
        // Nothing could be looked at: say so rather than report an empty system.
        result.unreadable = 1;
        return result;
    };
    let mut pids: Vec<i32> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter(|pid: &i32| *pid > 0)
        .collect();
    pids.sort_unstable();
    for pid in pids {
        if exclude(pid) {
            continue;
        }
        result.scanned += 1;
        let dir = proc_dir.join(pid.to_string());
        // Unreadable or too large, it is counted: the caller never reads that as "no user".
        let Ok(maps) = mkplan_plan::input::read(&dir.join("maps"), mkplan_plan::input::PROC_MAPS)
        else {
            result.unreadable += 1;
            continue;
        };
        let matched = maps
            .split(|b| *b == b'\n')
            .filter_map(mapping_path)
            .find(|path| is_token_mapping(path, &shm));
        if let Some(matched) = matched {
            result.users.push(TokenUser {
                pid,
                command: command(&dir),
                unit: mkplan_plan::input::read_to_string(
                    &dir.join("cgroup"),
                    mkplan_plan::input::SMALL,
                )
                .ok()
                .and_then(|text| systemd_unit(&text)),
                matched: String::from_utf8_lossy(matched).into_owned(),
            });
        }
    }
    result
}

/// A predicate that is true for this process and its descendants (walking `PPid` through
/// `<proc_dir>/<pid>/stat`): mkplan's own children, such as the migrate tool, are not users
/// to wait for (opencryptoki-ep11.md 4). A process that cannot be traced back is not ours.
pub fn own_family(proc_dir: &Path) -> impl Fn(i32) -> bool + use<> {
    let proc_dir = proc_dir.to_path_buf();
    let me = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
    move |pid| descends_from(&proc_dir, pid, me)
}

fn descends_from(proc_dir: &Path, mut pid: i32, ancestor: i32) -> bool {
    for _ in 0..MAX_DEPTH {
        if pid == ancestor {
            return true;
        }
        if pid <= 1 {
            return false;
        }
        match parent_of(proc_dir, pid) {
            Some(parent) => pid = parent,
            None => return false,
        }
    }
    false
}

/// The 4th field of `/proc/<pid>/stat`, after `comm` (which may hold spaces and `)`).
fn parent_of(proc_dir: &Path, pid: i32) -> Option<i32> {
    let stat = mkplan_plan::input::read(
        &proc_dir.join(pid.to_string()).join("stat"),
        mkplan_plan::input::SMALL,
    )
    .ok()?;
    let close = stat.iter().rposition(|b| *b == b')')?;
    let rest = std::str::from_utf8(&stat[close + 1..]).ok()?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// The shm file as given and as the kernel would print it (canonical), for comparison with
/// the absolute paths in `maps`.
struct Targets(Vec<PathBuf>);

impl Targets {
    fn new(shm_file: &Path) -> Self {
        let mut paths = vec![shm_file.to_path_buf()];
        let canonical = fs::canonicalize(shm_file).ok().or_else(|| {
            // An unlinked file is still mapped as `<path> (deleted)`: resolve its directory.
            let dir = fs::canonicalize(shm_file.parent()?).ok()?;
            Some(dir.join(shm_file.file_name()?))
        });
        paths.extend(canonical);
        Self(paths)
    }
}

/// The path column of one `maps` line: after address, perms, offset, dev and inode.
fn mapping_path(line: &[u8]) -> Option<&[u8]> {
    let mut rest = line;
    for _ in 0..5 {
        rest = rest.trim_ascii_start();
        let end = rest.iter().position(|b| *b == b' ').unwrap_or(rest.len());
        rest = &rest[end..];
    }
    let path = rest.trim_ascii_start();
    (!path.is_empty()).then_some(path)
}

fn is_token_mapping(path: &[u8], shm: &Targets) -> bool {
    let live = path.strip_suffix(DELETED.as_bytes()).unwrap_or(path);
    [path, live].into_iter().any(|candidate| {
        let candidate = Path::new(OsStr::from_bytes(candidate));
        let stdll = candidate.file_name().is_some_and(|name| {
            let name = name.as_bytes();
            name == STDLL.as_bytes() || name.starts_with(format!("{STDLL}.").as_bytes())
        });
        stdll || shm.0.iter().any(|target| target == candidate)
    })
}

/// `cmdline` with its NUL separators as spaces; `comm` for kernel threads and zombies.
fn command(dir: &Path) -> String {
    let cmdline = mkplan_plan::input::read(&dir.join("cmdline"), mkplan_plan::input::PROC_MAPS)
        .unwrap_or_default();
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|arg| !arg.is_empty())
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect();
    if !args.is_empty() {
        return args.join(" ");
    }
    match mkplan_plan::input::read_to_string(&dir.join("comm"), mkplan_plan::input::SMALL) {
        Ok(comm) => comm.trim_end().to_owned(),
        Err(_) => "(exited)".into(),
    }
}

/// The last `….service`/`….scope` component of the unified (`0::`) or systemd (`name=systemd`)
/// hierarchy in `/proc/<pid>/cgroup`.
fn systemd_unit(cgroup: &str) -> Option<String> {
    let hierarchies: Vec<(&str, &str)> = cgroup
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            Some((controllers, path))
        })
        .collect();
    let (_, path) = hierarchies
        .iter()
        .find(|(controllers, _)| controllers.is_empty())
        .or_else(|| hierarchies.iter().find(|(c, _)| *c == "name=systemd"))?;
    path.split('/')
        .rfind(|part| part.ends_with(".service") || part.ends_with(".scope"))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::CommandExt;
    use std::process::{Child, ChildStdout, Command, Stdio};
    use std::sync::OnceLock;

    use rustix::process::{Pid, Signal, kill_process_group};
    use tempfile::TempDir;

    use super::*;

    const MAPPER: &str = "import mmap, os, sys, time\n\
        f = open(sys.argv[1], 'r+b')\n\
        m = mmap.mmap(f.fileno(), 0)\n\
        print('ready', os.getpid(), flush=True)\n\
        time.sleep(600)\n";
    const OPENER: &str = "import os, sys, time\n\
        f = open(sys.argv[1], 'rb')\n\
        print('ready', os.getpid(), flush=True)\n\
        time.sleep(600)\n";

    /// The real interpreter, so the pid we spawn is the process that maps (not a shim).
    fn python() -> &'static str {
        static PYTHON: OnceLock<String> = OnceLock::new();
        PYTHON.get_or_init(|| {
            let out = Command::new("python3")
                .args(["-c", "import sys; print(sys.executable)"])
                .output()
                .expect("python3 is needed for the /proc tests");
            String::from_utf8(out.stdout).unwrap().trim().to_owned()
        })
    }

    /// A process group we started; killed and reaped when dropped.
    struct Spawned {
        child: Child,
        /// The pid that printed `ready` (the child itself, or a grandchild).
        pid: i32,
        stdout: BufReader<ChildStdout>,
    }

    impl Spawned {
        fn python(code: &str, file: &Path) -> Self {
            let mut cmd = Command::new(python());
            cmd.arg("-c").arg(code).arg(file);
            Self::start(cmd)
        }

        /// `code` run by a shell we spawn: a grandchild of this process.
        fn grandchild(code: &str, file: &Path) -> Self {
            let mut cmd = Command::new("sh");
            cmd.args(["-c", "\"$0\" -c \"$1\" \"$2\" & wait"])
                .arg(python())
                .arg(code)
                .arg(file);
            Self::start(cmd)
        }

        fn start(mut cmd: Command) -> Self {
            let mut child = cmd.process_group(0).stdout(Stdio::piped()).spawn().unwrap();
            let stdout = BufReader::new(child.stdout.take().unwrap());
            // Guarded from here on: a failed start still kills the group.
            let mut spawned = Self {
                child,
                pid: 0,
                stdout,
            };
            let mut line = String::new();
            spawned.stdout.read_line(&mut line).unwrap();
            spawned.pid = line
                .strip_prefix("ready ")
                .and_then(|pid| pid.trim().parse().ok())
                .unwrap_or_else(|| panic!("no ready line: {line:?}"));
            spawned
        }

        fn stop(&mut self) {
            let group = Pid::from_raw(self.child.id() as i32).unwrap();
            let _ = kill_process_group(group, Signal::KILL);
            let _ = self.child.wait();
        }
    }

    impl Drop for Spawned {
        fn drop(&mut self) {
            self.stop();
        }
    }

    fn shm_file(dir: &TempDir) -> PathBuf {
        let path = dir.path().join("dev.shm.var.lib.opencryptoki.ep11tok");
        fs::write(&path, vec![0u8; 4096]).unwrap();
        path
    }

    fn find(result: &ScanResult, pid: i32) -> Option<&TokenUser> {
        result.users.iter().find(|u| u.pid == pid)
    }

    const PROC: &str = "/proc";
    const NOBODY: &dyn Fn(i32) -> bool = &|_| false;

    #[test]
    fn a_process_mapping_the_shm_file_is_a_user() {
        let dir = TempDir::new().unwrap();
        let shm = shm_file(&dir);
        let mapper = Spawned::python(MAPPER, &shm);
        let result = scan(Path::new(PROC), &shm, NOBODY);
        let user = find(&result, mapper.pid).expect("the mapper is found");
        let canonical = fs::canonicalize(&shm).unwrap();
        assert_eq!(user.matched, canonical.to_str().unwrap());
        assert!(user.command.starts_with(python()), "{}", user.command);
        assert!(
            user.command.ends_with(shm.to_str().unwrap()),
            "{}",
            user.command
        );
        assert!(result.scanned >= 2, "{result:?}");
        // Unlinked while mapped: still a user, shown as the kernel shows it.
        fs::remove_file(&shm).unwrap();
        let result = scan(Path::new(PROC), &shm, NOBODY);
        let user = find(&result, mapper.pid).expect("still mapped");
        assert_eq!(user.matched, format!("{} (deleted)", canonical.display()));
    }

    #[test]
    fn opening_without_mapping_and_exiting_do_not_count() {
        let dir = TempDir::new().unwrap();
        let shm = shm_file(&dir);
        let opener = Spawned::python(OPENER, &shm);
        let mut mapper = Spawned::python(MAPPER, &shm);
        let result = scan(Path::new(PROC), &shm, NOBODY);
        assert!(find(&result, opener.pid).is_none(), "{result:?}");
        assert!(find(&result, mapper.pid).is_some(), "{result:?}");
        mapper.stop();
        let result = scan(Path::new(PROC), &shm, NOBODY);
        assert!(find(&result, mapper.pid).is_none(), "{result:?}");
    }

    #[test]
    fn the_ep11_stdll_is_recognised_in_any_directory() {
        let dir = TempDir::new().unwrap();
        let lib = dir.path().join("opencryptoki/stdll");
        fs::create_dir_all(&lib).unwrap();
        let so = lib.join("libpkcs11_ep11.so.0.1");
        fs::write(&so, vec![0u8; 4096]).unwrap();
        let mapper = Spawned::python(MAPPER, &so);
        let result = scan(Path::new(PROC), &dir.path().join("no-shm"), NOBODY);
        let user = find(&result, mapper.pid).expect("the STDLL mapper is found");
        assert!(
            user.matched
                .ends_with("opencryptoki/stdll/libpkcs11_ep11.so.0.1")
        );
    }

    #[test]
    fn own_children_and_grandchildren_are_excluded() {
        let dir = TempDir::new().unwrap();
        let shm = shm_file(&dir);
        let child = Spawned::python(MAPPER, &shm);
        let grandchild = Spawned::grandchild(MAPPER, &shm);
        assert_ne!(grandchild.pid as u32, grandchild.child.id());
        let family = own_family(Path::new(PROC));
        assert!(family(std::process::id() as i32));
        assert!(family(child.pid) && family(grandchild.pid));
        assert!(!family(1));
        let theirs = scan(Path::new(PROC), &shm, &family);
        assert!(find(&theirs, child.pid).is_none(), "{theirs:?}");
        assert!(find(&theirs, grandchild.pid).is_none(), "{theirs:?}");
        let everyone = scan(Path::new(PROC), &shm, NOBODY);
        assert!(find(&everyone, child.pid).is_some(), "{everyone:?}");
        assert!(find(&everyone, grandchild.pid).is_some(), "{everyone:?}");
        assert!(theirs.scanned < everyone.scanned);
    }

    /// A prepared `/proc` for what real processes cannot easily show: cgroups, kernel
    /// threads, unreadable entries.
    #[test]
    fn a_prepared_proc_tree_covers_units_and_unreadable_entries() {
        let proc_dir = TempDir::new().unwrap();
        let shm = Path::new("/dev/shm/var.lib.opencryptoki.ep11tok");
        let maps = "55d0c000-55d0d000 r--p 00000000 fd:01 1234   /usr/bin/app\n\
            7f00-7f01 rw-s 00000000 00:19 42     /dev/shm/var.lib.opencryptoki.ep11tok\n";
        let process = |pid: &str, files: &[(&str, &str)]| {
            let dir = proc_dir.path().join(pid);
            fs::create_dir_all(&dir).unwrap();
            for (name, text) in files {
                fs::write(dir.join(name), text).unwrap();
            }
        };
        process(
            "100",
            &[
                ("maps", maps),
                ("cmdline", "/usr/bin/app\0--serve\0"),
                ("cgroup", "0::/system.slice/app.service\n"),
            ],
        );
        let lib = "7f-80 r-xp 00000000 fd:01 9 /usr/lib64/opencryptoki/stdll/libpkcs11_ep11.so\n";
        process(
            "200",
            &[
                ("maps", lib),
                ("cmdline", ""),
                ("comm", "worker\n"),
                (
                    "cgroup",
                    "12:pids:/x\n1:name=systemd:/user.slice/session-3.scope\n",
                ),
            ],
        );
        process(
            "300",
            &[("maps", "7f-80 r-xp 00000000 fd:01 9 /usr/lib/libc.so.6\n")],
        );
        process("400", &[("cmdline", "gone\0")]);
        process("self", &[("maps", maps)]);
        let result = scan(proc_dir.path(), shm, NOBODY);
        assert_eq!((result.scanned, result.unreadable), (4, 1));
        assert!(!result.proves_unused());
        let users: Vec<_> = result
            .users
            .iter()
            .map(|u| (u.pid, u.command.as_str(), u.unit.as_deref()))
            .collect();
        assert_eq!(
            users,
            [
                (100, "/usr/bin/app --serve", Some("app.service")),
                (200, "worker", Some("session-3.scope")),
            ]
        );
        assert_eq!(
            result.users[0].matched,
            "/dev/shm/var.lib.opencryptoki.ep11tok"
        );
        let result = scan(proc_dir.path(), shm, &|pid| pid != 300);
        assert_eq!((result.scanned, result.unreadable), (1, 0));
        assert!(result.proves_unused());
        assert!(!scan(&proc_dir.path().join("missing"), shm, NOBODY).proves_unused());
    }

    #[test]
    fn maps_lines_units_and_shm_names_parse() {
        let line = b"7f3c-7f3d rw-s 00000000 00:19 42                     /dev/shm/a b (deleted)";
        assert_eq!(mapping_path(line), Some(&b"/dev/shm/a b (deleted)"[..]));
        assert_eq!(mapping_path(b"7f3c-7f3d rw-p 00000000 00:00 0 "), None);
        assert_eq!(
            mapping_path(b"7ffd-7ffe rw-p 00000000 00:00 0    [stack]"),
            Some(&b"[stack]"[..])
        );
        let none = Targets(vec![]);
        for (path, user) in [
            (
                &b"/usr/lib64/opencryptoki/stdll/libpkcs11_ep11.so"[..],
                true,
            ),
            (b"/usr/lib/libpkcs11_ep11.so.0", true),
            (b"/usr/lib/libpkcs11_ep11.so.0.1 (deleted)", true),
            (b"/usr/lib/libpkcs11_ep11.sox", false),
            (b"/usr/lib/libpkcs11_cca.so", false),
            (b"/usr/lib/libpkcs11_ep11.so/other", false),
        ] {
            assert_eq!(is_token_mapping(path, &none), user, "{path:?}");
        }
        assert_eq!(
            systemd_unit("0::/system.slice/httpd.service/worker\n").as_deref(),
            Some("httpd.service")
        );
        assert_eq!(
            systemd_unit("0::/init.scope\n").as_deref(),
            Some("init.scope")
        );
        assert_eq!(systemd_unit("0::/\n"), None);
        assert_eq!(systemd_unit("4:memory:/a.service\n"), None);
    }

    #[test]
    fn the_parent_is_read_past_a_comm_with_parentheses() {
        let proc_dir = TempDir::new().unwrap();
        let stat = |pid: i32, text: &str| {
            let dir = proc_dir.path().join(pid.to_string());
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join("stat"), text).unwrap();
        };
        stat(30, "30 (a) b (c) S 20 30 30 0 -1");
        stat(20, "20 (sh) S 10 20 20 0 -1");
        stat(10, "10 (mkplan) S 1 10 10 0 -1");
        assert_eq!(parent_of(proc_dir.path(), 30), Some(20));
        assert!(descends_from(proc_dir.path(), 30, 10));
        assert!(!descends_from(proc_dir.path(), 30, 99));
        assert!(!descends_from(proc_dir.path(), 31, 10));
    }
}
