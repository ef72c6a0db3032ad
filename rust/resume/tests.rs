//! Plan, matching, migration checks and fingerprints on compiled specs.
use std::collections::HashMap;

use super::*;
use crate::graph::compile;
use crate::graph::testutil::{atom, graph, linear, spec_with};
use crate::spec::AtomSpec;

/// `a -> b -> c` where each requires its predecessor's result (named like the atom).
fn chain(names: &[&str]) -> CompiledFlow {
    let atoms: Vec<AtomSpec> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let requires: Vec<&str> = if i == 0 { Vec::new() } else { vec![names[i - 1]] };
            AtomSpec::task(name, &requires, &[name])
        })
        .collect();
    let root = linear((0..names.len()).map(atom).collect());
    compile(&spec_with(atoms, root)).unwrap()
}

fn saved(name: &str, state: &str) -> SavedAtom {
    SavedAtom {
        name: name.to_owned(),
        state: Some(state.into()),
        intention: Some("EXECUTE".into()),
        version: Some("1.0".into()),
        ..SavedAtom::default()
    }
}

fn run_plan(flow: &CompiledFlow, details: &[SavedAtom]) -> Plan {
    plan_with(flow, details, &HashMap::new(), VersionPolicy::Reuse, ProviderPolicy::Keep, &[])
}

fn plan_with(
    flow: &CompiledFlow,
    details: &[SavedAtom],
    policies: &HashMap<u32, VersionPolicy>,
    default_policy: VersionPolicy,
    provider_policy: ProviderPolicy,
    pending: &[Migration],
) -> Plan {
    plan(&PlanRequest {
        flow,
        saved: details,
        policies,
        default_policy,
        provider_policy,
        flow_reverted: false,
        pending,
        applied: &[],
        reverts: None,
        misfits: &HashMap::new(),
        unrevertable: &HashMap::new(),
    })
}

/// `(name, action)` of every entry, in plan order.
fn actions(flow: &CompiledFlow, details: &[SavedAtom], plan: &Plan) -> Vec<(String, &'static str)> {
    plan.entries
        .iter()
        .map(|e| {
            let name = match (e.atom, e.saved) {
                (Some(a), _) => flow.atoms[a as usize].name.to_string(),
                (None, Some(s)) => details[s as usize].name.clone(),
                (None, None) => unreachable!("an entry is an atom or a detail"),
            };
            (name, e.action.name())
        })
        .collect()
}

fn pairs(expected: &[(&str, &'static str)]) -> Vec<(String, &'static str)> {
    expected.iter().map(|(n, a)| ((*n).to_owned(), *a)).collect()
}

fn rename(from: &str, to: &str) -> Migration {
    Migration { kind: MigrationKind::Rename, sources: vec![from.into()], targets: vec![to.into()], mapped: true }
}

#[test]
fn same_atoms_are_matched_by_name_and_completed_ones_reused() {
    let flow = chain(&["a", "b", "c"]);
    let details = vec![saved("c", "PENDING"), saved("a", "SUCCESS"), saved("b", "RUNNING")];
    let plan = run_plan(&flow, &details);
    assert_eq!(plan.matched, vec![1, 2, 0]);
    assert_eq!(actions(&flow, &details, &plan), pairs(&[("a", "reuse"), ("b", "rerun"), ("c", "run")]));
    assert!(plan.orphans.is_empty());
}

#[test]
fn added_atoms_run_and_removed_ones_are_orphans_listed_after_the_atoms() {
    let flow = chain(&["a", "c", "d"]);
    let mut b = saved("b", "SUCCESS");
    b.revert_kind = Some("class".into());
    b.revert_name = Some("pkg.B".into());
    let details = vec![saved("a", "SUCCESS"), b, saved("c", "SUCCESS"), saved("x", "PENDING")];
    let plan = run_plan(&flow, &details);
    assert_eq!(
        actions(&flow, &details, &plan),
        pairs(&[("a", "reuse"), ("c", "reuse"), ("d", "run"), ("b", "orphan"), ("x", "orphan")])
    );
    assert_eq!(plan.matched, vec![0, 2, NONE]);
    assert_eq!(plan.orphans, vec![1, 3]);
    assert!(plan.entries[3].reason.contains("reverted through pkg.B"), "{}", plan.entries[3].reason);
    assert!(plan.entries[4].reason.contains("had not completed"));
}

#[test]
fn the_injector_and_shadowed_details_are_not_orphans() {
    let flow = chain(&["a"]);
    let details = vec![saved("a", "PENDING"), saved(INJECTOR_NAME, "SUCCESS"), saved("a", "SUCCESS")];
    let plan = run_plan(&flow, &details);
    assert_eq!(plan.matched, vec![2], "the last detail of a name wins, as in TaskFlow");
    assert_eq!(actions(&flow, &details, &plan), pairs(&[("a", "reuse"), ("a", "orphan")]));
    assert!(plan.orphans.is_empty());
}

#[test]
fn version_policies_decide_completed_atoms_only() {
    let flow = chain(&["a", "b", "c"]);
    let mut details = vec![saved("a", "SUCCESS"), saved("b", "SUCCESS"), saved("c", "PENDING")];
    for detail in &mut details {
        detail.version = Some("0.9".into());
    }
    let expect = |policy: VersionPolicy, action: &'static str| {
        let plan = plan_with(&flow, &details, &HashMap::new(), policy, ProviderPolicy::Keep, &[]);
        assert_eq!(plan.actions[0], plan.actions[1], "{policy:?}");
        assert_eq!(plan.actions[0].name(), action, "{policy:?}");
        assert_eq!(plan.actions[2], PlanAction::Run, "an unfinished atom simply runs with the new code");
        assert!(plan.entries[0].reason.contains("version changed 0.9 → 1.0"), "{}", plan.entries[0].reason);
        assert!(plan.entries[0].reason.contains(policy.name()), "{}", plan.entries[0].reason);
    };
    expect(VersionPolicy::Reuse, "reuse");
    expect(VersionPolicy::Rerun, "rerun");
    expect(VersionPolicy::RevertThenRerun, "revert");
    expect(VersionPolicy::Fail, "fail");
    expect(VersionPolicy::Migrate, "migrate");

    // A policy set on the atom wins over the default.
    let policies = HashMap::from([(1, VersionPolicy::Rerun)]);
    let plan = plan_with(&flow, &details, &policies, VersionPolicy::Reuse, ProviderPolicy::Keep, &[]);
    assert_eq!(plan.actions[..2], [PlanAction::Reuse, PlanAction::Rerun]);
}

#[test]
fn unknown_saved_versions_are_not_compared() {
    let flow = chain(&["a"]);
    let mut detail = saved("a", "SUCCESS");
    detail.version = None;
    let plan = plan_with(&flow, &[detail], &HashMap::new(), VersionPolicy::Fail, ProviderPolicy::Keep, &[]);
    assert_eq!(plan.actions, vec![PlanAction::Reuse]);
}

#[test]
fn every_saved_state_has_an_action() {
    let flow = chain(&["a"]);
    let cases = [
        ("PENDING", "EXECUTE", "run"),
        ("RUNNING", "EXECUTE", "rerun"),
        ("RUNNING", "REVERT", "revert"),
        ("REVERTING", "REVERT", "revert"),
        ("FAILURE", "EXECUTE", "revert"),
        ("SUCCESS", "REVERT", "revert"),
        ("REVERTED", "REVERT", "reuse"),
        ("REVERTED", "RETRY", "rerun"),
        ("REVERT_FAILURE", "REVERT", "fail"),
        ("IGNORE", "IGNORE", "ignore"),
        ("RETRYING", "EXECUTE", "rerun"),
        ("NONSENSE", "EXECUTE", "run"),
    ];
    for (state, intention, expected) in cases {
        let mut detail = saved("a", state);
        detail.intention = Some(intention.into());
        let plan = run_plan(&flow, &[detail]);
        assert_eq!(plan.actions[0].name(), expected, "{state}/{intention}");
    }
}

#[test]
fn a_reverted_flow_restarts_everything() {
    let flow = chain(&["a", "b"]);
    let details = vec![saved("a", "REVERTED"), saved("b", "PENDING")];
    let plan = plan(&PlanRequest {
        flow: &flow,
        saved: &details,
        policies: &HashMap::new(),
        default_policy: VersionPolicy::Reuse,
        provider_policy: ProviderPolicy::Keep,
        flow_reverted: true,
        pending: &[],
        applied: &[],
        reverts: None,
        misfits: &HashMap::new(),
        unrevertable: &HashMap::new(),
    });
    assert_eq!(plan.actions, vec![PlanAction::Rerun, PlanAction::Run]);
}

#[test]
fn a_task_matched_to_a_retry_detail_fails() {
    let flow = chain(&["a"]);
    let mut detail = saved("a", "SUCCESS");
    detail.is_retry = true;
    let plan = run_plan(&flow, &[detail]);
    assert_eq!(plan.actions, vec![PlanAction::Fail]);
    assert!(plan.entries[0].reason.contains("is a task but its saved detail is a retry"));
}

#[test]
fn fingerprints_name_each_input_provider() {
    let flow = chain(&["a", "b"]);
    assert_eq!(input_fingerprint(&flow, 0), "");
    assert_eq!(input_fingerprint(&flow, 1), "a\u{1f}a");
    assert_eq!(parse_fingerprint("x\u{1f}p\u{1e}y\u{1f}").collect::<Vec<_>>(), vec![("x", "p"), ("y", "")]);
    assert_eq!(input_fingerprint(&flow, 99), "", "out of range: empty, never a panic");
}

#[test]
fn provider_changes_are_reported_and_follow_the_policy() {
    // c requires "v": provided by a in the old structure, by b now.
    let atoms = vec![AtomSpec::task("a", &[], &[]), AtomSpec::task("b", &[], &["v"]), AtomSpec::task("c", &["v"], &[])];
    let flow = compile(&spec_with(atoms, graph(vec![atom(0), atom(1), atom(2)], &[(1, 2)]))).unwrap();
    let mut c = saved("c", "SUCCESS");
    c.inputs = Some("v\u{1f}a".into());
    let details = vec![saved("a", "SUCCESS"), saved("b", "SUCCESS"), c];
    let keep = plan_with(&flow, &details, &HashMap::new(), VersionPolicy::Reuse, ProviderPolicy::Keep, &[]);
    assert_eq!(keep.actions[2], PlanAction::Reuse);
    let reason = &keep.entries.iter().find(|e| e.atom == Some(2)).unwrap().reason;
    assert!(reason.contains("v: a → b") && reason.contains("provider_change=keep"), "{reason}");
    let rerun = plan_with(&flow, &details, &HashMap::new(), VersionPolicy::Reuse, ProviderPolicy::Rerun, &[]);
    assert_eq!(rerun.actions[2], PlanAction::Rerun);

    // The same inputs, recorded the same way: nothing to report.
    let mut same = details.clone();
    same[2].inputs = Some("v\u{1f}b".into());
    let plan = plan_with(&flow, &same, &HashMap::new(), VersionPolicy::Reuse, ProviderPolicy::Rerun, &[]);
    assert_eq!(plan.actions[2], PlanAction::Reuse);
}

#[test]
fn a_renamed_provider_is_not_a_provider_change() {
    let aliases = ProviderAliases::new(&[rename("a", "a2"), rename("a2", "a3")]);
    assert!(aliases.same("a", "a3"));
    assert!(!aliases.same("a3", "a"));
    assert!(!aliases.same("b", "a3"));
}

#[test]
fn pending_migrations_show_their_effect_in_the_plan() {
    let flow = chain(&["a", "b2", "c1", "c2"]);
    let details = vec![saved("a", "SUCCESS"), saved("b", "SUCCESS"), saved("c", "RUNNING")];
    let split = Migration {
        kind: MigrationKind::Split,
        sources: vec!["c".into()],
        targets: vec!["c1".into(), "c2".into()],
        mapped: true,
    };
    let pending = [rename("b", "b2"), split];
    let plan = plan_with(&flow, &details, &HashMap::new(), VersionPolicy::Reuse, ProviderPolicy::Keep, &pending);
    assert_eq!(
        actions(&flow, &details, &plan),
        pairs(&[("a", "reuse"), ("b2", "migrate"), ("c1", "run"), ("c2", "run"), ("c", "orphan")])
    );
    assert_eq!(plan.matched[1], 1, "the renamed detail is bound to the new name");
    assert!(plan.entries[2].reason.contains("had not finished"), "{}", plan.entries[2].reason);
    assert!(plan.orphans.is_empty(), "a detail about to be split is not an orphan");
}

#[test]
fn retired_details_never_match_again() {
    let flow = chain(&["b"]);
    let mut old = saved("b", "SUCCESS");
    old.retired_by = Some("Split(b → b1, b2)".into());
    let plan = run_plan(&flow, &[old]);
    assert_eq!(plan.matched, vec![NONE]);
    assert_eq!(plan.actions, vec![PlanAction::Run]);
    assert!(plan.entries[1].reason.contains("replaced by Split"));
    assert!(plan.orphans.is_empty());
}

#[test]
fn pending_reverts_come_first_in_revert_order() {
    let flow = chain(&["a", "b", "c", "d"]);
    let details = vec![saved("a", "SUCCESS"), saved("b", "SUCCESS"), saved("c", "SUCCESS"), saved("d", "PENDING")];
    let reverts =
        PendingReverts { reason: "rewind to a".into(), revert: vec!["c".into(), "b".into()], rerun: vec!["d".into()] };
    let plan = plan(&PlanRequest {
        flow: &flow,
        saved: &details,
        policies: &HashMap::new(),
        default_policy: VersionPolicy::Reuse,
        provider_policy: ProviderPolicy::Keep,
        flow_reverted: false,
        pending: &[],
        applied: &[],
        reverts: Some(&reverts),
        misfits: &HashMap::new(),
        unrevertable: &HashMap::new(),
    });
    assert_eq!(
        actions(&flow, &details, &plan),
        pairs(&[("c", "revert"), ("b", "revert"), ("a", "reuse"), ("d", "run")])
    );
    assert!(plan.entries[0].reason.starts_with("rewind to a: reverted"));
}

#[test]
fn reverts_are_listed_before_the_rest_latest_first() {
    let flow = chain(&["a", "b", "c"]);
    let mut details = vec![saved("a", "SUCCESS"), saved("b", "SUCCESS"), saved("c", "FAILURE")];
    details[0].intention = Some("REVERT".into());
    details[1].intention = Some("REVERT".into());
    details[2].intention = Some("REVERT".into());
    let plan = run_plan(&flow, &details);
    assert_eq!(actions(&flow, &details, &plan), pairs(&[("c", "revert"), ("b", "revert"), ("a", "revert")]));
}

#[test]
fn rewind_order_is_every_descendant_latest_first() {
    let flow = chain(&["a", "b", "c", "d"]);
    assert_eq!(rewind_order(&flow, 1), vec![3, 2]);
    assert_eq!(rewind_order(&flow, 3), Vec::<u32>::new());
    assert_eq!(rewind_order(&flow, 42), Vec::<u32>::new());
}

fn problems(details: &[SavedAtom], flow: &CompiledFlow, migrations: &[Migration]) -> String {
    check_migrations(details, flow, migrations).join("\n")
}

#[test]
fn consistent_migrations_pass_the_check() {
    let flow = chain(&["a", "b2", "xy"]);
    let details = vec![saved("a", "SUCCESS"), saved("b", "SUCCESS"), saved("x", "SUCCESS"), saved("y", "PENDING")];
    let merge = Migration {
        kind: MigrationKind::Merge,
        sources: vec!["x".into(), "y".into()],
        targets: vec!["xy".into()],
        mapped: true,
    };
    assert_eq!(problems(&details, &flow, &[rename("b", "b2"), merge]), "");
}

#[test]
fn inconsistent_migrations_are_refused_with_reasons() {
    let flow = chain(&["a", "b", "c", "d"]);
    let details = vec![saved("a", "SUCCESS"), saved("b", "SUCCESS"), saved("c", "SUCCESS")];
    let unknown = problems(&details, &flow, &[rename("zz", "d")]);
    assert!(unknown.contains("'zz' has no saved detail"), "{unknown}");
    let not_an_atom = problems(&details, &flow, &[rename("a", "nowhere")]);
    assert!(not_an_atom.contains("'nowhere' is not an atom of the flow"), "{not_an_atom}");
    let taken = problems(&details, &flow, &[rename("a", "b")]);
    assert!(taken.contains("'b' already has a saved detail"), "{taken}");
    let cycle = problems(&details, &flow, &[rename("a", "b"), rename("b", "a")]);
    assert!(cycle.contains("cycle of renames: a → b → a"), "{cycle}");
    let chain_ = problems(&details, &flow, &[rename("a", "d"), rename("d", "c")]);
    assert!(chain_.contains("chain of renames: a → d → c"), "{chain_}");
    let twice = problems(&details, &flow, &[rename("a", "d"), rename("a", "d")]);
    assert!(twice.contains("migrated twice") && twice.contains("target of two"), "{twice}");
    let shape = Migration { kind: MigrationKind::Rename, sources: vec![], targets: vec!["d".into()], mapped: true };
    assert!(problems(&details, &flow, &[shape]).contains("wrong number of names"));
}

#[test]
fn a_hundred_thousand_atoms_plan_in_linear_time() {
    let n = 100_000;
    let names: Vec<String> = (0..n).map(|i| format!("t{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let flow = chain(&refs);
    let mut details: Vec<SavedAtom> = names.iter().map(|name| saved(name, "SUCCESS")).collect();
    for detail in details.iter_mut().step_by(100) {
        detail.version = Some("0.1".into());
    }
    let started = std::time::Instant::now();
    let plan = plan_with(&flow, &details, &HashMap::new(), VersionPolicy::Rerun, ProviderPolicy::Keep, &[]);
    let elapsed = started.elapsed();
    assert_eq!(plan.actions.iter().filter(|&&a| a == PlanAction::Rerun).count(), 1_000);
    assert!(elapsed.as_secs_f64() < 2.0, "{elapsed:?}");
}

#[test]
fn unknown_saved_states_and_intentions_are_refused_never_read_as_pending() {
    let mut details = vec![saved("a", "SUCCESS"), saved("b", "BOGUS")];
    let err = check_saved(&details, " of flow detail 'f'").unwrap_err();
    assert!(
        matches!(&err, CoreError::Storage(m) if m.contains("atom detail 'b' of flow detail 'f'")
            && m.contains("'state' field holds an unknown state 'BOGUS'")),
        "{err}"
    );
    details[1].state = None; // never given a state: PENDING, as TaskFlow writes it
    details[1].intention = Some("SOMETIMES".into());
    let err = check_saved(&details, "").unwrap_err();
    assert!(matches!(&err, CoreError::Storage(m) if m.contains("unknown intention 'SOMETIMES'")), "{err}");
    details[1].intention = Some("REVERT".into());
    assert_eq!(check_saved(&details, ""), Ok(()));
}

/// A plan where the engine found saved results that no longer fit and orphans it cannot revert.
fn plan_checked(
    flow: &CompiledFlow,
    details: &[SavedAtom],
    policies: &HashMap<u32, VersionPolicy>,
    default_policy: VersionPolicy,
    misfits: &HashMap<u32, String>,
    unrevertable: &HashMap<u32, String>,
) -> Plan {
    plan(&PlanRequest {
        flow,
        saved: details,
        policies,
        default_policy,
        provider_policy: ProviderPolicy::Keep,
        flow_reverted: false,
        pending: &[],
        applied: &[],
        reverts: None,
        misfits,
        unrevertable,
    })
}

#[test]
fn a_saved_result_that_no_longer_fits_follows_the_version_policy_and_refuses_a_reuse() {
    let flow = chain(&["a", "b", "c"]);
    let details = vec![saved("a", "SUCCESS"), saved("b", "SUCCESS"), saved("c", "RUNNING")];
    let misfits = HashMap::from([(1, "no item 'y' for 'y'".to_owned())]);
    let none: HashMap<u32, VersionPolicy> = HashMap::new();
    let expect = |default_policy, policies: &HashMap<u32, VersionPolicy>, action: &str, words: &str| {
        let plan = plan_checked(&flow, &details, policies, default_policy, &misfits, &HashMap::new());
        let entry = plan.entries.iter().find(|e| e.atom == Some(1)).unwrap();
        assert_eq!(entry.action.name(), action);
        assert!(entry.reason.contains("no longer fits what it provides (no item 'y' for 'y')"), "{}", entry.reason);
        assert!(entry.reason.contains(words), "{}", entry.reason);
        assert_eq!(plan.actions[0], PlanAction::Reuse, "only b is concerned");
    };
    expect(VersionPolicy::Reuse, &none, "fail", "the resume is refused before anything is written");
    expect(VersionPolicy::Fail, &none, "fail", "on_version_change=fail");
    expect(VersionPolicy::Rerun, &none, "rerun", "runs again (on_version_change=rerun)");
    expect(VersionPolicy::RevertThenRerun, &none, "revert", "reverted with its saved result");
    expect(VersionPolicy::Migrate, &none, "migrate", "migrated");
    expect(VersionPolicy::Reuse, &HashMap::from([(1, VersionPolicy::Rerun)]), "rerun", "on_version_change=rerun");
}

#[test]
fn a_version_policy_that_reruns_wins_over_a_misfit_and_a_reuse_does_not_hide_it() {
    let flow = chain(&["a", "b"]);
    let mut b = saved("b", "SUCCESS");
    b.version = Some("0.9".into());
    let details = vec![saved("a", "SUCCESS"), b];
    let misfits = HashMap::from([(1, "no item 0".to_owned())]);
    let plan = plan_checked(&flow, &details, &HashMap::new(), VersionPolicy::Rerun, &misfits, &HashMap::new());
    assert_eq!(plan.entries[1].action, PlanAction::Rerun);
    assert!(plan.entries[1].reason.starts_with("version changed 0.9 → 1.0"), "{}", plan.entries[1].reason);
    let plan = plan_checked(&flow, &details, &HashMap::new(), VersionPolicy::Reuse, &misfits, &HashMap::new());
    assert_eq!(plan.entries[1].action, PlanAction::Fail);
    assert!(!plan.entries[1].reason.contains("reused"), "{}", plan.entries[1].reason);
}

#[test]
fn orphans_that_cannot_be_reverted_say_so_and_failed_ones_too() {
    let flow = chain(&["a"]);
    let mut gone = saved("g", "SUCCESS");
    gone.revert_kind = Some("class".into());
    gone.revert_name = Some("gone_steps.GoneStep".into());
    let details = vec![saved("a", "SUCCESS"), gone, saved("f", "REVERT_FAILURE")];
    let why = HashMap::from([(1, "its revert reference 'gone_steps.GoneStep' cannot be imported".to_owned())]);
    let plan = plan_checked(&flow, &details, &HashMap::new(), VersionPolicy::Reuse, &HashMap::new(), &why);
    assert_eq!(plan.orphans, vec![1, 2]);
    let reasons: Vec<&str> = plan.entries[1..].iter().map(|e| e.reason.as_ref()).collect();
    assert!(reasons[0].contains("cannot be reverted: its revert reference 'gone_steps.GoneStep' cannot be imported"));
    assert!(reasons[0].contains("OrphanRevertError"), "{}", reasons[0]);
    assert!(!reasons[0].contains("reverted through"), "{}", reasons[0]);
    assert!(reasons[1].contains("its revert failed (REVERT_FAILURE)"), "{}", reasons[1]);
}

#[test]
fn a_rename_of_a_detail_that_had_not_completed_runs_as_it_will_once_applied() {
    let flow = chain(&["a", "b2", "c"]);
    let details = vec![saved("a", "SUCCESS"), saved("b", "RUNNING"), saved("c", "PENDING")];
    let plan =
        plan_with(&flow, &details, &HashMap::new(), VersionPolicy::Reuse, ProviderPolicy::Keep, &[rename("b", "b2")]);
    assert_eq!(actions(&flow, &details, &plan), pairs(&[("a", "reuse"), ("b2", "rerun"), ("c", "run")]));
    assert!(plan.entries[1]
        .reason
        .starts_with("Rename(b → b2) (not applied yet): its saved detail (RUNNING) carries over; was RUNNING"));
    let done = vec![saved("a", "SUCCESS"), saved("b", "SUCCESS"), saved("c", "PENDING")];
    let plan =
        plan_with(&flow, &done, &HashMap::new(), VersionPolicy::Reuse, ProviderPolicy::Keep, &[rename("b", "b2")]);
    assert_eq!(plan.actions[1], PlanAction::Migrate);
    assert_eq!(plan.entries[1].reason, "Rename(b → b2) (not applied yet): its saved detail (SUCCESS) carries over");
}

#[test]
fn details_saved_in_atom_order_match_as_by_name_whatever_surrounds_them() {
    // (matched by position when they line up: the plan must be the one the by-name map gives)
    let flow = chain(&["a", "b", "c", "d"]);
    let mut retired_a = saved("a", "SUCCESS");
    retired_a.retired_by = Some("rename a -> z".into());
    let in_order = |before: Vec<SavedAtom>, after: Vec<SavedAtom>| -> Vec<SavedAtom> {
        let run = ["a", "b", "c", "d"].iter().map(|n| saved(n, if *n == "d" { "PENDING" } else { "SUCCESS" }));
        before.into_iter().chain(run).chain(after).collect()
    };
    let cases = [
        (in_order(vec![], vec![]), vec![0, 1, 2, 3], vec![]),
        (in_order(vec![saved(INJECTOR_NAME, "SUCCESS")], vec![saved("x", "SUCCESS")]), vec![1, 2, 3, 4], vec![5]),
        (in_order(vec![retired_a.clone()], vec![]), vec![1, 2, 3, 4], vec![]),
        // a later detail of an atom's name wins over the one in line
        (in_order(vec![], vec![saved("b", "PENDING")]), vec![0, 4, 2, 3], vec![]),
        // a detail of an atom's name before the line: the one in line is the later, it wins
        (in_order(vec![saved("c", "PENDING")], vec![]), vec![1, 2, 3, 4], vec![]),
    ];
    for (details, matched, orphans) in cases {
        let plan = run_plan(&flow, &details);
        assert_eq!(plan.matched, matched, "{:?}", details.iter().map(|d| &d.name).collect::<Vec<_>>());
        assert_eq!(plan.orphans, orphans);
        // the same details in reverse order (never in line): the same atoms' details by name
        let reversed: Vec<SavedAtom> = details.iter().rev().cloned().collect();
        let back = run_plan(&flow, &reversed);
        let last = details.len() as u32 - 1;
        let expected: Vec<u32> = matched.iter().map(|&m| last - m).collect();
        if details.iter().filter(|d| d.name == "b" || d.name == "c").count() == 2 {
            assert_eq!(back.matched, expected);
            assert_eq!(actions(&flow, &reversed, &back), actions(&flow, &details, &plan));
        }
    }
    // out of line in the middle: matched by name
    let details = vec![saved("a", "SUCCESS"), saved("c", "SUCCESS"), saved("b", "SUCCESS"), saved("d", "PENDING")];
    assert_eq!(run_plan(&flow, &details).matched, vec![0, 2, 1, 3]);
}
