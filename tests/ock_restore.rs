//! Backup and restore of a real openCryptoki token store (the soft token, slot 3, with the
//! real pkcsslotd started by `scripts/test`): back up, change the store through PKCS#11,
//! restore, and the store equals the backup byte for byte and still works. The store is
//! the machine's: the test holds the soft token's lock (`support/token_lock.rs`).

#[path = "support/token_lock.rs"]
mod token_lock;

use std::path::{Path, PathBuf};
use std::process::Command;

use mkplan_engine::ports::keys::KeyProber;
use mkplan_engine::record::probe::Inventory;
use mkplan_engine::secret::Pin;
use mkplan_host::archive;
use mkplan_host::pkcs11::Pkcs11Prober;
use sha2::{Digest, Sha256};

const STORE: &str = "/var/lib/opencryptoki/swtok";

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the tests with scripts/test"))
}

fn files(dir: &Path, base: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, base, out);
        } else {
            let rel = path.strip_prefix(base).unwrap().display().to_string();
            out.push((
                rel,
                hex::encode(Sha256::digest(std::fs::read(&path).unwrap())),
            ));
        }
    }
}

#[test]
fn a_restored_store_is_byte_identical_and_still_works() {
    let probe = |module: &Path, slot: u64, pin: &Pin| Pkcs11Prober.probe(module, slot, pin);
    let _token = token_lock::lock_the_soft_token();
    let module = PathBuf::from(env("MKPLAN_TEST_OCK_MODULE"));
    let slot: u64 = env("MKPLAN_TEST_OCK_SLOT").parse().unwrap();
    let pin = env("MKPLAN_TEST_OCK_USER_PIN");
    let store = Path::new(STORE);
    let backups = tempfile::tempdir().unwrap();
    let run_id = format!("test{}", std::process::id());

    let before = probe(&module, slot, &Pin::new(pin.clone())).expect("the soft token works before");
    let record = archive::backup(store, backups.path(), &format!("{run_id}-swtok")).unwrap();
    assert!(record.verified);

    let label = format!("mkplan-restore-{run_id}");
    let made = Command::new("pkcs11-tool")
        .args([
            "--module",
            module.to_str().unwrap(),
            "--slot",
            &slot.to_string(),
            "--login",
            "--pin",
            &pin,
        ])
        .args(["--keygen", "--key-type", "AES:16", "--label", &label])
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let changed = probe(&module, slot, &Pin::new(pin.clone())).unwrap();
    assert!(
        changed.objects.iter().any(|o| o.label == label),
        "the new key is in the store"
    );

    let journaled = archive::Journaled {
        archive_sha256: &record.archive_sha256,
        manifest_sha256: &record.manifest_sha256,
        file_bytes: None,
    };
    let restored =
        archive::restore(&record.archive, &record.manifest, store, &run_id, journaled).unwrap();
    let replaced = restored
        .replaced
        .clone()
        .expect("the changed store is kept");
    // What mkplan's restore step does next: without it, openCryptoki's shared index still
    // lists the key made after the backup, with a handle that no longer exists.
    let root = mkplan_engine::ports::root::HostRoot::system();
    mkplan_host::store::discard_token_index(&root, store).unwrap();

    let mut manifest = archive::ManifestReader::open(&record.manifest).unwrap();
    let mut live = Vec::new();
    files(store, store.parent().unwrap(), &mut live);
    live.sort();
    let mut backed_up: Vec<(String, String)> = Vec::new();
    while let Some(member) = manifest.next_member().unwrap() {
        if let archive::Member::File(f) = member {
            backed_up.push((f.path, f.sha256));
        }
    }
    backed_up.sort();
    assert_eq!(
        live, backed_up,
        "the store equals the backup's manifest byte for byte"
    );

    let after =
        probe(&module, slot, &Pin::new(pin.clone())).expect("the token works after the restore");
    assert!(
        !after.objects.iter().any(|o| o.label == label),
        "the key made after the backup is gone"
    );
    let stream = |inventory: Inventory| inventory.objects.into_iter().map(Ok::<_, ()>);
    let comparison = mkplan_engine::record::probe::compare(stream(before), stream(after)).unwrap();
    assert!(
        comparison.same_keys && comparison.all_usable,
        "{comparison:?}"
    );
    std::fs::remove_dir_all(replaced).unwrap();
}
