//! One lock for every test that uses the machine's openCryptoki soft token (slot 3, behind
//! the one real pkcsslotd). The token is shared by every test process on the machine: a
//! parallel runner (`cargo nextest run` runs each test in its own process, several at once)
//! or another checkout's suite could otherwise list or create keys while
//! `ock_restore` swaps the whole store under them. The lock is the file `scripts/test`
//! sets up the token under (`MKPLAN_TEST_OCK_LOCK`), so no test starts while it does.

use std::fs::{File, OpenOptions};

/// Held while a test uses the soft token; released when dropped (or when the process ends).
pub struct TokenLock {
    _file: File,
}

/// Waits until no other test (or `scripts/test`) uses the soft token, then holds it.
pub fn lock_the_soft_token() -> TokenLock {
    let path = std::env::var("MKPLAN_TEST_OCK_LOCK").unwrap_or_else(|_| {
        panic!("MKPLAN_TEST_OCK_LOCK is not set: run the tests through scripts/test")
    });
    // flock needs no write access: a lock file root created is still usable read-only.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .or_else(|_| File::open(&path))
        .unwrap_or_else(|e| panic!("cannot open the soft token's lock `{path}`: {e}"));
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
        .unwrap_or_else(|e| panic!("cannot lock `{path}`: {e}"));
    TokenLock { _file: file }
}
