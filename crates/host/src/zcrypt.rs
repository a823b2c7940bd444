//! Adapter and queue state from the zcrypt sysfs tree: the gates (online, config, chkstop,
//! EP11 or CCA) and the registers from `mkvps` (EP11 wrapping keys, CCA master keys), read
//! fail-closed.

use std::fs;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use mkplan_engine::ports::root::HostRoot;
use mkplan_engine::record::wk::{ApqnStatus, CurState, NewState};
use mkplan_plan::model::Apqn;

mod mkvps;

use mkvps::register;
pub use mkvps::{CcaMkvpsError, MkvpsError, parse_cca_mkvps, parse_ep11_mkvps};

/// The EP11 coprocessor bit (`X`) of the card's `ap_functions` word (zcrypt-sysfs.md 1.3).
const AP_FUNC_EP11: u32 = 0x0400_0000;
/// The CCA coprocessor bit (`D`) of `ap_functions` (zcrypt-sysfs.md 1.3).
const AP_FUNC_CCA: u32 = 0x1000_0000;

/// Reading an APQN's state failed; nothing about it may be assumed.
#[derive(Debug, thiserror::Error)]
pub enum ZcryptError {
    #[error("{apqn}: `{path}` does not exist; {hint}")]
    Missing {
        apqn: Apqn,
        path: PathBuf,
        hint: &'static str,
    },
    #[error("{apqn}: cannot read `{path}`: {source}")]
    Read {
        apqn: Apqn,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{apqn}: `{path}`: {problem}")]
    Unexpected {
        apqn: Apqn,
        path: PathBuf,
        problem: String,
    },
}

const NO_APQN: &str = "the APQN may not exist on this system (see `lszcrypt`), or the kernel \
                       is older than 5.6 (EP11 `mkvps` came in 5.6)";
const NO_DRIVER: &str = "the device is not bound to the zcrypt driver (see `lszcrypt -V`), so \
                         its state cannot be read";

/// Reads the queue `/sys/bus/ap/devices/XX.YYYY/` and its card `/sys/bus/ap/devices/cardXX/`
/// (symlinks into `/sys/devices/ap/`, zcrypt-sysfs.md 1.1; attributes 1.3, 1.4): the EP11
/// registers of an EP11 card, the CCA master keys of a CCA card. A `- -` from a queue that
/// answers may be an interrupted read (1.6b), so it is re-read a few times before it stands.
pub fn read_apqn(root: &HostRoot, apqn: Apqn) -> Result<ApqnStatus, ZcryptError> {
    read_apqn_with(root, apqn, &mut std::thread::sleep)
}

/// [`read_apqn`] with the pause between re-reads given (tests count them).
fn read_apqn_with(
    root: &HostRoot,
    apqn: Apqn,
    sleep: &mut dyn FnMut(Duration),
) -> Result<ApqnStatus, ZcryptError> {
    let device = |name: String, driver| Device {
        apqn,
        driver,
        dir: root.path(format!("/sys/bus/ap/devices/{name}")),
    };
    let queue = device(apqn.lszcrypt(), "cex4queue");
    let card = device(format!("card{:02x}", apqn.adapter()), "cex4card");
    for dev in [&queue, &card] {
        dev.check_dir_and_driver()?;
    }
    let card_type = card.read_required("type")?.trim().to_owned();
    let functions = card.read_functions()?;
    let ep11 = card_type.ends_with('P') && functions & AP_FUNC_EP11 != 0;
    let cca = card_type.ends_with('C') && functions & AP_FUNC_CCA != 0;
    let mut status = ApqnStatus {
        apqn,
        card_type,
        ep11,
        card_online: card.read_flag("online", None)?,
        // zcrypt-sysfs.md 1.7 rule 1: a missing `config`/`chkstop` counts as OK.
        card_config: card.read_flag("config", Some(true))?,
        card_chkstop: card.read_flag("chkstop", Some(false))?,
        queue_online: queue.read_flag("online", None)?,
        queue_config: queue.read_flag("config", Some(true))?,
        queue_chkstop: queue.read_flag("chkstop", Some(false))?,
        cur: register(CurState::Unknown, None),
        new: register(NewState::Unknown, None),
        cca: None,
        mkvps_raw: String::new(),
    };
    // Offline, deconfigured or check-stopped: `- -` is the answer, not a passing signal.
    let answers = status.card_online
        && status.card_config
        && !status.card_chkstop
        && status.queue_online
        && status.queue_config
        && !status.queue_chkstop;
    let mut pauses = REREAD_PAUSES.iter();
    loop {
        read_registers(&queue, &mut status, cca)?;
        if !(answers && (ep11 || cca) && status.state_unknown()) {
            return Ok(status);
        }
        match pauses.next() {
            Some(pause) => sleep(*pause),
            None => return Ok(status),
        }
    }
}

/// The pauses before each re-read of a `- -` (zcrypt-sysfs.md 1.6b: an interrupted read is
/// transient). After the last one the state stands as unknown, and fails closed.
const REREAD_PAUSES: [Duration; 4] = [
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(200),
    Duration::from_millis(400),
];

/// Reads `mkvps` into `status`: the EP11 registers of an EP11 card, the CCA master keys of a
/// CCA card; any other card is reported as it is, with unknown registers, for the callers
/// to refuse.
fn read_registers(queue: &Device, status: &mut ApqnStatus, cca: bool) -> Result<(), ZcryptError> {
    // zcrypt-sysfs.md 1.5: EP11 `mkvps` exists since v5.6 (or a backport); probe for it.
    let raw = queue
        .read("mkvps")?
        .ok_or_else(|| queue.missing("mkvps", NO_APQN))?;
    if cca {
        let keys = parse_cca_mkvps(&raw).map_err(|e| queue.unexpected("mkvps", e.to_string()))?;
        status.cca = Some(keys);
    } else {
        match parse_ep11_mkvps(&raw) {
            Ok((cur, new)) => (status.cur, status.new) = (cur, new),
            Err(_) if !status.ep11 => {}
            Err(e) => return Err(queue.unexpected("mkvps", e.to_string())),
        }
    }
    status.mkvps_raw = raw;
    Ok(())
}

/// A card or queue directory under the root, and the driver it must be bound to.
struct Device {
    apqn: Apqn,
    driver: &'static str,
    dir: PathBuf,
}

impl Device {
    /// The directory must exist; its `driver` link, if any, must name `cex4card`/`cex4queue`
    /// (zcrypt-sysfs.md 1.1, 1.7 rule 1). Without a driver there are no zcrypt attributes,
    /// which the reads refuse; a prepared tree may leave the link out.
    fn check_dir_and_driver(&self) -> Result<(), ZcryptError> {
        match fs::metadata(&self.dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(self.unexpected("", "is not a directory".into())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(self.missing("", NO_APQN)),
            Err(source) => return Err(self.read_error("", source)),
        }
        let target = match fs::read_link(self.dir.join("driver")) {
            Ok(target) => target,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(self.read_error("driver", source)),
        };
        let driver = target.file_name().unwrap_or_default().to_string_lossy();
        if driver == self.driver {
            return Ok(());
        }
        let problem = format!(
            "names driver `{driver}`, not `{}`: zcrypt does not own this device (a `vfio_ap` \
             queue belongs to a KVM guest)",
            self.driver
        );
        Err(self.unexpected("driver", problem))
    }

    fn read(&self, name: &str) -> Result<Option<String>, ZcryptError> {
        match mkplan_plan::input::read_to_string(&self.dir.join(name), mkplan_plan::input::SMALL) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(self.read_error(name, source)),
        }
    }

    fn read_required(&self, name: &str) -> Result<String, ZcryptError> {
        self.read(name)?
            .ok_or_else(|| self.missing(name, NO_DRIVER))
    }

    /// The attribute `name`, or the directory itself for `""`.
    fn at(&self, name: &str) -> PathBuf {
        match name {
            "" => self.dir.clone(),
            _ => self.dir.join(name),
        }
    }

    fn missing(&self, name: &str, hint: &'static str) -> ZcryptError {
        let (apqn, path) = (self.apqn, self.at(name));
        ZcryptError::Missing { apqn, path, hint }
    }

    /// A `0`/`1` attribute; `missing` is its value when the file is absent (`None`: required).
    fn read_flag(&self, name: &str, missing: Option<bool>) -> Result<bool, ZcryptError> {
        let text = match (self.read(name)?, missing) {
            (Some(text), _) => text,
            (None, Some(default)) => return Ok(default),
            (None, None) => self.read_required(name)?,
        };
        match text.trim() {
            "0" => Ok(false),
            "1" => Ok(true),
            other => Err(self.unexpected(name, format!("holds `{other}`, expected `0` or `1`"))),
        }
    }

    /// `ap_functions` is `"0x%08X\n"` (uppercase hex, zcrypt-sysfs.md 1.3).
    fn read_functions(&self) -> Result<u32, ZcryptError> {
        let text = self.read_required("ap_functions")?;
        let value = text.trim();
        value
            .strip_prefix("0x")
            .or_else(|| value.strip_prefix("0X"))
            .filter(|hex| !hex.is_empty() && hex.len() <= 8)
            .and_then(|hex| u32::from_str_radix(hex, 16).ok())
            .ok_or_else(|| {
                let problem = format!("holds `{value}`, expected `0x` and 8 hex digits");
                self.unexpected("ap_functions", problem)
            })
    }

    fn read_error(&self, name: &str, source: io::Error) -> ZcryptError {
        let (apqn, path) = (self.apqn, self.at(name));
        ZcryptError::Read { apqn, path, source }
    }

    fn unexpected(&self, name: &str, problem: String) -> ZcryptError {
        let (apqn, path) = (self.apqn, self.at(name));
        ZcryptError::Unexpected {
            apqn,
            path,
            problem: format!("{problem}; refusing to guess"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;
    use std::path::Path;

    use tempfile::TempDir;

    use super::*;
    use mkplan_engine::record::wk::{Expectation, evaluate, evaluate_all};
    use mkplan_plan::model::{CurrentWk, NewWk, Wkvp};

    const CUR16: &str = "00112233445566778899aabbccddeeff";
    const NEW16: &str = "ffeeddccbbaa99887766554433221100";
    const TAIL16: &str = "0123456789abcdef0123456789abcdef";

    fn cur64() -> String {
        format!("0x{CUR16}{TAIL16}")
    }

    fn new64() -> String {
        format!("0x{NEW16}{TAIL16}")
    }

    fn mkvps(cur: &str, new: &str) -> String {
        format!("WK CUR: {cur}\nWK NEW: {new}\n")
    }

    fn healthy_mkvps() -> String {
        mkvps(
            &format!("valid {}", cur64()),
            &format!("committed {}", new64()),
        )
    }

    fn wkvp(hex: &str) -> Wkvp {
        Wkvp::parse(hex).unwrap().0
    }

    fn expect(current: CurrentWk, new: NewWk) -> Expectation {
        Expectation {
            current,
            new,
            wkvp_current: wkvp(CUR16),
            wkvp_new: wkvp(NEW16),
        }
    }

    /// A sysfs tree laid out like the kernel's: devices under `sys/devices/ap/`, symlinks in
    /// `sys/bus/ap/devices/`, `driver` links into `sys/bus/ap/drivers/`.
    struct Tree(TempDir);

    impl Tree {
        fn new() -> Self {
            let tree = Self(TempDir::new().unwrap());
            for d in ["sys/bus/ap/devices", "sys/bus/ap/drivers/cex4card"] {
                fs::create_dir_all(tree.0.path().join(d)).unwrap();
            }
            fs::create_dir_all(tree.0.path().join("sys/bus/ap/drivers/cex4queue")).unwrap();
            fs::create_dir_all(tree.0.path().join("sys/bus/ap/drivers/vfio_ap")).unwrap();
            tree
        }

        fn root(&self) -> HostRoot {
            HostRoot::new(self.0.path())
        }

        fn card(&self, card: u8, card_type: &str, functions: &str) -> PathBuf {
            let name = format!("card{card:02x}");
            let dir = self.0.path().join("sys/devices/ap").join(&name);
            fs::create_dir_all(&dir).unwrap();
            for (file, value) in [
                ("type", card_type),
                ("ap_functions", functions),
                ("online", "1"),
                ("config", "1"),
                ("chkstop", "0"),
            ] {
                set(&dir, file, value);
            }
            symlink("../../../bus/ap/drivers/cex4card", dir.join("driver")).unwrap();
            let link = format!("../../../devices/ap/{name}");
            symlink(link, self.0.path().join("sys/bus/ap/devices").join(&name)).unwrap();
            dir
        }

        fn queue(&self, apqn: Apqn, mkvps: &str) -> PathBuf {
            let card = format!("card{:02x}", apqn.adapter());
            let rel = format!("{card}/{}", apqn.lszcrypt());
            let dir = self.0.path().join("sys/devices/ap").join(&rel);
            fs::create_dir_all(&dir).unwrap();
            for (file, value) in [
                ("online", "1"),
                ("config", "1"),
                ("chkstop", "0"),
                ("mkvps", mkvps),
            ] {
                set(&dir, file, value);
            }
            symlink("../../../../bus/ap/drivers/cex4queue", dir.join("driver")).unwrap();
            let devices = self.0.path().join("sys/bus/ap/devices");
            symlink(
                format!("../../../devices/ap/{rel}"),
                devices.join(apqn.lszcrypt()),
            )
            .unwrap();
            dir
        }

        /// A CEX8P card `card` with one healthy queue for domain 17.
        fn ep11(&self, card: u8, mkvps: &str) -> (Apqn, PathBuf, PathBuf) {
            let apqn = Apqn::new(card, 17);
            let card_dir = self.card(card, "CEX8P", "0x04800000");
            (apqn, card_dir, self.queue(apqn, mkvps))
        }
    }

    fn set(dir: &Path, file: &str, value: &str) {
        fs::write(
            dir.join(file),
            format!("{}\n", value.trim_end_matches('\n')),
        )
        .unwrap();
    }

    #[test]
    fn every_ep11_state_line_parses() {
        let cur_lines = [
            (format!("valid {}", cur64()), CurState::Valid, true),
            ("invalid -".to_owned(), CurState::Invalid, false),
            ("- -".to_owned(), CurState::Unknown, false),
        ];
        let new_lines = [
            ("empty -".to_owned(), NewState::Empty, false),
            (
                format!("uncommitted {}", new64()),
                NewState::Uncommitted,
                true,
            ),
            (format!("committed {}", new64()), NewState::Committed, true),
            ("- -".to_owned(), NewState::Unknown, false),
        ];
        for (cur_text, cur_state, cur_vp) in &cur_lines {
            for (new_text, new_state, new_vp) in &new_lines {
                let text = mkvps(cur_text, new_text);
                let (cur, new) = parse_ep11_mkvps(&text).unwrap();
                assert_eq!((cur.state, new.state), (*cur_state, *new_state), "{text}");
                assert_eq!(cur.vp.is_some(), *cur_vp);
                assert_eq!(new.vp.is_some(), *new_vp);
                if *cur_vp {
                    assert_eq!(hex::encode(&cur.vp.unwrap()[..16]), CUR16);
                }
            }
        }
        // Uppercase hex and a missing final newline are the same registers.
        let upper = healthy_mkvps()
            .to_uppercase()
            .replace("WK CUR: VALID 0X", "WK CUR: valid 0x");
        let upper = upper.replace("WK NEW: COMMITTED 0X", "WK NEW: committed 0x");
        assert_eq!(
            parse_ep11_mkvps(upper.trim_end()).unwrap(),
            parse_ep11_mkvps(&healthy_mkvps()).unwrap()
        );
    }

    #[test]
    fn anything_but_the_ep11_format_is_refused() {
        let cca = "AES NEW: empty 0x0000000000000000\nAES CUR: valid 0x0123456789abcdef\n\
                   AES OLD: invalid 0x0000000000000000\n";
        let valid = format!("valid {}", cur64());
        let committed = format!("committed {}", new64());
        let bad = [
            cca.to_owned(),
            String::new(),
            format!("WK CUR: {valid}\n"),
            format!("WK NEW: {committed}\nWK CUR: {valid}\n"),
            format!("{}WK OLD: - -\n", healthy_mkvps()),
            format!("{}\n", healthy_mkvps()),
            mkvps("valid -", "empty -"),
            mkvps(&format!("invalid {}", cur64()), "empty -"),
            mkvps(&format!("- {}", cur64()), "empty -"),
            mkvps(&valid, "committed -"),
            mkvps(&valid, &format!("empty {}", new64())),
            mkvps(&valid, "partial -"),
            mkvps(&valid, "full -"),
            mkvps(&format!("valid 0x{CUR16}"), "empty -"),
            mkvps(&format!("valid {}", &cur64()[2..]), "empty -"),
            mkvps(&format!("valid {}zz", &cur64()[..64]), "empty -"),
            mkvps(&valid, "empty - extra"),
            format!("WK  CUR {valid}\nWK NEW: empty -\n"),
        ];
        for text in bad {
            let e = parse_ep11_mkvps(&text).unwrap_err();
            assert!(e.to_string().contains("may not be EP11"), "{text:?}: {e}");
        }
        let e = parse_ep11_mkvps(cca).unwrap_err().to_string();
        assert!(e.contains("CCA format"), "{e}");
    }

    #[test]
    fn a_healthy_apqn_meets_the_expectation_and_serialises() {
        let tree = Tree::new();
        let (apqn, ..) = tree.ep11(0x0a, &healthy_mkvps());
        let status = read_apqn(&tree.root(), apqn).unwrap();
        assert!(status.ep11 && status.card_online && status.queue_online);
        assert_eq!(status.card_type, "CEX8P");
        assert_eq!(status.mkvps_raw, healthy_mkvps());
        assert!(evaluate(&status, &expect(CurrentWk::Expected, NewWk::Committed)).is_empty());
        assert!(evaluate(&status, &expect(CurrentWk::Expected, NewWk::Any)).is_empty());
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["apqn"]["id"], "0a.0011");
        assert_eq!(json["apqn"]["adapter"], 10);
        assert_eq!(json["cur"]["state"], "valid");
        assert_eq!(json["cur"]["vp"], cur64());
        assert_eq!(json["new"]["state"], "committed");
        assert_eq!(json["new"]["vp"], new64());
    }

    #[test]
    fn every_expectation_is_checked_against_the_registers() {
        let tree = Tree::new();
        let (apqn, _, queue) = tree.ep11(0x0a, &healthy_mkvps());
        let root = tree.root();
        let reasons = evaluate(
            &read_apqn(&root, apqn).unwrap(),
            &expect(CurrentWk::Expected, NewWk::Uncommitted),
        );
        assert_eq!(
            reasons,
            [format!(
                "0a.0011 (adapter 10, domain 17): WK NEW is committed {} but must be \
                 uncommitted 0x{NEW16}",
                new64()
            )]
        );
        // After activation: CUR holds the new WK and NEW is empty.
        set(
            &queue,
            "mkvps",
            &mkvps(&format!("valid {}", new64()), "empty -"),
        );
        let status = read_apqn(&root, apqn).unwrap();
        assert!(evaluate(&status, &expect(CurrentWk::New, NewWk::Empty)).is_empty());
        let reasons = evaluate(&status, &expect(CurrentWk::Expected, NewWk::Committed));
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert!(reasons[0].contains(&format!(
            "WK CUR is valid {} but must be valid 0x{CUR16}",
            new64()
        )));
        assert!(reasons[1].contains("WK NEW is empty but must be committed"));
        // No current WK at all.
        set(&queue, "mkvps", &mkvps("invalid -", "empty -"));
        let status = read_apqn(&root, apqn).unwrap();
        let reasons = evaluate(&status, &expect(CurrentWk::New, NewWk::Empty));
        assert_eq!(reasons.len(), 1);
        assert!(reasons[0].contains("WK CUR is invalid but must be valid"));
    }

    #[test]
    fn an_offline_queue_shows_unknown_registers_and_never_passes() {
        let tree = Tree::new();
        let (apqn, _, queue) = tree.ep11(0x0a, &mkvps("- -", "- -"));
        set(&queue, "online", "0");
        let status = read_apqn(&tree.root(), apqn).unwrap();
        assert!(!status.queue_online);
        assert_eq!(status.cur.state, CurState::Unknown);
        assert_eq!(status.new.state, NewState::Unknown);
        let reasons = evaluate(&status, &expect(CurrentWk::Expected, NewWk::Any));
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert!(reasons[0].ends_with("the queue is offline (`online` is 0)"));
        assert!(reasons[1].contains("WK CUR is unknown (`- -`"));
        assert!(reasons[2].contains("WK NEW is unknown (`- -`"));
        // `- -` fails even when the queue claims to be online.
        set(&queue, "online", "1");
        let status = read_apqn(&tree.root(), apqn).unwrap();
        assert_eq!(
            evaluate(&status, &expect(CurrentWk::Expected, NewWk::Any)).len(),
            2
        );
    }

    #[test]
    fn card_and_queue_gates_fail_closed() {
        let tree = Tree::new();
        let (apqn, card, queue) = tree.ep11(0x0a, &healthy_mkvps());
        let root = tree.root();
        let want = expect(CurrentWk::Expected, NewWk::Committed);
        let cases = [
            (
                &card,
                "config",
                "0",
                "card 0a is deconfigured (`config` is 0)",
            ),
            (
                &card,
                "chkstop",
                "1",
                "card 0a is check-stopped (`chkstop` is 1)",
            ),
            (&card, "online", "0", "card 0a is offline (`online` is 0)"),
            (
                &queue,
                "config",
                "0",
                "the queue is deconfigured (`config` is 0)",
            ),
            (
                &queue,
                "chkstop",
                "1",
                "the queue is check-stopped (`chkstop` is 1)",
            ),
        ];
        for (dir, file, value, reason) in cases {
            let before = fs::read_to_string(dir.join(file)).unwrap();
            set(dir, file, value);
            let reasons = evaluate(&read_apqn(&root, apqn).unwrap(), &want);
            assert_eq!(
                reasons,
                [format!("0a.0011 (adapter 10, domain 17): {reason}")],
                "{file}={value}"
            );
            set(dir, file, &before);
        }
        // zcrypt-sysfs.md 1.7: older kernels have no `config`/`chkstop`; that is OK.
        for dir in [&card, &queue] {
            fs::remove_file(dir.join("config")).unwrap();
            fs::remove_file(dir.join("chkstop")).unwrap();
        }
        let status = read_apqn(&root, apqn).unwrap();
        assert!(status.card_config && !status.card_chkstop);
        assert!(status.queue_config && !status.queue_chkstop);
        assert!(evaluate(&status, &want).is_empty());
        // But `online` must be there, and a flag must be 0 or 1.
        set(&queue, "online", "2");
        let e = read_apqn(&root, apqn).unwrap_err().to_string();
        assert!(e.contains("holds `2`, expected `0` or `1`"), "{e}");
        fs::remove_file(queue.join("online")).unwrap();
        let e = read_apqn(&root, apqn).unwrap_err().to_string();
        assert!(e.contains("0a.0011/online` does not exist"), "{e}");
    }

    #[test]
    fn a_cca_card_is_not_taken_for_ep11() {
        let tree = Tree::new();
        let apqn = Apqn::new(0x0b, 17);
        tree.card(0x0b, "CEX8C", "0x10000000");
        let cca = "AES NEW: empty 0x0000000000000000\nAES CUR: valid 0x0123456789abcdef\n\
                   AES OLD: invalid 0x0000000000000000\n";
        tree.queue(apqn, cca);
        let status = read_apqn(&tree.root(), apqn).unwrap();
        assert!(!status.ep11);
        assert_eq!(status.mkvps_raw, cca);
        let reasons = evaluate(&status, &expect(CurrentWk::Expected, NewWk::Committed));
        assert!(
            reasons[0].contains("card 0b is `CEX8C`, not an EP11 coprocessor"),
            "{reasons:?}"
        );
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        // A `P` type without the EP11 function bit is not EP11 either.
        let tree = Tree::new();
        tree.card(0x0b, "CEX8P", "0x10000000");
        tree.queue(apqn, &healthy_mkvps());
        let status = read_apqn(&tree.root(), apqn).unwrap();
        assert!(!status.ep11);
        assert_eq!(
            evaluate(&status, &expect(CurrentWk::Expected, NewWk::Committed)).len(),
            1
        );
        // A card that claims EP11 but prints another format is an error, not a status.
        let tree = Tree::new();
        tree.ep11(0x0b, cca);
        let e = read_apqn(&tree.root(), Apqn::new(0x0b, 17)).unwrap_err();
        assert!(matches!(e, ZcryptError::Unexpected { .. }), "{e}");
        assert!(e.to_string().contains("0b.0011/mkvps"), "{e}");
    }

    #[test]
    fn apqns_that_disagree_are_reported() {
        let tree = Tree::new();
        let other_new = format!("0x{CUR16}{TAIL16}");
        let (a, ..) = tree.ep11(0x0a, &healthy_mkvps());
        let (b, ..) = tree.ep11(
            0x0b,
            &mkvps(
                &format!("valid {}", cur64()),
                &format!("uncommitted {other_new}"),
            ),
        );
        let root = tree.root();
        let statuses = [read_apqn(&root, a).unwrap(), read_apqn(&root, b).unwrap()];
        // `new: any` passes each APQN alone; only the cross-check sees the difference.
        let any = expect(CurrentWk::Expected, NewWk::Any);
        assert!(statuses.iter().all(|s| evaluate(s, &any).is_empty()));
        let reasons = evaluate_all(&statuses, &any);
        assert_eq!(
            reasons,
            [format!(
                "WK NEW differs across APQNs: 0a.0011 (adapter 10, domain 17) has 0x{NEW16}, \
                 0b.0011 (adapter 11, domain 17) has 0x{CUR16}; every APQN of a token must \
                 hold the same wrapping key"
            )]
        );
        let reasons = evaluate_all(&statuses, &expect(CurrentWk::Expected, NewWk::Committed));
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert!(reasons[0].starts_with("0b.0011 (adapter 11, domain 17): WK NEW is uncommitted"));
        assert!(evaluate_all(&statuses[..1], &any).is_empty());
        assert_eq!(evaluate_all(&[], &any).len(), 1);
    }

    #[test]
    fn only_the_first_16_bytes_of_a_vp_count() {
        let tree = Tree::new();
        let other_tail = format!("0x{CUR16}{}", "f".repeat(32));
        let (a, ..) = tree.ep11(0x0a, &healthy_mkvps());
        let (b, ..) = tree.ep11(
            0x0b,
            &mkvps(
                &format!("valid {other_tail}"),
                &format!("committed {}", new64()),
            ),
        );
        // One hex digit off inside the first 16 bytes.
        let mut near = CUR16.to_owned();
        near.replace_range(31.., "e");
        let (c, ..) = tree.ep11(
            0x0c,
            &mkvps(
                &format!("valid 0x{near}{TAIL16}"),
                &format!("committed {}", new64()),
            ),
        );
        let root = tree.root();
        let want = expect(CurrentWk::Expected, NewWk::Committed);
        let (a, b, c) = (
            read_apqn(&root, a).unwrap(),
            read_apqn(&root, b).unwrap(),
            read_apqn(&root, c).unwrap(),
        );
        assert!(evaluate(&b, &want).is_empty());
        assert!(evaluate_all(&[a.clone(), b], &want).is_empty());
        assert_eq!(evaluate(&c, &want).len(), 1);
        let reasons = evaluate_all(&[a, c], &want);
        assert!(
            reasons
                .iter()
                .any(|r| r.starts_with("WK CUR differs across APQNs"))
        );
    }

    #[test]
    fn a_missing_apqn_or_mkvps_is_an_error_naming_the_path() {
        let tree = Tree::new();
        let (apqn, _, queue) = tree.ep11(0x0a, &healthy_mkvps());
        let root = tree.root();
        let e = read_apqn(&root, Apqn::new(0x0a, 18))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("sys/bus/ap/devices/0a.0012` does not exist"),
            "{e}"
        );
        assert!(
            e.contains("may not exist") && e.contains("older than 5.6"),
            "{e}"
        );
        assert!(e.starts_with("0a.0012 (adapter 10, domain 18): "), "{e}");
        fs::remove_file(queue.join("mkvps")).unwrap();
        let e = read_apqn(&root, apqn).unwrap_err().to_string();
        assert!(e.contains("0a.0011/mkvps` does not exist"), "{e}");
        assert!(e.contains("older than 5.6"), "{e}");
    }

    #[test]
    fn a_queue_bound_to_another_driver_is_refused() {
        let tree = Tree::new();
        let (apqn, _, queue) = tree.ep11(0x0a, &healthy_mkvps());
        fs::remove_file(queue.join("driver")).unwrap();
        symlink("../../../../bus/ap/drivers/vfio_ap", queue.join("driver")).unwrap();
        let e = read_apqn(&tree.root(), apqn).unwrap_err().to_string();
        assert!(e.contains("names driver `vfio_ap`, not `cex4queue`"), "{e}");
    }

    /// zcrypt-sysfs.md 1.6b, as captured from a CEX6 queue.
    const CCA_CAPTURED: &str = "AES NEW: empty 0x0000000000000000\nAES CUR: invalid \
        0x0000000000000000\nAES OLD: invalid 0x0000000000000000\nAPKA NEW: empty \
        0x0000000000000000\nAPKA CUR: valid 0x755cb8e7740dae51\nAPKA OLD: invalid \
        0x0000000000000000\nASYM NEW: empty -\nASYM CUR: empty -\nASYM OLD: empty -\n";

    fn cca_apka_interrupted() -> String {
        let lines: Vec<&str> = CCA_CAPTURED.lines().collect();
        let mut text = lines[..3].join("\n");
        text.push_str("\nAPKA NEW: - -\nAPKA CUR: - -\nAPKA OLD: - -\n");
        text.push_str(&lines[6..].join("\n"));
        text.push('\n');
        text
    }

    #[test]
    fn a_cca_card_shows_its_master_keys_and_reads_back_from_the_journal() {
        let tree = Tree::new();
        let apqn = Apqn::new(0x0c, 17);
        tree.card(0x0c, "CEX8C", "0x10000000");
        tree.queue(apqn, CCA_CAPTURED);
        let status = read_apqn(&tree.root(), apqn).unwrap();
        assert!(!status.ep11 && !status.state_unknown());
        let keys = status.cca.as_ref().unwrap();
        assert_eq!(keys, &parse_cca_mkvps(CCA_CAPTURED).unwrap());
        assert_eq!(status.cur.state, CurState::Unknown);
        let json = serde_json::to_string(&status).unwrap();
        assert!(
            json.contains(r#""cca":{"aes":{"new":{"state":"empty","vp":null}"#),
            "{json}"
        );
        let back: ApqnStatus = serde_json::from_str(&json).unwrap();
        assert_eq!(back, status);
        // An EP11 status has no `cca` key, and a journal without one reads back as `None`.
        let (ep11, ..) = tree.ep11(0x0a, &healthy_mkvps());
        let ep11 = read_apqn(&tree.root(), ep11).unwrap();
        let json = serde_json::to_value(&ep11).unwrap();
        assert!(json.get("cca").is_none());
        assert_eq!(serde_json::from_value::<ApqnStatus>(json).unwrap(), ep11);
        // A CCA card that prints something else is an error naming the file and the line.
        let queue = tree.0.path().join("sys/devices/ap/card0c/0c.0011");
        set(&queue, "mkvps", &healthy_mkvps());
        let e = read_apqn(&tree.root(), apqn).unwrap_err().to_string();
        assert!(e.contains("0c.0011/mkvps") && e.contains("line 1"), "{e}");
    }

    /// `read_apqn_with` whose pauses run `between` (the sysfs tree changing meanwhile) and are
    /// counted.
    fn read_counting(
        root: &HostRoot,
        apqn: Apqn,
        mut between: impl FnMut(usize),
    ) -> (ApqnStatus, usize) {
        let mut pauses = 0;
        let status = read_apqn_with(root, apqn, &mut |_| {
            pauses += 1;
            between(pauses);
        })
        .unwrap();
        (status, pauses)
    }

    #[test]
    fn an_interrupted_read_is_read_again_before_the_state_is_unknown() {
        let tree = Tree::new();
        let root = tree.root();
        // EP11: `- -` once, then the real registers.
        let (ep11, _, ep11_queue) = tree.ep11(0x0a, &mkvps("- -", "- -"));
        let (status, pauses) = read_counting(&root, ep11, |_| {
            set(&ep11_queue, "mkvps", &healthy_mkvps());
        });
        assert_eq!((pauses, status.cur.state), (1, CurState::Valid));
        assert_eq!(status.mkvps_raw, healthy_mkvps());
        // CCA: only the APKA lines, for two reads.
        let cca = Apqn::new(0x0c, 17);
        tree.card(0x0c, "CEX8C", "0x10000000");
        let cca_queue = tree.queue(cca, &cca_apka_interrupted());
        let (status, pauses) = read_counting(&root, cca, |n| {
            if n == 2 {
                set(&cca_queue, "mkvps", CCA_CAPTURED);
            }
        });
        assert_eq!(pauses, 2);
        assert_eq!(status.cca, Some(parse_cca_mkvps(CCA_CAPTURED).unwrap()));
        // A `- -` that lasts stands as unknown after a bounded number of re-reads.
        set(&cca_queue, "mkvps", &cca_apka_interrupted());
        let (status, pauses) = read_counting(&root, cca, |_| {});
        assert_eq!(pauses, REREAD_PAUSES.len());
        assert!(status.state_unknown());
        assert_eq!(status.mkvps_raw, cca_apka_interrupted());
        set(
            &ep11_queue,
            "mkvps",
            &mkvps(&format!("valid {}", cur64()), "- -"),
        );
        let (status, pauses) = read_counting(&root, ep11, |_| {});
        assert_eq!(
            (pauses, status.new.state),
            (REREAD_PAUSES.len(), NewState::Unknown)
        );
        // An offline queue answers `- -` by design: no re-reads.
        set(&cca_queue, "online", "0");
        let (status, pauses) = read_counting(&root, cca, |_| {});
        assert_eq!(pauses, 0);
        assert!(status.state_unknown() && !status.queue_online);
        // Nor does a card that is neither EP11 nor CCA.
        let other = Apqn::new(0x0d, 17);
        tree.card(0x0d, "CEX8A", "0x08000000");
        tree.queue(other, &mkvps("- -", "- -"));
        assert_eq!(read_counting(&root, other, |_| {}).1, 0);
    }
}
