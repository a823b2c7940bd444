//! The host's reader of CCA `mkvps` (`mkplan_host::zcrypt`) against the simulator's writer:
//! both follow zcrypt-sysfs.md 1.6/1.6b, so every form the simulator prints reads back as
//! the registers it holds, and a `- -` that lasts is unknown, never empty.

use serde_json::json;

use mkplan_engine::ports::root::HostRoot;
use mkplan_engine::record::wk::{CcaKeyState, CcaMkType, CcaNewState};
use mkplan_host::zcrypt::{parse_cca_mkvps, read_apqn};
use mkplan_plan::model::Apqn;

use super::spec_host::*;

#[test]
fn the_host_reads_every_form_the_simulator_prints() {
    let mut token = cca_token("cca", 5, &["0c.0011", "0d.0011"]);
    token["cca"]["mks"] = json!({"apka": {"current": "0x755cb8e7740dae51", "new": APKA_NEW}});
    let host = Host::new(json!({"tokens": [token]}), 1);
    let root = HostRoot::new(&host.root);
    let (c, d) = (Apqn::new(0x0c, 17), Apqn::new(0x0d, 17));

    let status = read_apqn(&root, c).unwrap();
    assert!(!status.ep11 && !status.state_unknown());
    let keys = status.cca.clone().unwrap();
    assert_eq!(keys, parse_cca_mkvps(&host.mkvps("0c.0011")).unwrap());
    let apka = keys.get(CcaMkType::Apka).unwrap();
    assert_eq!(apka.cur.state, CcaKeyState::Valid);
    assert_eq!(
        apka.cur.vp.as_ref().unwrap().to_string(),
        "0x755cb8e7740dae51"
    );
    assert_eq!(keys.aes.new.state, CcaNewState::Empty);
    assert_eq!(keys.asym.as_ref().unwrap().cur.state, CcaKeyState::Empty);

    // Interrupted reads that last: re-read, then unknown (APKA only, or every line).
    for fault in ["0c.0011:apka", "0d.0011"] {
        assert!(
            host.sim(&["fault", "interrupted-read", fault])
                .status
                .success()
        );
    }
    let apka_only = read_apqn(&root, c).unwrap();
    assert!(apka_only.state_unknown());
    let keys = apka_only.cca.unwrap();
    assert_eq!(keys.aes.cur.state, CcaKeyState::Invalid);
    assert_eq!(keys.apka.unwrap().cur.state, CcaKeyState::Unknown);
    let every = read_apqn(&root, d).unwrap().cca.unwrap();
    assert_eq!(every.aes.new.state, CcaNewState::Unknown);
    assert!(host.sim(&["fault", "--clear"]).status.success());
    assert!(!read_apqn(&root, d).unwrap().state_unknown());

    // Offline: unknown too.
    assert!(host.sim(&["queue", "0d.0011", "offline"]).status.success());
    let offline = read_apqn(&root, d).unwrap();
    assert!(offline.state_unknown() && !offline.queue_online);
}

/// `mkplan check` before the TKE work: registers that differ from the plan are "as expected
/// before the TKE checkpoint", but a register that reads `- -` (an interrupted read that
/// lasts) is a problem now: no TKE action makes it readable.
#[test]
fn check_reports_an_unknown_state_as_a_problem_now() {
    let host = super::SimHost::offline(3);
    let check = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mkplan"))
            .arg("--root")
            .arg(&host.root)
            .arg("check")
            .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/ep11-offline.yaml"))
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let text = super::text(&out.stdout) + &super::text(&out.stderr);
        (out.status.code(), text)
    };
    let step = |output: &str, name: &str| {
        output
            .lines()
            .find(|l| l.trim_start().starts_with("steps[") && l.contains(&format!("`{name}`")))
            .unwrap_or_else(|| panic!("no line for `{name}`: {output}"))
            .to_owned()
    };
    let committed = "New WK is committed on every APQN";
    let activate = "Activate the new WK on the TKE";
    let (_, before) = check();
    assert!(
        step(&before, committed).contains("will run")
            && step(&before, committed).contains("as expected before the earlier TKE checkpoint"),
        "{before}"
    );
    assert!(
        step(&before, activate).contains("as expected before the TKE action"),
        "{before}"
    );

    let apqn = host.token().apqns[0].lszcrypt();
    let fault = std::process::Command::new(super::SIM_EXE)
        .args(["fault", "interrupted-read", &apqn, "--root"])
        .arg(&host.root)
        .output()
        .unwrap();
    assert!(fault.status.success());
    let (code, during) = check();
    assert_eq!(code, Some(3), "{during}");
    for name in [committed, activate] {
        let line = step(&during, name);
        assert!(line.contains("PRECONDITION FAILS"), "{line}");
        assert!(
            line.contains("cannot be") && line.contains("no TKE action changes that"),
            "{line}"
        );
        assert!(line.contains("unknown (`- -`"), "{line}");
    }
    assert!(
        !step(&during, committed).contains("as expected"),
        "{during}"
    );
}

/// The simulated `ccatok.conf` reads with mkplan's reader, and mkplan's rewrite reads back in
/// the simulated token (both follow `cca_specific.c`: SYM, AES, APKA; ASYM refused).
#[test]
fn ccatok_conf_agrees_between_the_simulator_and_mkplan() {
    use mkplan_plan::ccaconf::{self, ConfMkType};
    let mut token = cca_token("cca", 5, &["0c.0011"]);
    token["cca"]["mks"]["asym"] =
        json!({"current": "0x5555555555555555", "new": "0x6666666666666666"});
    token["cca"]["expected_mkvps"] = json!(true);
    let host = Host::new(json!({"tokens": [token]}), 1);
    let path = host.path("/etc/opencryptoki/ccatok.conf");
    let text = std::fs::read_to_string(&path).unwrap();
    let hex8 = |text: &str| {
        let mut bytes = [0u8; 8];
        hex::decode_to_slice(text.trim_start_matches("0x"), &mut bytes).unwrap();
        bytes
    };
    let read = ccaconf::parse(&text).unwrap().expected_mkvps;
    assert_eq!(read.get(&ConfMkType::Aes), Some(&hex8(AES_OLD)), "{text}");
    assert_eq!(read.get(&ConfMkType::Apka), Some(&hex8(APKA_OLD)), "{text}");
    assert!(!text.contains("ASYM"), "{text}");
    let new = [(ConfMkType::Aes, hex8(AES_NEW))].into_iter().collect();
    let (rewritten, changed) = ccaconf::rewrite_expected_mkvps(&text, &new).unwrap();
    assert_eq!(changed, [ConfMkType::Aes]);
    let sim = mkplan_sim::parse_ccatok_conf(&rewritten)
        .unwrap()
        .expected_mkvps;
    assert_eq!(sim[&mkplan_sim::MkType::Aes].to_string(), AES_NEW);
    assert_eq!(sim[&mkplan_sim::MkType::Apka].to_string(), APKA_OLD);
    let asym = rewritten.replace("AES =", "ASYM =");
    assert!(
        ccaconf::parse(&asym)
            .unwrap_err()
            .to_string()
            .contains("'ASYM'")
    );
    assert!(
        mkplan_sim::parse_ccatok_conf(&asym)
            .unwrap_err()
            .contains("'ASYM'")
    );
}
