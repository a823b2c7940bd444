//! Simulated applications use the keys the whole time, as openCryptoki's token would during
//! a concurrent change (single-APQN mode, the REENC blob on an APQN with the new WK), and
//! count what worked; activating the new WK without re-enciphering breaks them.

use std::process::Command;

use serde_json::{Value, json};

use super::spec_host::*;
use super::{PIN, text};

const APQNS: &str = "0a.0011,0b.0011";

fn host_with_apps() -> Host {
    Host::new(
        json!({
            "tokens": [ep11_token("ep11", 4, &["0a.0011", "0b.0011"])],
            "units": ["myapp.service"],
            "apps": [
                {"name": "myapp.service", "in_unit": true, "interval_ms": 5},
                {"name": "batch", "interval_ms": 5}
            ]
        }),
        10,
    )
}

/// Lets every app do a few more operations after a phase, and checks none failed.
fn phase(host: &Host, apps: &[&str], what: &str) -> Vec<Value> {
    apps.iter()
        .map(|name| {
            let since = host.ops_done(name);
            let app = host.wait_for_ops(name, since, 5);
            assert_eq!(app["failed"], 0, "{name} after {what}: {app:#}");
            app
        })
        .collect()
}

#[test]
fn applications_keep_working_through_reencipher_activation_and_finalize() {
    let host = host_with_apps();
    let apps = ["myapp.service", "batch"];
    phase(&host, &apps, "start");
    host.tke(&["load"]);
    host.tke(&["commit"]);
    phase(&host, &apps, "the new WK was committed");

    let out = host.mk_change(
        &["reencipher", "-a", APQNS, "-e", &NEW_WK[2..]],
        &format!("{PIN}\n"),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let id = created_id(&text(&out.stdout));
    let after = phase(&host, &apps, "reencipher");
    assert_eq!(
        after[0]["mode"]["ep11"],
        format!("single-APQN 0a.0011 (operation {id})")
    );
    // A process that starts during the operation picks it up from the files.
    let late = host.sim(&["app", "start", "late", "--interval", "5"]);
    assert!(late.status.success(), "{}", text(&late.stderr));
    let apps = ["myapp.service", "batch", "late"];
    phase(&host, &apps, "a new app started");

    // One APQN at a time; the token prefers the APQN that has the new WK already.
    host.tke(&["activate", "--apqn", "0b.0011"]);
    let split = phase(&host, &apps, "0b.0011 activated");
    for app in &split {
        assert_eq!(
            app["mode"]["ep11"],
            format!("single-APQN 0b.0011 (operation {id})"),
            "{app:#}"
        );
    }
    host.tke(&["activate", "--apqn", "0a.0011"]);
    phase(&host, &apps, "0a.0011 activated");
    host.expect_wkvp("/etc/opencryptoki/ep11tok.conf", NEW_WK);
    let finalized = host.mk_change(&["finalize", "-i", &id], &format!("{PIN}\n"));
    assert_eq!(
        finalized.status.code(),
        Some(0),
        "{}",
        text(&finalized.stderr)
    );
    let end = phase(&host, &apps, "finalize");
    for app in &end {
        assert_eq!(app["mode"]["ep11"], "multi-APQN", "{app:#}");
    }
    // A service restart after the change: its counts go on.
    let systemctl = |verb: &str| {
        Command::new(host.root.join("usr/bin/systemctl"))
            .args([verb, "myapp.service"])
            .output()
            .unwrap()
    };
    assert!(systemctl("stop").status.success());
    assert_eq!(host.app("myapp.service")["running"], false);
    assert!(systemctl("start").status.success());
    let restarted = phase(&host, &["myapp.service"], "a restart")[0].clone();
    assert_eq!(restarted["starts"], 2);

    let report = host.sim(&["apps"]);
    assert_eq!(report.status.code(), Some(0), "{}", text(&report.stdout));
    let total = host.apps()["total"].clone();
    assert_eq!(total["failed"], 0);
    assert!(total["ok"].as_u64().unwrap() >= 60, "{total}");
    assert!(host.syslog().contains(&format!(
        "Slot 4: A concurrent HSM master key change operation ({id}) is active, EP11 token uses a single APQN: 0B.0011"
    )));
    assert_eq!(host.verify()["total"]["unusable"], 0);
}

/// The negative control: the same applications, the new WK activated without a
/// reencipher, and they fail on the activated APQN.
#[test]
fn activating_without_a_reencipher_breaks_the_applications() {
    let host = host_with_apps();
    phase(&host, &["batch"], "start");
    host.tke(&["load"]);
    host.tke(&["commit"]);
    host.tke(&["activate", "--apqn", "0a.0011"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let app = loop {
        let app = host.app("batch");
        if app["failed"].as_u64().unwrap_or(0) > 0 {
            break app;
        }
        assert!(std::time::Instant::now() < deadline, "no failure: {app:#}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let last = &app["last_failure"];
    assert_eq!(last["apqn"], "0a.0011", "{app:#}");
    assert!(
        last["reason"]
            .as_str()
            .unwrap()
            .starts_with("CKR_IBM_WKID_MISMATCH"),
        "{app:#}"
    );
    let report = host.sim(&["apps"]);
    assert_eq!(report.status.code(), Some(1));
    assert!(
        text(&report.stdout).contains("app batch: ok "),
        "{}",
        text(&report.stdout)
    );
    assert!(
        text(&report.stdout).contains("CKR_IBM_WKID_MISMATCH"),
        "{}",
        text(&report.stdout)
    );
}

/// A plan's services are the applications of the host `init --plan` lays out.
#[test]
fn a_plans_services_use_the_keys() {
    let host = super::SimHost::offline(4);
    let report = mkplan_sim::apps(&host.root).unwrap();
    assert_eq!(
        report.apps.keys().collect::<Vec<_>>(),
        ["httpd.service", "myapp.service"]
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while mkplan_sim::apps(&host.root)
        .unwrap()
        .apps
        .values()
        .any(|a| a.counts.tally.ok == 0)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the units did nothing"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let report = mkplan_sim::apps(&host.root).unwrap();
    assert!(
        report.no_failures() && report.apps.values().all(|a| a.running),
        "{report}"
    );
}

/// The host reboots between reencipher and activation (allowed, 2.7): the operation files
/// stay, the applications start again, pick the operation up, and still never fail.
#[test]
fn a_reboot_between_phases_keeps_the_operation() {
    let host = host_with_apps();
    host.tke(&["load"]);
    host.tke(&["commit"]);
    let out = host.mk_change(
        &["reencipher", "-a", APQNS, "-e", &NEW_WK[2..]],
        &format!("{PIN}\n"),
    );
    let id = created_id(&text(&out.stdout));
    phase(&host, &["myapp.service", "batch"], "reencipher");
    assert!(host.sim(&["reboot"]).status.success());
    let after = phase(&host, &["myapp.service", "batch"], "the reboot");
    for app in &after {
        assert_eq!(
            (app["starts"].clone(), app["running"].clone()),
            (json!(2), json!(true)),
            "{app:#}"
        );
        assert_eq!(
            app["mode"]["ep11"],
            format!("single-APQN 0a.0011 (operation {id})")
        );
    }
    host.tke(&["activate"]);
    host.expect_wkvp("/etc/opencryptoki/ep11tok.conf", NEW_WK);
    phase(&host, &["myapp.service", "batch"], "activation");
    let done = host.mk_change(&["finalize", "-i", &id], &format!("{PIN}\n"));
    assert_eq!(done.status.code(), Some(0), "{}", text(&done.stderr));
    phase(&host, &["myapp.service", "batch"], "finalize");
    assert!(host.sim(&["app", "stop", "batch"]).status.success());
    assert_eq!(host.app("batch")["running"], false);
    assert_eq!(host.apps()["total"]["failed"], 0);
}

/// `describe` prints the host `init --plan` lays out; `init --host` lays out the same.
#[test]
fn describe_gives_the_host_of_a_plan() {
    let plan = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/ep11-offline.yaml");
    let described = Command::new(super::SIM_EXE)
        .arg("describe")
        .arg("--plan")
        .arg(&plan)
        .output()
        .unwrap();
    assert!(described.status.success(), "{}", text(&described.stderr));
    let spec: Value = serde_json::from_slice(&described.stdout).unwrap();
    assert_eq!(spec["tokens"][0]["apqns"], json!(["0a.0011", "0b.0011"]));
    assert_eq!(spec["tokens"][0]["ep11"]["wkvp_new"], NEW_WK);
    assert_eq!(
        spec["apps"][0],
        json!({"name": "httpd.service", "in_unit": true, "tokens": [], "interval_ms": 100})
    );
    let host = Host::new(spec, 4);
    let verify = host.sim(&["verify"]);
    assert_eq!(
        text(&verify.stdout),
        format!(
            "token ep11: usable 4, unusable 0, skipped 2 (current WK {OLD_WK})\ntotal: usable 4, unusable 0, skipped 2\n"
        )
    );
}
