//! The decisions of `mkplan init` on inventories built by hand: every disagreement is a
//! refusal or a placeholder, never a pick; what is written validates but for placeholders.

use std::path::PathBuf;

use super::draft::{Choice, InitError, NewWkvp, Procedure, draft, token_id};
use super::inventory::{
    ApqnFacts, ApqnList, BackupFacts, ConfigFacts, CurFacts, Inventory, NewFacts, ReleaseFacts,
    SlotFacts, TokenKind, UserFacts, Version,
};
use super::procedure::suggest;
use super::write::{ChangeRecord, render};
use crate::model::{Apqn, Wkvp};
use crate::source::SourceFile;

const STORE_FS: u64 = 1;
const OTHER_FS: u64 = 2;

fn wkvp(byte: u8) -> Wkvp {
    Wkvp::parse(&format!("{byte:02x}").repeat(16)).unwrap().0
}

fn apqn(adapter: u8, cur: CurFacts, new: NewFacts) -> ApqnFacts {
    ApqnFacts {
        apqn: Apqn::new(adapter, 17),
        problems: Vec::new(),
        cur,
        new,
    }
}

fn ep11_slot(slot: u16, name: &str, apqns: Vec<ApqnFacts>) -> SlotFacts {
    SlotFacts {
        slot,
        line: 1,
        stdll: "libpkcs11_ep11.so".to_owned(),
        kind: TokenKind::Ep11,
        tokname: Some(name.to_owned()),
        store: PathBuf::from(format!("/var/lib/opencryptoki/{name}")),
        config: PathBuf::from(format!("/etc/opencryptoki/{name}.conf")),
        config_facts: ConfigFacts::Ep11 {
            apqns: ApqnList::Allowlist(apqns.iter().map(|a| a.apqn).collect()),
            expected_wkvp: Some(wkvp(0x11)),
        },
        apqns,
        users: vec![UserFacts {
            pid: 42,
            command: "/usr/sbin/httpd".to_owned(),
            unit: Some("httpd.service".to_owned()),
            outside: None,
        }],
        store_bytes: Some(1000),
        store_fs: Some(STORE_FS),
        notes: Vec::new(),
    }
}

fn good_apqns() -> Vec<ApqnFacts> {
    (10..12)
        .map(|a| {
            apqn(
                a,
                CurFacts::Valid(wkvp(0x11)),
                NewFacts::Committed(wkvp(0x22)),
            )
        })
        .collect()
}

/// The same as [`good_apqns`] in domain 18.
fn other_domain() -> Vec<ApqnFacts> {
    good_apqns()
        .into_iter()
        .map(|a| ApqnFacts {
            apqn: Apqn::new(a.apqn.adapter(), 18),
            ..a
        })
        .collect()
}

fn backup(dir: &str, fs: u64, not_writable: Option<&str>, free: u64) -> BackupFacts {
    BackupFacts {
        dir: PathBuf::from(dir),
        given: false,
        existing: PathBuf::from(dir),
        fs: Some(fs),
        not_writable: not_writable.map(str::to_owned),
        free_bytes: Some(free),
    }
}

fn inventory(slots: Vec<SlotFacts>) -> Inventory {
    Inventory {
        read_at: "2026-11-30T12:00:00Z".to_owned(),
        host_name: Some("zlx01".to_owned()),
        root: PathBuf::from("/"),
        ock_conf: PathBuf::from("/etc/opencryptoki/opencryptoki.conf"),
        slots,
        release: ReleaseFacts {
            migrate_tool: Some(PathBuf::from("/usr/sbin/pkcsep11_migrate")),
            ..ReleaseFacts::default()
        },
        scanned: 100,
        unreadable: 0,
        backups: vec![backup("/var/backups/mkplan", OTHER_FS, None, 1 << 30)],
    }
}

fn host_errors(result: Result<super::Draft<'_>, InitError>) -> String {
    match result {
        Err(InitError::Host(lines)) => lines.join("\n"),
        other => panic!("not a host refusal: {other:?}"),
    }
}

#[test]
fn a_plan_from_an_agreeing_host_validates_as_written() {
    let inv = inventory(vec![ep11_slot(4, "ep11tok", good_apqns())]);
    let draft = draft(&inv, &Choice::default()).unwrap();
    let text = render(
        &inv,
        &draft,
        &ChangeRecord {
            ticket: Some("CHG1".into()),
            ..ChangeRecord::default()
        },
    );
    let loaded = crate::load(SourceFile::new("p.yaml", text.clone()));
    assert!(loaded.plan.is_some(), "{text}\n{:?}", loaded.diagnostics);
    let plan = loaded.plan.unwrap();
    let token = &plan.tokens.values().next().unwrap();
    assert_eq!(
        (token.wkvp_current, token.wkvp_new),
        (wkvp(0x11), wkvp(0x22))
    );
    assert_eq!(token.apqns, [Apqn::new(10, 17), Apqn::new(11, 17)]);
    assert!(!text.contains("same file system"), "{text}");
}

/// The error pointers of the written plan.
fn errors_of(inv: &Inventory) -> Vec<String> {
    let draft = draft(inv, &Choice::default()).unwrap();
    let text = render(inv, &draft, &ChangeRecord::default());
    let loaded = crate::load(SourceFile::new("p.yaml", text));
    assert!(loaded.plan.is_none());
    loaded
        .diagnostics
        .iter()
        .filter_map(|d| d.pointer().map(str::to_owned))
        .collect()
}

#[test]
fn placeholders_are_the_only_errors() {
    let mut apqns = good_apqns();
    apqns[1].new = NewFacts::Empty;
    let inv = inventory(vec![ep11_slot(4, "ep11tok", apqns)]);
    assert_eq!(errors_of(&inv), ["/tokens/ep11tok/wkvp/new"]);

    let read_only = backup("/var/backups/mkplan", OTHER_FS, Some("read-only"), 1 << 30);
    let inv = Inventory {
        backups: vec![read_only],
        ..inventory(vec![ep11_slot(4, "ep11tok", good_apqns())])
    };
    assert_eq!(errors_of(&inv), ["/backups/local/dir"]);

    let mut nobody = ep11_slot(4, "ep11tok", good_apqns());
    nobody.users.clear();
    assert_eq!(
        errors_of(&inventory(vec![nobody])),
        ["/services/apps/systemd"]
    );
}

#[test]
fn apqns_that_disagree_on_the_current_wk_or_have_none_are_refused() {
    let mut apqns = good_apqns();
    apqns[1].cur = CurFacts::Valid(wkvp(0x33));
    let inv = inventory(vec![ep11_slot(4, "ep11tok", apqns)]);
    let said = host_errors(draft(&inv, &Choice::default()));
    assert!(
        said.contains("disagree on the current WK")
            && said.contains("0a.0011 CUR valid 0x1111")
            && said.contains("0b.0011 CUR valid 0x3333"),
        "{said}"
    );

    let mut apqns = good_apqns();
    for a in &mut apqns {
        a.cur = CurFacts::Invalid;
    }
    let inv = inventory(vec![ep11_slot(4, "ep11tok", apqns)]);
    assert!(host_errors(draft(&inv, &Choice::default())).contains("no valid current WK"));
}

#[test]
fn an_unusable_queue_and_a_wrong_expected_wkvp_are_refused_together() {
    let mut slot = ep11_slot(4, "ep11tok", good_apqns());
    slot.apqns[0]
        .problems
        .push("0a.0011 (adapter 10, domain 17): the queue is offline (`online` is 0)".into());
    slot.config_facts = ConfigFacts::Ep11 {
        apqns: ApqnList::Allowlist(vec![]),
        expected_wkvp: Some(wkvp(0x44)),
    };
    let inv = inventory(vec![slot]);
    let said = host_errors(draft(&inv, &Choice::default()));
    assert!(said.contains("the queue is offline"), "{said}");
    assert!(said.contains("EXPECTED_WKVP 0x4444"), "{said}");
}

#[test]
fn the_new_wk_is_read_only_when_every_apqn_has_the_same_one() {
    let new = |states: [NewFacts; 2]| {
        let mut apqns = good_apqns();
        apqns[0].new = states[0];
        apqns[1].new = states[1];
        let inv = inventory(vec![ep11_slot(4, "ep11tok", apqns)]);
        draft(&inv, &Choice::default()).unwrap().tokens[0]
            .new
            .clone()
    };
    let (n, m) = (wkvp(0x22), wkvp(0x55));
    assert_eq!(
        new([NewFacts::Uncommitted(n), NewFacts::Uncommitted(n)]),
        NewWkvp::Known {
            wkvp: n,
            committed: false
        }
    );
    for disagreeing in [
        [NewFacts::Committed(n), NewFacts::Uncommitted(n)],
        [NewFacts::Committed(n), NewFacts::Committed(m)],
        [NewFacts::Committed(n), NewFacts::Unknown],
    ] {
        assert!(
            matches!(new(disagreeing), NewWkvp::Placeholder(why) if why.contains("disagree")),
            "{disagreeing:?}"
        );
    }
    assert!(
        matches!(new([NewFacts::Empty; 2]), NewWkvp::Placeholder(why) if why.contains("no new WK is loaded"))
    );
    let current = wkvp(0x11);
    assert!(
        matches!(new([NewFacts::Committed(current); 2]), NewWkvp::Placeholder(why) if why.contains("holds the current WK"))
    );
}

#[test]
fn tokens_are_chosen_never_guessed() {
    let inv = inventory(vec![
        ep11_slot(4, "a", good_apqns()),
        ep11_slot(5, "b", other_domain()),
    ]);
    assert!(
        matches!(draft(&inv, &Choice::default()), Err(InitError::Usage(m)) if m.contains("2 EP11 tokens"))
    );
    let both = Choice {
        slots: vec![4],
        tokens: vec!["b".into()],
        ..Choice::default()
    };
    assert_eq!(draft(&inv, &both).unwrap().tokens.len(), 2);

    let mut cca = ep11_slot(6, "ccatok", Vec::new());
    cca.kind = TokenKind::Cca;
    cca.stdll = "libpkcs11_cca.so".into();
    let only_cca = inventory(vec![cca.clone()]);
    assert!(
        host_errors(draft(&only_cca, &Choice::default()))
            .contains("`mkplan init` does not write CCA plans yet")
    );
    let inv = inventory(vec![ep11_slot(4, "a", good_apqns()), cca]);
    let pick = Choice {
        slots: vec![6],
        ..Choice::default()
    };
    assert!(matches!(draft(&inv, &pick), Err(InitError::Usage(m)) if m.contains("is a CCA token")));
    let concurrent = Choice {
        procedure: Some(Procedure::Concurrent),
        ..Choice::default()
    };
    // Without `pkcshsm_mk_change` the concurrent procedure is refused, saying why.
    assert!(
        host_errors(draft(&inv, &concurrent))
            .contains("the concurrent procedure needs `pkcshsm_mk_change`")
    );
}

#[test]
fn the_release_suggests_concurrent_only_from_3_21_with_the_tool() {
    let release = |tool: bool, version: Option<(u32, u32)>| ReleaseFacts {
        version: version.map(|(major, minor)| Version {
            major,
            minor,
            patch: 0,
        }),
        source: version.map(|_| PathBuf::from("/var/lib/dpkg/status")),
        mk_change_tool: tool.then(|| PathBuf::from("/usr/sbin/pkcshsm_mk_change")),
        ..ReleaseFacts::default()
    };
    assert_eq!(
        suggest(&release(true, Some((3, 21)))).procedure,
        Procedure::Concurrent
    );
    let no_events = ReleaseFacts {
        events_disabled: true,
        ..release(true, Some((3, 21)))
    };
    let said = suggest(&no_events);
    assert_eq!(said.procedure, Procedure::Offline);
    assert!(said.why.contains("disable-event-support"), "{}", said.why);
    for (tool, version) in [
        (true, Some((3, 20))),
        (true, None),
        (false, Some((3, 27))),
        (false, None),
    ] {
        assert_eq!(
            suggest(&release(tool, version)).procedure,
            Procedure::Offline,
            "{tool} {version:?}"
        );
    }
    let mut inv = inventory(vec![ep11_slot(4, "a", good_apqns())]);
    inv.release = release(false, Some((3, 12)));
    assert!(host_errors(draft(&inv, &Choice::default())).contains("broken before 3.12.1"));
}

#[test]
fn the_backup_goes_elsewhere_when_it_can_and_says_so_when_it_cannot() {
    let chosen = |backups: Vec<BackupFacts>| {
        let inv = Inventory {
            backups,
            ..inventory(vec![ep11_slot(4, "a", good_apqns())])
        };
        let d = draft(&inv, &Choice::default()).unwrap();
        (
            d.backup.dir.map(|p| p.display().to_string()),
            d.backup.warnings,
            d.backup.rejected,
        )
    };
    let (dir, warnings, _) = chosen(vec![
        backup("/same", STORE_FS, None, 1 << 30),
        backup("/other", OTHER_FS, None, 1 << 30),
    ]);
    assert_eq!((dir.as_deref(), warnings.len()), (Some("/other"), 0));
    let (dir, warnings, rejected) = chosen(vec![
        backup("/ro", OTHER_FS, Some("read-only"), 1 << 30),
        backup("/small", OTHER_FS, None, 10),
        backup("/same", STORE_FS, None, 1 << 30),
    ]);
    assert_eq!(dir.as_deref(), Some("/same"));
    assert!(warnings[0].contains("same file system"), "{warnings:?}");
    assert!(
        rejected[0].contains("/ro")
            && rejected[1].contains("/small")
            && rejected[1].contains("10 bytes free"),
        "{rejected:?}"
    );

    let mut given = backup("/given", OTHER_FS, Some("read-only"), 1 << 30);
    given.given = true;
    let inv = Inventory {
        backups: vec![given],
        ..inventory(vec![ep11_slot(4, "a", good_apqns())])
    };
    assert!(
        host_errors(draft(&inv, &Choice::default()))
            .contains("--backup-dir `/given` cannot take the backup")
    );
}

#[test]
fn token_ids_are_valid_plan_names() {
    let mut slot = ep11_slot(4, "EP11.Tok", good_apqns());
    assert_eq!(token_id(&slot), "ep11-tok");
    slot.store = PathBuf::from("/var/lib/opencryptoki/9tok");
    assert_eq!(token_id(&slot), "t9tok");
}

#[test]
fn drift_names_what_changed() {
    let inv = inventory(vec![ep11_slot(4, "ep11tok", good_apqns())]);
    let d = draft(&inv, &Choice::default()).unwrap();
    let text = render(&inv, &d, &ChangeRecord::default());
    let plan = crate::load(SourceFile::new("p.yaml", text)).plan.unwrap();
    assert_eq!(super::drift(&plan, &inv), Vec::<String>::new());

    let mut slot = ep11_slot(4, "ep11tok", good_apqns());
    slot.apqns
        .push(apqn(12, CurFacts::Valid(wkvp(0x22)), NewFacts::Empty));
    slot.users.push(UserFacts {
        pid: 7,
        command: "batch".into(),
        unit: Some("batch.service".into()),
        outside: None,
    });
    slot.users.push(UserFacts {
        pid: 8,
        command: "vi".into(),
        unit: None,
        outside: Some("session-1.scope".into()),
    });
    let changed = inventory(vec![slot]);
    let found = super::drift(&plan, &changed).join("\n");
    for said in [
        "APQN 0c.0011 (adapter 12, domain 17) was added to the token since",
        "APQN 0c.0011 (adapter 12, domain 17): the new WK 0x2222",
        "unit `batch.service` (pid 7)",
        "pid 8 (vi) maps the token outside any unit",
    ] {
        assert!(found.contains(said), "`{said}` in:\n{found}");
    }
    assert!(
        super::drift(&plan, &inventory(vec![]))
            .join("")
            .contains("slot 4 is not in")
    );
}

#[test]
fn a_token_sharing_an_apqn_with_another_is_refused_whether_or_not_both_are_chosen() {
    let inv = inventory(vec![
        ep11_slot(4, "a", good_apqns()),
        ep11_slot(5, "b", good_apqns()[1..].to_vec()),
    ]);
    for choice in [
        Choice {
            slots: vec![4],
            ..Choice::default()
        },
        Choice {
            slots: vec![4, 5],
            ..Choice::default()
        },
    ] {
        let said = host_errors(draft(&inv, &choice));
        assert!(
            said.contains("tokens `a` (slot 4) and `b` (slot 5) both use APQN 0b.0011"),
            "{said}"
        );
        assert_eq!(said.matches("both use").count(), 1, "{said}");
    }
}

/// What a reviewer reads: the header, the comments, the placeholders (a CCA slot, a
/// process outside any unit, a new WK not loaded yet, a backup on the store's file system).
#[test]
fn the_written_plan_as_a_reviewer_reads_it() {
    let mut apqns = good_apqns();
    for a in &mut apqns {
        a.new = NewFacts::Empty;
    }
    let mut token = ep11_slot(4, "ep11tok", apqns);
    token.users.push(UserFacts {
        pid: 4711,
        command: "/usr/bin/python3 batch.py".into(),
        unit: None,
        outside: Some("session-3.scope".into()),
    });
    let mut cca = ep11_slot(2, "ccatok", Vec::new());
    cca.kind = TokenKind::Cca;
    cca.stdll = "libpkcs11_cca.so".into();
    let mut inv = inventory(vec![cca, token]);
    inv.backups = vec![backup("/var/backups/mkplan", STORE_FS, None, 1 << 30)];
    let d = draft(&inv, &Choice::default()).unwrap();
    let change = ChangeRecord {
        ticket: Some("CHG0042".into()),
        summary: None,
        approvers: vec!["alice".into(), "bob".into()],
    };
    insta::assert_snapshot!(render(&inv, &d, &change));
}
