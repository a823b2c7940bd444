//! `mkplan_host::pkcs11` against real PKCS#11 modules: SoftHSM2 (a fresh token per test) and
//! openCryptoki 3.8.1's soft token behind the machine's one real `pkcsslotd`. Objects are
//! made with independent tools (`softhsm2-util`, opensc's `pkcs11-tool`, `openssl`), and
//! signatures are checked by `openssl`. `scripts/test` installs the components, starts the
//! daemon, initialises the soft token and exports the `MKPLAN_TEST_*` variables used here.
//!
//! SoftHSM reads `SOFTHSM2_CONF` once, at `C_Initialize`, from the process environment; setting
//! it from parallel test threads is unsound. So each SoftHSM test runs its body in a child
//! process of this test binary (`in_softhsm_process`) whose environment names its own token
//! directory.
//!
//! The openCryptoki tests use the machine's one soft token, which `ock_restore` replaces
//! wholesale: each holds the soft token's lock (`support/token_lock.rs`), so they are safe
//! under a parallel runner such as `cargo nextest run`.

#[path = "support/token_lock.rs"]
mod token_lock;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::Attribute;
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use mkplan_engine::record::probe::{Inventory, InventoryComparison, ObjectInfo, Usability};
use mkplan_engine::secret::Pin;
use mkplan_host::pkcs11::{KeyRef, Pkcs11Error, public_key_pem, sign_ecdsa_p256};
use sha2::{Digest, Sha256};

/// The whole inventory in memory, as the probe's port gives it to tests, with the module's
/// own error.
fn probe(module: &Path, slot: u64, pin: &Pin) -> Result<Inventory, Pkcs11Error> {
    let mut objects = Vec::new();
    let module_name = mkplan_host::pkcs11::probe(module, slot, pin, &mut |object| {
        objects.push(object);
        Ok(())
    })?;
    objects.sort_by(ObjectInfo::order);
    let mut counts = std::collections::BTreeMap::new();
    for object in &objects {
        let key = match &object.key_type {
            Some(key_type) => format!("{}/{key_type}", object.class),
            None => object.class.clone(),
        };
        *counts.entry(key).or_insert(0) += 1;
    }
    Ok(Inventory {
        module: module_name,
        slot,
        objects,
        file: None,
        totals: None,
        counts,
    })
}

fn compare(before: &Inventory, after: &Inventory) -> InventoryComparison {
    let stream = |inventory: &Inventory| inventory.objects.clone().into_iter().map(Ok::<_, ()>);
    mkplan_engine::record::probe::compare(stream(before), stream(after)).unwrap()
}

/// The user PIN of every SoftHSM test token: the no-leak PIN of the issues.
const SOFTHSM_PIN: &str = "S3cr3t-PIN-4711";
const SOFTHSM_SO_PIN: &str = "so-12345678";
/// Set in the child process: the test's temporary directory (holding `softhsm2.conf`).
const CHILD_DIR: &str = "MKPLAN_TEST_SOFTHSM_CHILD_DIR";

fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests through scripts/test, which sets up the PKCS#11 components")
    })
}

fn run(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

// ---------------------------------------------------------------------------------------------
// SoftHSM2: one token per test, in a child process

/// A fresh SoftHSM token, initialised in this (child) process's token directory.
struct SoftHsm {
    module: PathBuf,
    slot: u64,
    dir: PathBuf,
}

impl SoftHsm {
    fn init(dir: PathBuf) -> Self {
        let module = PathBuf::from(required_env("MKPLAN_TEST_SOFTHSM_MODULE"));
        let out = run(Command::new("softhsm2-util").args([
            "--init-token",
            "--free",
            "--label",
            "t",
            "--so-pin",
            SOFTHSM_SO_PIN,
            "--pin",
            SOFTHSM_PIN,
        ]));
        // "The token has been initialized and is reassigned to slot 1234567"
        let slot = out
            .split_whitespace()
            .last()
            .and_then(|word| word.parse().ok())
            .unwrap_or_else(|| panic!("no slot in softhsm2-util's output: {out}"));
        Self { module, slot, dir }
    }

    fn pin(&self) -> Pin {
        Pin::new(SOFTHSM_PIN.to_owned())
    }

    /// `pkcs11-tool` logged in on this token.
    fn tool(&self, args: &[&str]) -> String {
        run(Command::new("pkcs11-tool")
            .arg("--module")
            .arg(&self.module)
            .args([
                "--slot",
                &self.slot.to_string(),
                "--login",
                "--pin",
                SOFTHSM_PIN,
            ])
            .args(args))
    }

    /// AES, EC P-256 and RSA 2048 keys, a certificate and a data object.
    fn populate(&self) {
        self.tool(&[
            "--keygen",
            "--key-type",
            "AES:32",
            "--label",
            "aes",
            "--id",
            "01",
        ]);
        self.tool(&[
            "--keypairgen",
            "--key-type",
            "EC:prime256v1",
            "--label",
            "ec",
            "--id",
            "02",
        ]);
        self.tool(&[
            "--keypairgen",
            "--key-type",
            "rsa:2048",
            "--label",
            "rsa",
            "--id",
            "03",
        ]);
        let key = self.dir.join("cert.key");
        let cert = self.dir.join("cert.der");
        run(Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args([
                "-nodes",
                "-subj",
                "/CN=mkplan test",
                "-days",
                "1",
                "-outform",
                "DER",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert));
        self.tool(&[
            "--write-object",
            cert.to_str().unwrap(),
            "--type",
            "cert",
            "--label",
            "cert",
            "--id",
            "04",
        ]);
        let data = self.dir.join("data.bin");
        fs::write(&data, b"some data").unwrap();
        self.tool(&[
            "--write-object",
            data.to_str().unwrap(),
            "--type",
            "data",
            "--label",
            "data",
        ]);
    }

    /// An AES key whose `CKA_ENCRYPT` is false (pkcs11-tool always sets it), made with cryptoki
    /// directly and finalized before the library under test loads the module again.
    fn aes_key_that_cannot_encrypt(&self, label: &str) {
        let pkcs11 = Pkcs11::new(&self.module).unwrap();
        pkcs11
            .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
            .unwrap();
        let slot = pkcs11
            .get_all_slots()
            .unwrap()
            .into_iter()
            .find(|slot| slot.id() == self.slot)
            .unwrap();
        let session = pkcs11.open_rw_session(slot).unwrap();
        session
            .login(UserType::User, Some(&AuthPin::from(SOFTHSM_PIN)))
            .unwrap();
        session
            .generate_key(
                &Mechanism::AesKeyGen,
                &[
                    Attribute::Token(true),
                    Attribute::Label(label.as_bytes().to_vec()),
                    Attribute::Id(vec![0x06]),
                    Attribute::ValueLen(32.into()),
                    Attribute::Encrypt(false),
                    Attribute::Decrypt(false),
                    Attribute::Wrap(true),
                ],
            )
            .unwrap();
        session.logout().unwrap();
        session.close().unwrap();
        pkcs11.finalize().unwrap();
    }
}

/// Runs `body` with a fresh SoftHSM token in a child process of this test binary (see the
/// module docs). `test_name` is the calling test's name, which the child runs alone.
fn in_softhsm_process(test_name: &str, body: impl FnOnce(SoftHsm)) {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        body(SoftHsm::init(PathBuf::from(dir)));
        return;
    }
    required_env("MKPLAN_TEST_SOFTHSM_MODULE");
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    fs::create_dir(&tokens).unwrap();
    let conf = dir.path().join("softhsm2.conf");
    fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    let output = Command::new(std::env::current_exe().unwrap())
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env("SOFTHSM2_CONF", &conf)
        .env(CHILD_DIR, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "the SoftHSM test process for `{test_name}` failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
}

fn find<'a>(inventory: &'a Inventory, class: &str, label: &str) -> &'a ObjectInfo {
    inventory
        .objects
        .iter()
        .find(|o| o.class == class && o.label == label)
        .unwrap_or_else(|| panic!("no {class} `{label}` in {:#?}", inventory.objects))
}

#[test]
fn softhsm_probe_lists_every_object_and_exercises_the_keys() {
    in_softhsm_process(
        "softhsm_probe_lists_every_object_and_exercises_the_keys",
        |hsm| {
            hsm.populate();
            hsm.aes_key_that_cannot_encrypt("aes-wrap-only");
            let inventory = probe(&hsm.module, hsm.slot, &hsm.pin()).unwrap();

            let expected = [
                ("CKO_SECRET_KEY", "aes", Some("CKK_AES"), "01"),
                ("CKO_PRIVATE_KEY", "ec", Some("CKK_EC"), "02"),
                ("CKO_PUBLIC_KEY", "ec", Some("CKK_EC"), "02"),
                ("CKO_PRIVATE_KEY", "rsa", Some("CKK_RSA"), "03"),
                ("CKO_PUBLIC_KEY", "rsa", Some("CKK_RSA"), "03"),
                ("CKO_CERTIFICATE", "cert", None, "04"),
                ("CKO_DATA", "data", None, ""),
                ("CKO_SECRET_KEY", "aes-wrap-only", Some("CKK_AES"), "06"),
            ];
            assert_eq!(
                inventory.objects.len(),
                expected.len(),
                "{:#?}",
                inventory.objects
            );
            for (class, label, key_type, id) in expected {
                let object = find(&inventory, class, label);
                assert_eq!(object.key_type.as_deref(), key_type, "{object:?}");
                assert_eq!(object.id, id, "{object:?}");
                assert!(object.token, "{object:?}");
                // SoftHSM has no CKA_IBM_OPAQUE.
                assert_eq!((object.blob_len, &object.blob_sha256), (None, &None));
            }
            for (class, label) in [
                ("CKO_SECRET_KEY", "aes"),
                ("CKO_PRIVATE_KEY", "ec"),
                ("CKO_PRIVATE_KEY", "rsa"),
            ] {
                assert_eq!(find(&inventory, class, label).usable, Usability::Usable);
            }
            assert_eq!(
                find(&inventory, "CKO_SECRET_KEY", "aes-wrap-only").usable,
                Usability::NotExercised("not exercised: CKA_ENCRYPT false".to_owned())
            );
            for (class, label) in [
                ("CKO_PUBLIC_KEY", "ec"),
                ("CKO_PUBLIC_KEY", "rsa"),
                ("CKO_CERTIFICATE", "cert"),
                ("CKO_DATA", "data"),
            ] {
                let object = find(&inventory, class, label);
                assert!(
                    matches!(object.usable, Usability::NotExercised(_)),
                    "{object:?}"
                );
            }

            let counts: Vec<(&str, usize)> = inventory
                .counts
                .iter()
                .map(|(k, v)| (k.as_str(), *v))
                .collect();
            assert_eq!(
                counts,
                [
                    ("CKO_CERTIFICATE", 1),
                    ("CKO_DATA", 1),
                    ("CKO_PRIVATE_KEY/CKK_EC", 1),
                    ("CKO_PRIVATE_KEY/CKK_RSA", 1),
                    ("CKO_PUBLIC_KEY/CKK_EC", 1),
                    ("CKO_PUBLIC_KEY/CKK_RSA", 1),
                    ("CKO_SECRET_KEY/CKK_AES", 2),
                ]
            );
            assert_eq!(inventory.keys().count(), 6);
            assert_eq!(inventory.slot, hsm.slot);

            let json = serde_json::to_string(&inventory).unwrap();
            assert!(json.contains(r#""usable":{"state":"usable"}"#), "{json}");
            assert!(!json.contains(SOFTHSM_PIN));

            // The module was finalized: it loads and probes again in the same process.
            assert_eq!(probe(&hsm.module, hsm.slot, &hsm.pin()).unwrap(), inventory);
        },
    );
}

#[test]
fn softhsm_wrong_pin_says_the_counter_was_incremented_and_never_shows_a_pin() {
    in_softhsm_process(
        "softhsm_wrong_pin_says_the_counter_was_incremented_and_never_shows_a_pin",
        |hsm| {
            hsm.tool(&[
                "--keypairgen",
                "--key-type",
                "EC:prime256v1",
                "--label",
                "ec",
            ]);
            let wrong = "Wr0ng-PIN-0815";
            let error = probe(&hsm.module, hsm.slot, &Pin::new(wrong.to_owned())).unwrap_err();
            let signing = sign_ecdsa_p256(
                &hsm.module,
                hsm.slot,
                KeyRef::Label("ec".into()),
                &Pin::new(wrong.to_owned()),
                &[0; 32],
            )
            .unwrap_err();
            for error in [&error, &signing] {
                assert!(
                    matches!(error, Pkcs11Error::PinIncorrect { .. }),
                    "{error:?}"
                );
                let text = format!("{error} {error:?}");
                assert!(
                    text.contains("failed-login counter was incremented"),
                    "{text}"
                );
                assert!(text.contains("CKR_PIN_INCORRECT"), "{text}");
                assert!(text.contains(&format!("slot {}", hsm.slot)), "{text}");
                assert!(text.contains("libsofthsm2.so"), "{text}");
                assert!(
                    !text.contains(wrong) && !text.contains(SOFTHSM_PIN),
                    "{text}"
                );
            }

            // Other errors carry no PIN either; the right PIN still works.
            let missing = sign_ecdsa_p256(
                &hsm.module,
                hsm.slot,
                KeyRef::Label("nope".into()),
                &hsm.pin(),
                &[0; 32],
            )
            .unwrap_err();
            let text = format!("{missing} {missing:?}");
            assert!(
                text.contains("no EC private key with label `nope`"),
                "{text}"
            );
            assert!(!text.contains(SOFTHSM_PIN));
            let absent = probe(&hsm.module, 4_000_000_000, &hsm.pin()).unwrap_err();
            assert!(
                matches!(absent, Pkcs11Error::NoSuchSlot { .. }),
                "{absent:?}"
            );
            assert!(!format!("{absent} {absent:?}").contains(SOFTHSM_PIN));
            probe(&hsm.module, hsm.slot, &hsm.pin()).unwrap();
        },
    );
}

#[test]
fn softhsm_ecdsa_signature_verifies_with_openssl() {
    in_softhsm_process("softhsm_ecdsa_signature_verifies_with_openssl", |hsm| {
        hsm.tool(&[
            "--keypairgen",
            "--key-type",
            "EC:prime256v1",
            "--label",
            "report-signer",
            "--id",
            "a1b2",
        ]);
        hsm.tool(&[
            "--keypairgen",
            "--key-type",
            "rsa:2048",
            "--label",
            "rsa-key",
        ]);
        let file = hsm.dir.join("report.json");
        fs::write(&file, b"{\"outcome\":\"succeeded\"}\n").unwrap();
        let digest: [u8; 32] = Sha256::digest(fs::read(&file).unwrap()).into();

        let signature = sign_ecdsa_p256(
            &hsm.module,
            hsm.slot,
            KeyRef::Label("report-signer".into()),
            &hsm.pin(),
            &digest,
        )
        .unwrap();
        assert_eq!(signature[0], 0x30, "a DER SEQUENCE");
        let pem = public_key_pem(
            &hsm.module,
            hsm.slot,
            KeyRef::Id(vec![0xa1, 0xb2]),
            &hsm.pin(),
        )
        .unwrap();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{pem}");
        let sig = hsm.dir.join("report.json.sig");
        let public = hsm.dir.join("signer.pub.pem");
        fs::write(&sig, &signature).unwrap();
        fs::write(&public, &pem).unwrap();

        let verify = || {
            Command::new("openssl")
                .args(["dgst", "-sha256", "-verify"])
                .arg(&public)
                .arg("-signature")
                .arg(&sig)
                .arg(&file)
                .output()
                .unwrap()
        };
        let good = verify();
        assert!(
            good.status.success() && String::from_utf8_lossy(&good.stdout).contains("Verified OK"),
            "{good:?}"
        );
        fs::write(&file, b"{\"outcome\":\"failed\"}\n").unwrap();
        let bad = verify();
        assert!(
            !bad.status.success(),
            "a changed file must not verify: {bad:?}"
        );

        // The public key agrees with p256's own verification, and an RSA key is refused.
        let key =
            <p256::ecdsa::VerifyingKey as p256::pkcs8::DecodePublicKey>::from_public_key_pem(&pem)
                .unwrap();
        let parsed = p256::ecdsa::Signature::from_der(&signature).unwrap();
        p256::ecdsa::signature::hazmat::PrehashVerifier::verify_prehash(&key, &digest, &parsed)
            .unwrap();
        let rsa = sign_ecdsa_p256(
            &hsm.module,
            hsm.slot,
            KeyRef::Label("rsa-key".into()),
            &hsm.pin(),
            &digest,
        )
        .unwrap_err();
        assert!(matches!(rsa, Pkcs11Error::KeyNotFound { .. }), "{rsa:?}");
    });
}

#[test]
fn softhsm_compare_reports_a_removed_key() {
    in_softhsm_process("softhsm_compare_reports_a_removed_key", |hsm| {
        hsm.populate();
        let before = probe(&hsm.module, hsm.slot, &hsm.pin()).unwrap();
        let unchanged = compare(&before, &probe(&hsm.module, hsm.slot, &hsm.pin()).unwrap());
        assert!(unchanged.ok(), "{unchanged:#?}");

        hsm.tool(&["--delete-object", "--type", "privkey", "--label", "rsa"]);
        let after = probe(&hsm.module, hsm.slot, &hsm.pin()).unwrap();
        let comparison = compare(&before, &after);
        assert!(!comparison.ok() && !comparison.same_keys);
        assert!(comparison.all_usable, "{comparison:#?}");
        assert_eq!(comparison.missing.len(), 1, "{comparison:#?}");
        let missing = &comparison.missing[0];
        assert_eq!(
            (
                missing.class.as_str(),
                missing.id.as_str(),
                missing.label.as_str()
            ),
            ("CKO_PRIVATE_KEY", "03", "rsa")
        );
        assert!(comparison.extra.is_empty() && comparison.newly_unusable.is_empty());
        let json = serde_json::to_value(&comparison).unwrap();
        assert_eq!(json["missing"][0]["label"], "rsa");
    });
}

// ---------------------------------------------------------------------------------------------
// openCryptoki 3.8.1 soft token (slot 3) with the real pkcsslotd

struct OpenCryptoki {
    module: PathBuf,
    slot: u64,
    pin: String,
}

impl OpenCryptoki {
    fn from_env() -> Self {
        Self {
            module: PathBuf::from(required_env("MKPLAN_TEST_OCK_MODULE")),
            slot: required_env("MKPLAN_TEST_OCK_SLOT")
                .parse()
                .expect("MKPLAN_TEST_OCK_SLOT is a number"),
            pin: required_env("MKPLAN_TEST_OCK_USER_PIN"),
        }
    }

    fn tool(&self, args: &[&str]) -> String {
        run(Command::new("pkcs11-tool")
            .arg("--module")
            .arg(&self.module)
            .args([
                "--slot",
                &self.slot.to_string(),
                "--login",
                "--pin",
                &self.pin,
            ])
            .args(args))
    }
}

/// Deletes the test's keys from the shared soft token however the test ends.
struct DeleteOnDrop<'a> {
    token: &'a OpenCryptoki,
    labels: Vec<String>,
}

impl Drop for DeleteOnDrop<'_> {
    fn drop(&mut self) {
        for label in &self.labels {
            for kind in ["secrkey", "privkey", "pubkey"] {
                let _ = Command::new("pkcs11-tool")
                    .arg("--module")
                    .arg(&self.token.module)
                    .args(["--slot", &self.token.slot.to_string()])
                    .args(["--login", "--pin", &self.token.pin])
                    .args(["--delete-object", "--type", kind, "--label", label])
                    .output();
            }
        }
    }
}

/// `mkplan-probe-<kind>-<random>`: tests in parallel runs never share a key.
fn unique_label(kind: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("mkplan-probe-{kind}-{:x}{nanos:08x}", std::process::id())
}

#[test]
fn opencryptoki_soft_token_probe_lists_and_exercises_new_keys() {
    let _token = token_lock::lock_the_soft_token();
    let ock = OpenCryptoki::from_env();
    let aes = unique_label("aes");
    let rsa = unique_label("rsa");
    let pin = Pin::new(ock.pin.clone());
    let before = probe(&ock.module, ock.slot, &pin).unwrap();
    assert!(
        !before
            .objects
            .iter()
            .any(|o| o.label == aes || o.label == rsa)
    );

    let cleanup = DeleteOnDrop {
        token: &ock,
        labels: vec![aes.clone(), rsa.clone()],
    };
    ock.tool(&["--keygen", "--key-type", "AES:32", "--label", &aes]);
    ock.tool(&[
        "--keypairgen",
        "--key-type",
        "rsa:2048",
        "--label",
        &rsa,
        "--id",
        "0b0c",
    ]);
    let with_keys = probe(&ock.module, ock.slot, &pin).unwrap();
    let key = find(&with_keys, "CKO_SECRET_KEY", &aes);
    assert_eq!(key.key_type.as_deref(), Some("CKK_AES"));
    assert_eq!(key.usable, Usability::Usable, "{key:?}");
    assert!(key.token);
    // The soft token of 3.8.1 has no CKM_SHA256_RSA_PKCS: the probe signs with CKM_RSA_PKCS.
    let private = find(&with_keys, "CKO_PRIVATE_KEY", &rsa);
    assert_eq!(
        (private.key_type.as_deref(), private.id.as_str()),
        (Some("CKK_RSA"), "0b0c")
    );
    assert_eq!(private.usable, Usability::Usable, "{private:?}");
    let public = find(&with_keys, "CKO_PUBLIC_KEY", &rsa);
    assert!(
        matches!(public.usable, Usability::NotExercised(_)),
        "{public:?}"
    );
    assert!(with_keys.counts["CKO_SECRET_KEY/CKK_AES"] >= 1);
    assert!(with_keys.counts["CKO_PRIVATE_KEY/CKK_RSA"] >= 1);
    assert_eq!(Path::new(&with_keys.module), ock.module);

    // The new keys show as extra against the probe before them, and as missing once deleted.
    let added = compare(&before, &with_keys);
    assert_eq!(
        added
            .extra
            .iter()
            .filter(|o| o.label == aes || o.label == rsa)
            .count(),
        3,
        "{added:#?}"
    );
    drop(cleanup);
    let after = probe(&ock.module, ock.slot, &pin).unwrap();
    assert!(
        !after
            .objects
            .iter()
            .any(|o| o.label == aes || o.label == rsa),
        "the test keys were not deleted: {:#?}",
        after.objects
    );
    let removed = compare(&with_keys, &after);
    assert!(
        removed.missing.iter().any(|o| o.label == aes),
        "{removed:#?}"
    );
}

#[test]
fn opencryptoki_unknown_slot_is_named() {
    let _token = token_lock::lock_the_soft_token();
    let ock = OpenCryptoki::from_env();
    let error = probe(&ock.module, 77, &Pin::new(ock.pin.clone())).unwrap_err();
    let text = error.to_string();
    assert!(text.starts_with("slot 77 not found in `"), "{text}");
    assert!(
        text.contains("slots present: ") && text.contains(&ock.slot.to_string()),
        "{text}"
    );
    assert!(!text.contains(&ock.pin));
}
