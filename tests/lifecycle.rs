//! The engine's run lifecycle in process, as tables: journal replay (what state a run is in
//! after a sequence of events) and `resume`'s rules (plan digest, the decision a half-done
//! step needs, the live guards, the lock, a broken journal), each row one situation and the
//! exact outcome the engine must give. The step kinds are scripted, so each row says what
//! the steps answer; the host is the real one, rooted at an empty directory.

use std::path::{Path, PathBuf};

use mkplan_engine::events::{DecisionKind, EventKind, Outcome, StepRef};
use mkplan_engine::journal::{Entry, Journal};
use mkplan_engine::lifecycle::{Reopened, ResumeError};
use mkplan_engine::lock::StateLock;
use mkplan_engine::ports::root::HostRoot;
use mkplan_engine::record::StepData;
use mkplan_engine::state::{Phase, RunState, StepStatus};
use mkplan_engine::step::{
    AcceptRefused, CheckContext, CheckReport, Interruption, RunContext, StepResult, Steps,
    UncertainContext,
};
use mkplan_host::linux::LinuxHost;
use mkplan_plan::Plan;
use mkplan_plan::model::{Section, Step};

const PLAN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/plans/ep11-offline.yaml");

fn plan() -> Plan {
    mkplan_plan::load_file(Path::new(PLAN))
        .plan
        .expect("the seed plan validates")
}

fn step(plan: &Plan, section: Section, index: usize) -> StepRef {
    StepRef::of(
        plan.step_at(section, index)
            .expect("a step of the seed plan"),
    )
}

fn started(s: &StepRef, mutating: bool) -> EventKind {
    EventKind::StepStarted {
        step: s.clone(),
        mutating,
    }
}

fn succeeded(s: &StepRef) -> EventKind {
    EventKind::StepSucceeded {
        step: s.clone(),
        summary: "done".to_owned(),
        duration_ms: 1,
        data: StepData::default(),
    }
}

fn failed(s: &StepRef) -> EventKind {
    EventKind::StepFailed {
        step: s.clone(),
        error: "it failed".to_owned(),
        duration_ms: 1,
        data: StepData::default(),
    }
}

fn run_started(plan_sha256: &str) -> EventKind {
    EventKind::RunStarted {
        plan_name: "seed".to_owned(),
        plan_path: PLAN.to_owned(),
        plan_sha256: plan_sha256.to_owned(),
        change_ticket: "CHG".to_owned(),
        mkplan_version: "test".to_owned(),
        host_root: "/".to_owned(),
        operator: "alice".to_owned(),
        pid: 1,
        rehearsal: false,
        origin: None,
    }
}

fn entries(events: Vec<EventKind>) -> Vec<Entry> {
    events
        .into_iter()
        .enumerate()
        .map(|(seq, event)| Entry {
            v: 1,
            seq: seq as u64,
            time: "2026-11-30T10:00:00.000Z".to_owned(),
            run: "r1".to_owned(),
            event,
            prev: String::new(),
            hash: String::new(),
        })
        .collect()
}

#[test]
fn replay_gives_the_state_each_sequence_of_events_means() {
    let plan = plan();
    let stop = step(&plan, Section::Steps, 2);
    let migrate = step(&plan, Section::Steps, 5);
    let restore = step(&plan, Section::Rescue, 0);
    let retry = EventKind::Decision {
        step: migrate.clone(),
        decision: DecisionKind::Retry,
        decided_by: "bob".to_owned(),
    };
    let resumed = EventKind::Resumed {
        operator: "bob".to_owned(),
        pid: 2,
        origin: None,
        simulated_clock: None,
    };
    // (what, events, state name, uncertain step, attempts of migrate)
    type Row<'a> = (&'a str, Vec<EventKind>, &'a str, Option<&'a StepRef>, u32);
    let rows: Vec<Row> = vec![
        (
            "nothing yet",
            vec![run_started("x")],
            "interrupted",
            None,
            0,
        ),
        (
            "killed in a read-only step",
            vec![run_started("x"), started(&stop, false)],
            "interrupted",
            None,
            0,
        ),
        (
            "killed in the migration",
            vec![run_started("x"), started(&migrate, true)],
            "needs decision",
            Some(&migrate),
            1,
        ),
        (
            "retried after a kill, then done",
            vec![
                run_started("x"),
                started(&migrate, true),
                resumed.clone(),
                retry.clone(),
                started(&migrate, true),
                succeeded(&migrate),
            ],
            "interrupted",
            None,
            2,
        ),
        (
            "retried and killed again",
            vec![
                run_started("x"),
                started(&migrate, true),
                resumed,
                retry,
                started(&migrate, true),
            ],
            "needs decision",
            Some(&migrate),
            2,
        ),
        (
            "failed, rescued by the restore",
            vec![
                run_started("x"),
                started(&migrate, true),
                failed(&migrate),
                EventKind::RescueStarted {
                    after: migrate.clone(),
                },
                started(&restore, true),
                succeeded(&restore),
                EventKind::AlwaysStarted,
                EventKind::RunFinished {
                    outcome: Outcome::Rescued,
                },
            ],
            "rescued",
            None,
            1,
        ),
        (
            "killed in the rescue's restore",
            vec![
                run_started("x"),
                started(&migrate, true),
                failed(&migrate),
                EventKind::RescueStarted {
                    after: migrate.clone(),
                },
                started(&restore, true),
            ],
            "needs decision",
            Some(&restore),
            1,
        ),
    ];
    for (what, events, state_name, uncertain, attempts) in rows {
        let state = RunState::replay(&entries(events));
        assert_eq!(state.state_name(), state_name, "{what}");
        assert_eq!(
            state.uncertain().map(|r| &r.step),
            uncertain,
            "{what}: the uncertain step"
        );
        let migrate_attempts = state.record(Section::Steps, 5).map_or(0, |r| r.attempts);
        assert_eq!(migrate_attempts, attempts, "{what}: attempts of migrate");
    }
    // Every attempt stays on record: the retried migration's first attempt is `Started`.
    let state = RunState::replay(&entries(vec![
        run_started("x"),
        started(&migrate, true),
        started(&migrate, true),
        succeeded(&migrate),
    ]));
    let record = state.record(Section::Steps, 5).unwrap();
    assert!(matches!(
        record.earlier.as_slice(),
        [StepStatus::Started { mutating: true }]
    ));
    assert!(matches!(state.phase, Phase::Main));
}

/// What the scripted step kinds answer `resume`.
#[derive(Default)]
struct Scripted {
    refuse_resume: Vec<String>,
    refuse_accept: Option<String>,
}

impl Steps for Scripted {
    fn check(&self, _: &Step, _: &CheckContext<'_>) -> CheckReport {
        unreachable!("resume's decision never runs a dry run")
    }

    fn run(&self, _: &Step, _: &mut RunContext<'_>) -> StepResult {
        unreachable!("resume's decision never runs a step")
    }

    fn interruption(&self, _: &Step) -> Interruption {
        unreachable!("resume's decision does not ask how an interruption is handled")
    }

    fn describe_uncertain(&self, step: &Step, _: &UncertainContext<'_>) -> Vec<String> {
        vec![format!("what is known of `{}`", step.name)]
    }

    fn refuse_accept(&self, _: &Step, _: &UncertainContext<'_>) -> Result<(), AcceptRefused> {
        self.refuse_accept.clone().map_or(Ok(()), |reason| {
            Err(AcceptRefused::new(std::io::Error::other(reason)))
        })
    }

    fn refuse_resume(
        &self,
        _: &Plan,
        _: &RunState,
        _: &dyn mkplan_engine::ports::host::HostView,
    ) -> Vec<String> {
        self.refuse_resume.clone()
    }

    fn halt_reason(
        &self,
        _: &Plan,
        _: &RunState,
        _: &dyn mkplan_engine::ports::host::HostView,
    ) -> Option<String> {
        unreachable!("resume's decision never runs a step that could fail")
    }
}

/// A state directory with one run of the seed plan whose journal holds `events` after its
/// start.
struct Recorded {
    dir: tempfile::TempDir,
    state: mkplan_engine::rundir::StateDir,
    run: mkplan_engine::rundir::RunDir,
}

impl Recorded {
    fn new(events: impl FnOnce(&Plan) -> Vec<EventKind>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let state = mkplan_engine::rundir::StateDir::new(dir.path().join("state"));
        std::fs::create_dir_all(state.dir()).unwrap();
        state.ensure().unwrap();
        let text = std::fs::read_to_string(PLAN).unwrap();
        let run = state.create_run(&text).unwrap();
        let mut journal = Journal::create(&run.journal(), &run.id).unwrap();
        journal
            .append(&run_started(&run.recorded_digest().unwrap()))
            .unwrap();
        for event in events(&plan()) {
            journal.append(&event).unwrap();
        }
        std::fs::create_dir_all(dir.path().join("root")).unwrap();
        Self { dir, state, run }
    }

    fn resume(
        &self,
        plan_file: Option<PathBuf>,
        decision: Option<DecisionKind>,
        steps: &Scripted,
    ) -> Result<(), ResumeError> {
        let reopened = Reopened::open(self.state.clone(), self.run.clone(), plan_file)?;
        // The empty host root has no signing key; e2e tests the key file's trust.
        let mut plan = plan();
        plan.report.sign = None;
        let host = LinuxHost::new(HostRoot::new(self.dir.path().join("root")));
        reopened.decide(&plan, decision, steps, &host).map(drop)
    }
}

fn killed_in_migrate(plan: &Plan) -> Vec<EventKind> {
    vec![started(&step(plan, Section::Steps, 5), true)]
}

fn migrate_done(plan: &Plan) -> Vec<EventKind> {
    let migrate = step(plan, Section::Steps, 5);
    vec![started(&migrate, true), succeeded(&migrate)]
}

#[test]
fn resume_decides_from_the_journal_the_plan_and_the_host() {
    type Events = fn(&Plan) -> Vec<EventKind>;
    let finished: Events = |_| {
        vec![EventKind::RunFinished {
            outcome: Outcome::Succeeded,
        }]
    };
    let busy = Scripted {
        refuse_resume: vec!["pkcsep11_migrate (pid 42) rewrites token `ep11`".to_owned()],
        ..Scripted::default()
    };
    let store_differs = Scripted {
        refuse_accept: Some("14 of 1002 object files differ from the backup".to_owned()),
        ..Scripted::default()
    };
    let willing = Scripted::default();
    // (what, journal, decision, steps, expected: Ok or the error's variant and a text in it)
    type Row<'a> = (
        &'a str,
        Events,
        Option<DecisionKind>,
        &'a Scripted,
        Result<(), (&'a str, &'a str)>,
    );
    let rows: Vec<Row> = vec![
        (
            "a finished run",
            finished,
            None,
            &willing,
            Err(("Finished", "already finished")),
        ),
        (
            "a half-done migration, no decision",
            killed_in_migrate,
            None,
            &willing,
            Err(("NeedsDecision", "--retry-step")),
        ),
        (
            "a half-done migration, retried",
            killed_in_migrate,
            Some(DecisionKind::Retry),
            &willing,
            Ok(()),
        ),
        (
            "a half-done migration, accepted",
            killed_in_migrate,
            Some(DecisionKind::Accept),
            &willing,
            Ok(()),
        ),
        (
            "accepted, but the store says otherwise",
            killed_in_migrate,
            Some(DecisionKind::Accept),
            &store_differs,
            Err(("AcceptRefused", "object files differ")),
        ),
        (
            "a decision with nothing uncertain",
            migrate_done,
            Some(DecisionKind::Retry),
            &willing,
            Err(("NothingUncertain", "no step")),
        ),
        (
            "nothing uncertain, nothing decided",
            migrate_done,
            None,
            &willing,
            Ok(()),
        ),
        (
            "a migration tool still runs",
            killed_in_migrate,
            Some(DecisionKind::Retry),
            &busy,
            Err(("HostBusy", "pid 42")),
        ),
    ];
    for (what, events, decision, steps, expected) in rows {
        let recorded = Recorded::new(events);
        let got = recorded.resume(None, decision, steps);
        match (&got, expected) {
            (Ok(()), Ok(())) => {}
            (Err(e), Err((variant, text))) => {
                assert!(format!("{e:?}").starts_with(variant), "{what}: {e:?}");
                assert!(e.to_string().contains(text), "{what}: {e}");
            }
            _ => panic!("{what}: expected {expected:?}, got {got:?}"),
        }
    }
}

#[test]
fn resume_refuses_another_plan_a_missing_plan_a_held_lock_and_a_broken_journal() {
    let willing = Scripted::default();
    // Another plan: the same seed plan with one byte more.
    let recorded = Recorded::new(killed_in_migrate);
    let changed = recorded.dir.path().join("changed.yaml");
    std::fs::write(
        &changed,
        format!("{}\n", std::fs::read_to_string(PLAN).unwrap()),
    )
    .unwrap();
    let e = recorded
        .resume(Some(changed), Some(DecisionKind::Retry), &willing)
        .unwrap_err();
    assert!(matches!(e, ResumeError::PlanChanged { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains(&recorded.run.plan_copy().display().to_string())
    );

    let missing = recorded.dir.path().join("gone.yaml");
    let e = recorded
        .resume(Some(missing), Some(DecisionKind::Retry), &willing)
        .unwrap_err();
    assert!(matches!(e, ResumeError::PlanUnreadable { .. }), "{e:?}");

    // The plan read for the run must be the bytes whose digest was checked.
    let reopened =
        Reopened::open(recorded.state.clone(), recorded.run.clone(), None).expect("reopens");
    let text = std::fs::read_to_string(PLAN).unwrap();
    reopened
        .plan_for_run(plan(), &text)
        .expect("the recorded plan");
    let e = reopened
        .plan_for_run(plan(), &format!("{text}\n"))
        .unwrap_err();
    assert!(matches!(e, ResumeError::PlanChanged { .. }), "{e:?}");
    drop(reopened);

    // Another mkplan holds the state directory's lock.
    let held = StateLock::acquire(&recorded.state, "other").unwrap();
    let e = recorded
        .resume(None, Some(DecisionKind::Retry), &willing)
        .unwrap_err();
    assert!(matches!(e, ResumeError::Busy(_)), "{e:?}");
    drop(held);
    recorded
        .resume(None, Some(DecisionKind::Retry), &willing)
        .expect("resumable once the lock is free");

    // A state directory others can write: its journals could be anyone's.
    use std::os::unix::fs::PermissionsExt;
    let mode = |m| std::fs::Permissions::from_mode(m);
    std::fs::set_permissions(recorded.state.dir(), mode(0o777)).unwrap();
    let e = recorded
        .resume(None, Some(DecisionKind::Retry), &willing)
        .unwrap_err();
    assert!(matches!(e, ResumeError::Untrusted(_)), "{e:?}");
    std::fs::set_permissions(recorded.state.dir(), mode(0o700)).unwrap();

    // A journal line edited by hand breaks the hash chain: nothing resumes from it.
    let journal = recorded.run.journal();
    let text = std::fs::read_to_string(&journal).unwrap();
    std::fs::write(&journal, text.replacen("alice", "mallory", 1)).unwrap();
    let e = recorded
        .resume(None, Some(DecisionKind::Retry), &willing)
        .unwrap_err();
    assert!(matches!(e, ResumeError::BrokenJournal(_)), "{e:?}");
}
