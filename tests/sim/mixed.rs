//! One concurrent operation over an EP11 and a CCA token (opencryptoki-ep11.md 2: the tool
//! takes every APQN and every affected slot in one call), with an application using both
//! tokens the whole time.

use serde_json::json;

use super::spec_host::*;
use super::{PIN, text};

const ALL: &str = "0a.0011,0b.0011,0c.0011,0d.0011";

fn mixed_host() -> Host {
    Host::new(
        json!({
            "tokens": [
                ep11_token("ep11", 4, &["0a.0011", "0b.0011"]),
                cca_token("cca", 5, &["0c.0011", "0d.0011"])
            ],
            "apps": [{"name": "both", "interval_ms": 5}]
        }),
        9,
    )
}

fn progress(host: &Host) {
    let since = host.ops_done("both");
    let app = host.wait_for_ops("both", since, 6);
    assert_eq!(app["failed"], 0, "{app:#}");
}

#[test]
fn one_operation_changes_an_ep11_and_a_cca_token() {
    let host = mixed_host();
    progress(&host);
    // `--wkvp` (like `commit`) reaches the EP11 APQNs only.
    host.tke(&["load", "--wkvp", NEW_WK]);
    host.tke(&["commit"]);
    // CCA: a NEW register that is only partly loaded is not a new MK.
    host.tke(&["load", "--mk", "aes", "--partial", "--apqn", "0c.0011"]);
    let args = [
        "reencipher",
        "-a",
        ALL,
        "-e",
        &NEW_WK[2..],
        "-A",
        &AES_NEW[2..],
        "-p",
        &APKA_NEW[2..],
    ];
    let partial = host.mk_change(&args, &format!("{PIN}\n{PIN}\n"));
    assert_eq!(partial.status.code(), Some(1));
    assert!(
        text(&partial.stderr)
            .contains("Token in slot 5 is unable to perform the master key change.")
    );
    assert!(
        host.syslog()
            .contains("Slot 5: No new CCA AES master key is set on APQN 0C.0011")
    );
    host.tke(&["clear", "--mk", "aes"]);
    host.tke(&["load", "--mk", "aes,apka"]);

    let out = host.mk_change(&args, &format!("{PIN}\n{PIN}\n"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with(&format!(
        "The following tokens are affected by this master key change:\n  Slot 4: Label: {:<32}\n  Slot 5: Label: {:<32}\n\
         Enter the USER PIN for slot 4: \nEnter the USER PIN for slot 5: \nRe-enciphering, please wait...\nCompleted.\n",
        "ep11", "cca"
    )), "{stdout}");
    let id = created_id(&stdout);
    let list = text(&host.mk_change(&["list", "-i", &id], "").stdout);
    for expected in [
        "        Type:    EP11\n        MKVP:    9B7D4E0A11F35C8822D0B6E4A7F1C3D9\n        Type:    CCA AES\n        MKVP:    2222222222222222\n        Type:    CCA APKA\n        MKVP:    4444444444444444\n",
        "        Slot: 5 Label: cca                             \n            Current master key verification patterns:\n                Type:    CCA AES\n                MKVP:    1111111111111111\n                Type:    CCA APKA\n                MKVP:    3333333333333333\n",
        "        0C.0011\n        0D.0011\n",
    ] {
        assert!(list.contains(expected), "{expected} not in {list}");
    }
    let verdict = host.verify();
    assert_eq!(
        verdict["tokens"]["cca"]["reenc_blobs"],
        verdict["tokens"]["cca"]["usable"]
    );
    progress(&host);

    // EP11 activation and CCA set, one APQN at a time; the app never fails.
    for (args, apqn) in [
        (vec!["activate", "--apqn"], "0b.0011"),
        (vec!["set", "--apqn"], "0d.0011"),
        (vec!["activate", "--apqn"], "0a.0011"),
        (vec!["set", "--apqn"], "0c.0011"),
    ] {
        let mut all = args.clone();
        all.push(apqn);
        host.tke(&all);
        progress(&host);
    }
    host.expect_wkvp("/etc/opencryptoki/ep11tok.conf", NEW_WK);
    host.expect_mkvps(
        "/etc/opencryptoki/ccatok.conf",
        &[("AES", AES_NEW), ("APKA", APKA_NEW)],
    );
    // CCA finalize needs the NEW register empty again.
    host.tke(&[
        "load",
        "--mk",
        "apka",
        "--apqn",
        "0c.0011",
        "--mkvp",
        "0x0123456789abcdef",
    ]);
    let busy = host.mk_change(&["finalize", "-i", &id], &format!("{PIN}\n{PIN}\n"));
    assert_eq!(busy.status.code(), Some(1));
    assert!(
        host.syslog()
            .contains("Slot 5: The new CCA APKA master key register on APQN 0C.0011 is not empty")
    );
    host.tke(&["clear", "--apqn", "0c.0011", "--mk", "apka"]);
    let done = host.mk_change(&["finalize", "-i", &id], &format!("{PIN}\n{PIN}\n"));
    assert_eq!(done.status.code(), Some(0), "{}", text(&done.stderr));
    assert!(text(&done.stdout).ends_with(&format!(
        "Master key change operation '{id}' successfully finalized.\n"
    )));
    progress(&host);
    let verdict = host.verify();
    assert_eq!(verdict["total"]["unusable"], 0, "{verdict:#}");
    assert_eq!(verdict["tokens"]["ep11"]["current_wkvp"], NEW_WK);
    assert_eq!(
        verdict["tokens"]["cca"]["current_mkvps"],
        json!({"AES": AES_NEW, "APKA": APKA_NEW})
    );
    let apps = host.apps();
    assert_eq!(apps["total"]["failed"], 0);
    assert_eq!(apps["apps"]["both"]["by_token"]["cca"]["failed"], 0);
    assert!(
        apps["apps"]["both"]["by_token"]["cca"]["ok"]
            .as_u64()
            .unwrap()
            > 0
    );
}
