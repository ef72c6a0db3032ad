//! Store behaviour: round trips, NULLs, cascades, upserts, errors, atomic batches, leases, files.
//! The `#[ignore]`d benchmarks at the end print timings: `cargo test --release -- --ignored --nocapture bench`.
use std::time::{Duration, Instant};

use super::*;
use crate::error::{CoreError, CoreResult};

fn book(uuid: &str) -> LogBookRow {
    LogBookRow {
        uuid: uuid.into(),
        name: format!("book {uuid}"),
        meta: r#"{"k": 1}"#.into(),
        created_at: 10.5,
        updated_at: None,
    }
}

fn flow(uuid: &str, book: &str) -> FlowDetailRow {
    FlowDetailRow {
        uuid: uuid.into(),
        parent_uuid: book.into(),
        name: format!("flow {uuid}"),
        state: None,
        meta: r#"{"factory": {"name": "m.f"}}"#.into(),
        created_at: 11.0,
        updated_at: None,
    }
}

fn atom(uuid: &str, flow: &str) -> AtomDetailRow {
    AtomDetailRow {
        uuid: uuid.into(),
        parent_uuid: flow.into(),
        name: format!("atom-{uuid}"),
        atom_type: AtomType::Task,
        state: Some("PENDING".into()),
        intention: "EXECUTE".into(),
        results: "null".into(),
        failure: None,
        revert_results: "null".into(),
        revert_failure: None,
        version: Some("1.0".into()),
        meta: "{}".into(),
        created_at: 12.0,
        updated_at: None,
    }
}

/// A store holding book `b`, flow `f` and atoms `a0..a{n}`.
fn populated(n: usize) -> Store {
    let mut store = Store::open_in_memory().unwrap();
    store.save_logbook(&book("b")).unwrap();
    store.save_flow_detail(&flow("f", "b")).unwrap();
    let atoms: Vec<_> = (0..n).map(|i| atom(&format!("a{i}"), "f")).collect();
    store.upsert_atom_details(&atoms).unwrap();
    store
}

fn is_not_found<T>(result: &CoreResult<T>, needle: &str) -> bool {
    matches!(result, Err(CoreError::NotFound(m)) if m.contains(needle))
}

fn storage_message(result: CoreResult<Store>) -> String {
    match result {
        Err(CoreError::Storage(m)) => m,
        other => panic!("expected a Storage error, got {other:?}"),
    }
}

// ---- round trips and NULLs ----------------------------------------------------------------------

#[test]
fn every_row_type_round_trips() {
    let mut store = Store::open_in_memory().unwrap();
    let b = LogBookRow { updated_at: Some(20.25), ..book("b") };
    store.save_logbook(&b).unwrap();
    let f = FlowDetailRow { state: Some("RUNNING".into()), updated_at: Some(21.0), ..flow("f", "b") };
    store.save_flow_detail(&f).unwrap();
    let task = AtomDetailRow {
        state: Some("FAILURE".into()),
        results: r#"{"x": [1, 2.5, "é"]}"#.into(),
        failure: Some(r#"{"exc_type_names": ["ValueError"], "exception_str": "boom"}"#.into()),
        revert_results: r#""undone""#.into(),
        revert_failure: Some(r#"{"exception_str": "revert boom"}"#.into()),
        meta: r#"{"progress": 0.5}"#.into(),
        updated_at: Some(22.0),
        ..atom("t", "f")
    };
    let retry = AtomDetailRow { atom_type: AtomType::Retry, intention: "RETRY".into(), ..atom("r", "f") };
    store.upsert_atom_details(&[task.clone(), retry.clone()]).unwrap();

    assert_eq!(store.get_logbook("b").unwrap(), b);
    assert_eq!(store.list_logbooks().unwrap(), vec![b]);
    assert_eq!(store.get_flow_detail("f").unwrap(), f);
    assert_eq!(store.flows_for_book("b").unwrap(), vec![f]);
    assert_eq!(store.get_atom_detail("t").unwrap(), task);
    assert_eq!(store.get_atom_detail("r").unwrap(), retry);
    assert_eq!(store.atoms_for_flow("f").unwrap(), vec![task, retry]);
}

#[test]
fn nullable_columns_read_back_as_none() {
    let mut store = populated(0);
    let bare = AtomDetailRow { state: None, version: None, failure: None, revert_failure: None, ..atom("n", "f") };
    store.upsert_atom_details(std::slice::from_ref(&bare)).unwrap();
    let got = store.get_atom_detail("n").unwrap();
    assert_eq!(
        (got.state, got.version, got.failure, got.revert_failure, got.updated_at),
        (None, None, None, None, None)
    );
    assert_eq!(store.get_flow_detail("f").unwrap().state, None);
    assert_eq!(store.get_logbook("b").unwrap().updated_at, None);
}

#[test]
fn a_transition_changes_only_the_columns_it_names() {
    let mut store = populated(2);
    let failed = Transition {
        state: Some("FAILURE".into()),
        failure: Nullable::Set(r#"{"exception_str": "x"}"#.into()),
        updated_at: Some(30.0),
        ..Transition::new("a0")
    };
    store.apply_transitions(&[failed]).unwrap();
    let a0 = store.get_atom_detail("a0").unwrap();
    assert_eq!(a0.state.as_deref(), Some("FAILURE"));
    assert_eq!(a0.failure.as_deref(), Some(r#"{"exception_str": "x"}"#));
    assert_eq!(a0.updated_at, Some(30.0));
    assert_eq!((a0.intention.as_str(), a0.results.as_str(), a0.meta.as_str()), ("EXECUTE", "null", "{}"));
    assert_eq!(store.get_atom_detail("a1").unwrap(), atom("a1", "f"), "another atom was touched");

    // Keep leaves the failure in place; Clear sets it to NULL.
    let revert = Transition { intention: Some("REVERT".into()), ..Transition::new("a0") };
    store.apply_transitions(&[revert]).unwrap();
    assert!(store.get_atom_detail("a0").unwrap().failure.is_some());
    let reset = Transition { state: Some("PENDING".into()), failure: Nullable::Clear, ..Transition::new("a0") };
    store.apply_transitions(&[reset]).unwrap();
    let a0 = store.get_atom_detail("a0").unwrap();
    assert_eq!((a0.state.as_deref(), a0.failure, a0.intention.as_str()), (Some("PENDING"), None, "REVERT"));
}

// ---- upserts, cascades, NotFound ------------------------------------------------------------------

#[test]
fn saving_again_updates_in_place_keeping_created_at_and_children() {
    let mut store = populated(3);
    let renamed =
        LogBookRow { name: "renamed".into(), meta: "{}".into(), created_at: 99.0, updated_at: Some(40.0), ..book("b") };
    store.save_logbook(&renamed).unwrap();
    let got = store.get_logbook("b").unwrap();
    assert_eq!((got.name.as_str(), got.created_at, got.updated_at), ("renamed", 10.5, Some(40.0)));
    assert_eq!(store.list_logbooks().unwrap().len(), 1);
    // An upsert must never delete-and-reinsert: that would cascade away the children.
    assert_eq!(store.flows_for_book("b").unwrap().len(), 1);
    assert_eq!(store.atoms_for_flow("f").unwrap().len(), 3);

    store.save_flow_detail(&FlowDetailRow { state: Some("SUCCESS".into()), ..flow("f", "b") }).unwrap();
    assert_eq!(store.get_flow_detail("f").unwrap().state.as_deref(), Some("SUCCESS"));
    assert_eq!(store.atoms_for_flow("f").unwrap().len(), 3);

    let replaced =
        AtomDetailRow { state: Some("SUCCESS".into()), results: "42".into(), created_at: 0.0, ..atom("a1", "f") };
    store.upsert_atom_details(std::slice::from_ref(&replaced)).unwrap();
    assert_eq!(store.get_atom_detail("a1").unwrap(), AtomDetailRow { created_at: 12.0, ..replaced });
    let names: Vec<_> = store.atoms_for_flow("f").unwrap().into_iter().map(|a| a.uuid).collect();
    assert_eq!(names, ["a0", "a1", "a2"], "an upsert keeps the original order");
}

#[test]
fn update_flow_detail_needs_an_existing_flow() {
    let mut store = populated(0);
    let changed =
        FlowDetailRow { name: "new".into(), state: Some("RUNNING".into()), updated_at: Some(5.0), ..flow("f", "b") };
    store.update_flow_detail(&changed).unwrap();
    assert_eq!(store.get_flow_detail("f").unwrap(), changed);
    assert!(is_not_found(&store.update_flow_detail(&flow("nope", "b")), "flow detail 'nope'"));
}

#[test]
fn destroying_a_logbook_cascades_to_its_flows_and_atoms() {
    let mut store = populated(5);
    store.save_logbook(&book("other")).unwrap();
    store.save_flow_detail(&flow("g", "other")).unwrap();
    store.upsert_atom_details(&[atom("keep", "g")]).unwrap();

    store.destroy_logbook("b").unwrap();
    assert!(is_not_found(&store.get_logbook("b"), "logbook 'b'"));
    assert!(is_not_found(&store.get_flow_detail("f"), "flow detail 'f'"));
    assert!(is_not_found(&store.get_atom_detail("a3"), "atom detail 'a3'"));
    assert!(store.atoms_for_flow("f").unwrap().is_empty());
    assert_eq!(store.get_atom_detail("keep").unwrap().parent_uuid, "g");
    assert!(is_not_found(&store.destroy_logbook("b"), "logbook 'b'"));
}

#[test]
fn clear_all_empties_every_table() {
    let mut store = populated(4);
    store.clear_all().unwrap();
    assert!(store.list_logbooks().unwrap().is_empty());
    assert!(store.atoms_for_flow("f").unwrap().is_empty());
    assert!(is_not_found(&store.get_flow_detail("f"), "'f'"));
}

#[test]
fn missing_rows_and_parents_are_not_found() {
    let mut store = populated(1);
    assert!(is_not_found(&store.get_logbook("x"), "logbook 'x' not found"));
    assert!(is_not_found(&store.get_flow_detail("x"), "flow detail 'x' not found"));
    assert!(is_not_found(&store.get_atom_detail("x"), "atom detail 'x' not found"));
    assert!(is_not_found(
        &store.save_flow_detail(&flow("g", "nobook")),
        "logbook 'nobook' not found (saving flow detail 'g')"
    ));
    assert!(is_not_found(&store.upsert_atom_details(&[atom("y", "noflow")]), "flow detail 'noflow' not found"));
    assert!(is_not_found(&store.apply_transitions(&[Transition::new("x")]), "atom detail 'x'"));
    assert!(is_not_found(&store.update_flow_state("x", "RUNNING", None), "flow detail 'x'"));
    assert!(is_not_found(&store.acquire_lease("x", "me", 1.0, 0.0), "flow detail 'x'"));
    assert!(is_not_found(&store.release_lease("x", "me"), "flow detail 'x'"));
    assert!(is_not_found(&store.lease("x"), "flow detail 'x'"));
    // Listing under a missing parent is empty, as in TaskFlow.
    assert!(store.flows_for_book("x").unwrap().is_empty());
    assert!(store.atoms_for_flow("x").unwrap().is_empty());
}

// ---- batches --------------------------------------------------------------------------------------

#[test]
fn a_batch_commits_atoms_transitions_and_flow_state_together() {
    let mut store = populated(2);
    let mut batch = Batch::new();
    batch
        .upsert_atom(atom("new", "f"))
        .transition(Transition { state: Some("SUCCESS".into()), results: Some("1".into()), ..Transition::new("a0") })
        .transition(Transition { state: Some("RUNNING".into()), ..Transition::new("new") })
        .flow_state("f", "RUNNING", Some(50.0));
    store.apply(&batch).unwrap();
    assert_eq!(store.get_atom_detail("a0").unwrap().results, "1");
    assert_eq!(store.get_atom_detail("new").unwrap().state.as_deref(), Some("RUNNING"));
    let f = store.get_flow_detail("f").unwrap();
    assert_eq!((f.state.as_deref(), f.updated_at), (Some("RUNNING"), Some(50.0)));
}

#[test]
fn a_failing_batch_applies_nothing() {
    let mut store = populated(2);
    let mut batch = Batch::new();
    batch
        .upsert_atom(atom("new", "f"))
        .transition(Transition { state: Some("SUCCESS".into()), ..Transition::new("a0") })
        .transition(Transition { state: Some("SUCCESS".into()), ..Transition::new("ghost") })
        .flow_state("f", "SUCCESS", None);
    assert!(is_not_found(&store.apply(&batch), "atom detail 'ghost'"));
    assert!(is_not_found(&store.get_atom_detail("new"), "'new'"));
    assert_eq!(store.get_atom_detail("a0").unwrap().state.as_deref(), Some("PENDING"));
    assert_eq!(store.get_flow_detail("f").unwrap().state, None);

    // A missing parent half way through an upsert keeps the earlier rows out too.
    let rows = [atom("n1", "f"), atom("n2", "noflow"), atom("n3", "f")];
    assert!(is_not_found(
        &store.upsert_atom_details(&rows),
        "flow detail 'noflow' not found (saving atom detail 'n2')"
    ));
    assert!(is_not_found(&store.get_atom_detail("n1"), "'n1'"));

    // The connection is still usable after the rollback.
    store.apply_transitions(&[Transition { state: Some("RUNNING".into()), ..Transition::new("a1") }]).unwrap();
    assert_eq!(store.get_atom_detail("a1").unwrap().state.as_deref(), Some("RUNNING"));
}

#[test]
fn a_batch_renames_a_detail_and_records_the_migration_in_flow_meta_together() {
    let mut store = populated(1);
    let renamed = AtomDetailRow { name: "renamed".into(), ..store.get_atom_detail("a0").unwrap() };
    let mut batch = Batch::new();
    batch.upsert_atom(renamed).flow_meta("f", r#"{"migrations": [{"id": "rename:a0>renamed"}]}"#, Some(60.0));
    store.apply(&batch).unwrap();
    assert_eq!(store.get_atom_detail("a0").unwrap().name, "renamed");
    let f = store.get_flow_detail("f").unwrap();
    assert_eq!((f.meta.as_str(), f.updated_at), (r#"{"migrations": [{"id": "rename:a0>renamed"}]}"#, Some(60.0)));

    // A meta change of a missing flow rolls the whole batch back.
    let mut batch = Batch::new();
    batch.upsert_atom(AtomDetailRow { name: "again".into(), ..store.get_atom_detail("a0").unwrap() });
    batch.flow_meta("ghost", "{}", None);
    assert!(is_not_found(&store.apply(&batch), "flow detail 'ghost'"));
    assert_eq!(store.get_atom_detail("a0").unwrap().name, "renamed");
}

#[test]
fn restore_rows_read_the_resume_fields_and_the_payloads_in_one_pass() {
    let mut store = populated(0);
    let done = AtomDetailRow {
        name: "b".into(),
        state: Some("SUCCESS".into()),
        results: r#"{"x": 1}"#.into(),
        meta: r#"{"progress":1.0}"#.into(),
        ..atom("u1", "f")
    };
    let failed = AtomDetailRow {
        name: "c".into(),
        state: Some("FAILURE".into()),
        failure: Some("{}".into()),
        meta: r#"{"progress":1.0}"#.into(),
        ..atom("u2", "f")
    };
    let fresh = AtomDetailRow { name: "d".into(), meta: "{}".into(), ..atom("u3", "f") };
    store.upsert_atom_details(&[done, failed, fresh]).unwrap();
    let read = store.restore_rows("f").unwrap();
    let resume = store.resume_rows("f").unwrap();
    assert_eq!(read.rows.iter().map(|r| r.resume.clone()).collect::<Vec<_>>(), resume, "same plan input");
    let uuids: Vec<&str> = read.rows.iter().map(|r| r.uuid.as_str()).collect();
    assert_eq!(uuids, ["u1", "u2", "u3"]);
    assert_eq!(read.rows[0].results.as_deref(), Some(r#"{"x": 1}"#));
    assert_eq!((read.rows[2].results.as_deref(), read.rows[2].revert_results.as_deref()), (None, None), "null");
    assert_eq!(read.rows.iter().map(|r| r.has_failure).collect::<Vec<_>>(), [false, true, false]);
    assert_eq!(read.metas, [r#"{"progress":1.0}"#, "{}"], "each distinct meta once");
    assert_eq!(read.rows.iter().map(|r| r.meta).collect::<Vec<_>>(), [0, 0, 1]);
    assert!(store.restore_rows("nothing").unwrap().rows.is_empty());
}

#[test]
fn resume_rows_read_the_resume_record_without_payloads() {
    let mut store = populated(0);
    let recorded = AtomDetailRow {
        name: "b".into(),
        state: Some("SUCCESS".into()),
        results: r#""a big result""#.into(),
        meta: r#"{"progress": 1.0, "ferroflow": {"migrated": {"migration": "Split(b → b1, b2)"}}}"#.into(),
        ..atom("u1", "f")
    };
    let bare = AtomDetailRow { name: "c".into(), atom_type: AtomType::Retry, version: None, ..atom("u2", "f") };
    let odd = AtomDetailRow { name: "d".into(), ..atom("u3", "f") };
    store.upsert_atom_details(&[recorded, bare, odd]).unwrap();
    let mut batch = Batch::new();
    batch.resume_record("u1", "a\u{1f}a\u{1d}class\u{1d}m.B\u{1d}{\"args\": [1]}").resume_record("u3", "not a record");
    store.apply(&batch).unwrap();
    let rows = store.resume_rows("f").unwrap();
    assert_eq!(
        rows[0],
        ResumeRow {
            name: "b".into(),
            atom_type: Some(AtomType::Task),
            state: Some("SUCCESS".into()),
            intention: "EXECUTE".into(),
            version: Some("1.0".into()),
            inputs: Some("a\u{1f}a".into()),
            revert_kind: Some("class".into()),
            revert_name: Some("m.B".into()),
            retired_by: Some("Split(b → b1, b2)".into()),
        }
    );
    assert_eq!(
        (rows[1].atom_type, rows[1].version.as_deref(), rows[1].inputs.as_deref()),
        (Some(AtomType::Retry), None, None)
    );
    assert_eq!((rows[2].inputs.as_deref(), rows[2].revert_kind.as_deref()), (None, None), "malformed: nothing");
    assert!(store.resume_rows("nothing").unwrap().is_empty());
    let summaries = store.resume_summaries("f").unwrap();
    assert_eq!(summaries.len(), 2, "only details with a record");
    assert_eq!(summaries[0], ("u1".into(), Some("a\u{1f}a".into()), Some("class".into()), Some("m.B".into())));
    assert_eq!(
        store.resume_record("u1").unwrap().as_deref(),
        Some("a\u{1f}a\u{1d}class\u{1d}m.B\u{1d}{\"args\": [1]}")
    );
    assert_eq!(store.resume_record("u2").unwrap(), None);
    assert!(is_not_found(&store.resume_record("ghost"), "'ghost'"));

    // A transition carries a record too, in the same statement; one without keeps the record.
    store
        .apply_transitions(&[
            Transition {
                state: Some("SUCCESS".into()),
                resume: Some("x\u{1d}noop\u{1d}\u{1d}".into()),
                ..Transition::new("u1")
            },
            Transition { state: Some("RUNNING".into()), ..Transition::new("u3") },
        ])
        .unwrap();
    assert_eq!(store.resume_rows("f").unwrap()[0].revert_kind.as_deref(), Some("noop"));
    assert_eq!(store.resume_record("u3").unwrap().as_deref(), Some("not a record"));

    // A record of a missing detail rolls its batch back.
    let mut batch = Batch::new();
    batch.resume_record("u2", "\u{1d}noop\u{1d}\u{1d}").resume_record("ghost", "");
    assert!(is_not_found(&store.apply(&batch), "atom detail 'ghost'"));
    assert_eq!(store.resume_record("u2").unwrap(), None);
}

// ---- leases ---------------------------------------------------------------------------------------

#[test]
fn a_lease_is_exclusive_until_it_expires() {
    let mut store = populated(0);
    assert_eq!(store.lease("f").unwrap(), None);
    assert_eq!(store.acquire_lease("f", "engine-1", 30.0, 100.0).unwrap(), Ok(1));
    assert_eq!(store.lease("f").unwrap(), Some(Lease { owner: "engine-1".into(), until: 130.0, epoch: 1 }));

    // Refused while live, naming the owner; the lease is unchanged.
    assert_eq!(store.acquire_lease("f", "engine-2", 30.0, 129.9).unwrap(), Err("engine-1".to_owned()));
    assert_eq!(store.lease("f").unwrap().unwrap().owner, "engine-1");
    // The owner may take it again (extending it, same epoch).
    assert_eq!(store.acquire_lease("f", "engine-1", 30.0, 120.0).unwrap(), Ok(1));
    assert_eq!(store.lease("f").unwrap(), Some(Lease { owner: "engine-1".into(), until: 150.0, epoch: 1 }));
    // Anyone may take it once it expired: the epoch moves on.
    assert_eq!(store.acquire_lease("f", "engine-2", 10.0, 150.0).unwrap(), Ok(2));
    assert_eq!(store.lease("f").unwrap(), Some(Lease { owner: "engine-2".into(), until: 160.0, epoch: 2 }));
}

#[test]
fn taking_a_lease_reads_the_flow_row_with_it() {
    let mut store = populated(0);
    let (epoch, row) = store.acquire_lease_reading("f", "engine-1", 30.0, 100.0).unwrap().unwrap();
    assert_eq!((epoch, row), (1, store.get_flow_detail("f").unwrap()));
    assert_eq!(store.acquire_lease_reading("f", "engine-2", 30.0, 110.0).unwrap(), Err("engine-1".to_owned()));
    assert!(is_not_found(&store.acquire_lease_reading("x", "me", 1.0, 0.0), "flow detail 'x'"));
}

#[test]
fn only_the_owner_renews_or_releases_a_lease() {
    let mut store = populated(0);
    let epoch = store.acquire_lease("f", "a", 10.0, 0.0).unwrap().unwrap();
    store.renew_lease("f", "a", epoch, 10.0, 5.0).unwrap();
    assert_eq!(store.lease("f").unwrap(), Some(Lease { owner: "a".into(), until: 15.0, epoch }));

    let err = store.renew_lease("f", "b", epoch, 10.0, 5.0).unwrap_err();
    assert!(matches!(&err, CoreError::LeaseLost(m) if m.contains("held by 'a'")), "{err}");
    let err = store.renew_lease("f", "a", epoch + 1, 10.0, 5.0).unwrap_err();
    assert!(matches!(&err, CoreError::LeaseLost(_)), "{err}");
    assert!(!store.release_lease("f", "b").unwrap());
    assert_eq!(store.lease("f").unwrap().unwrap().owner, "a");

    assert!(store.release_lease("f", "a").unwrap());
    assert_eq!(store.lease("f").unwrap(), None);
    assert!(
        matches!(store.renew_lease("f", "a", epoch, 10.0, 6.0), Err(CoreError::LeaseLost(m)) if m.contains("released"))
    );
    assert_eq!(store.acquire_lease("f", "b", 10.0, 6.0).unwrap(), Ok(epoch + 1));
}

#[test]
fn a_fenced_batch_commits_only_under_its_lease() {
    let mut store = populated(1);
    let atom = store.atoms_for_flow("f").unwrap()[0].uuid.clone();
    let old = store.acquire_lease("f", "old", 1.0, 0.0).unwrap().unwrap();
    let write = |store: &mut Store, owner: &str, epoch: i64, state: &str| {
        let mut batch = Batch::new();
        batch.transition(Transition { state: Some(state.to_owned().into()), ..Transition::new(atom.clone()) });
        batch.fence = Some(Fence { flow_uuid: "f".into(), owner: owner.into(), epoch });
        store.apply(&batch)
    };
    write(&mut store, "old", old, "RUNNING").unwrap();
    // The lease expires and another owner takes it: the old owner's writes are refused, whole.
    let new = store.acquire_lease("f", "new", 10.0, 5.0).unwrap().unwrap();
    assert!(new > old);
    let err = write(&mut store, "old", old, "SUCCESS").unwrap_err();
    assert!(matches!(&err, CoreError::LeaseLost(m) if m.contains("held by 'new'")), "{err}");
    assert_eq!(store.atoms_for_flow("f").unwrap()[0].state.as_deref(), Some("RUNNING"));
    write(&mut store, "new", new, "SUCCESS").unwrap();
    // Even the same owner name at a stale epoch is refused.
    store.release_lease("f", "new").unwrap();
    let again = store.acquire_lease("f", "new", 10.0, 6.0).unwrap().unwrap();
    assert!(matches!(write(&mut store, "new", new, "FAILURE"), Err(CoreError::LeaseLost(_))));
    write(&mut store, "new", again, "FAILURE").unwrap();
}

#[test]
fn a_fenced_flow_state_checks_its_lease_and_may_give_it_up_in_the_same_write() {
    let mut store = populated(1);
    let atom = store.atoms_for_flow("f").unwrap()[0].uuid.clone();
    let old = store.acquire_lease("f", "old", 1.0, 0.0).unwrap().unwrap();
    let end = |owner: &str, epoch: i64, state: &str, release: bool| {
        let mut batch = Batch::new();
        batch.transition(Transition { state: Some(state.to_owned().into()), ..Transition::new(atom.clone()) });
        batch.flow_state("f", state, Some(9.0));
        batch.fence = Some(Fence { flow_uuid: "f".into(), owner: owner.into(), epoch });
        batch.release = release;
        batch
    };
    store.apply(&end("old", old, "RUNNING", false)).unwrap();
    assert_eq!(store.lease("f").unwrap().map(|l| l.owner), Some("old".to_owned()));
    // Another owner took the expired lease: the old owner's state (and all its batch) is refused,
    // and the new owner's lease is left alone.
    let new = store.acquire_lease("f", "new", 10.0, 5.0).unwrap().unwrap();
    let err = store.apply(&end("old", old, "SUCCESS", true)).unwrap_err();
    assert!(matches!(&err, CoreError::LeaseLost(m) if m.contains("held by 'new'")), "{err}");
    assert_eq!(store.get_flow_detail("f").unwrap().state.as_deref(), Some("RUNNING"));
    assert_eq!(store.atoms_for_flow("f").unwrap()[0].state.as_deref(), Some("RUNNING"));
    assert_eq!(store.lease("f").unwrap().map(|l| (l.owner, l.epoch)), Some(("new".to_owned(), new)));
    // The holder's last write gives the lease up with its state; the next owner moves the epoch on.
    let changes = store.own_data_changes();
    store.apply(&end("new", new, "SUCCESS", true)).unwrap();
    assert_eq!(store.get_flow_detail("f").unwrap().state.as_deref(), Some("SUCCESS"));
    assert_eq!(store.get_flow_detail("f").unwrap().updated_at, Some(9.0));
    assert_eq!(store.lease("f").unwrap(), None);
    assert_eq!(store.own_data_changes(), changes + 2, "the atom and the flow's state are data");
    assert_eq!(store.acquire_lease("f", "next", 10.0, 6.0).unwrap(), Ok(new + 1));
    // A release in a batch without the flow's state is a lease statement of its own.
    let mut batch = Batch::new();
    batch.transition(Transition { state: Some("PENDING".to_owned().into()), ..Transition::new(atom.clone()) });
    batch.fence = Some(Fence { flow_uuid: "f".into(), owner: "next".into(), epoch: new + 1 });
    batch.release = true;
    let changes = store.own_data_changes();
    store.apply(&batch).unwrap();
    assert_eq!(store.lease("f").unwrap(), None);
    assert_eq!(store.own_data_changes(), changes + 1, "only the atom's row counts as data");
    // A release and nothing else is a write too (never dropped as an empty batch).
    let epoch = store.acquire_lease("f", "last", 10.0, 7.0).unwrap().unwrap();
    let batch = Batch {
        fence: Some(Fence { flow_uuid: "f".into(), owner: "last".into(), epoch }),
        release: true,
        ..Batch::default()
    };
    store.apply(&batch).unwrap();
    assert_eq!(store.lease("f").unwrap(), None);
}

#[test]
fn a_lease_needs_a_sane_duration() {
    let mut store = populated(0);
    for (seconds, now) in [(0.0, 1.0), (-1.0, 1.0), (f64::NAN, 1.0), (f64::INFINITY, 1.0), (1.0, f64::NAN)] {
        assert!(matches!(store.acquire_lease("f", "a", seconds, now), Err(CoreError::InvalidState(_))));
    }
    assert_eq!(store.lease("f").unwrap(), None);
}

// ---- files ----------------------------------------------------------------------------------------

#[test]
fn a_file_store_is_in_wal_mode_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows.db");
    {
        let mut store = Store::open(&path, Durability::Process).unwrap();
        assert_eq!(store.journal_mode().unwrap(), "wal");
        assert_eq!(store.schema_version().unwrap(), LATEST_VERSION);
        store.save_logbook(&book("b")).unwrap();
        store.close().unwrap();
    }
    let store = Store::open(&path, Durability::Fsync).unwrap();
    assert_eq!(store.journal_mode().unwrap(), "wal");
    assert_eq!(store.get_logbook("b").unwrap(), book("b"));
    store.validate().unwrap();
    assert_eq!(store.integrity_check().unwrap(), "ok");
    assert_eq!(store.path(), path.display().to_string());
}

#[test]
fn two_handles_on_one_file_see_each_others_commits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let mut one = Store::open(&path, Durability::Process).unwrap();
    let mut two = Store::open(&path, Durability::Process).unwrap();
    one.save_logbook(&book("b")).unwrap();
    one.save_flow_detail(&flow("f", "b")).unwrap();
    assert_eq!(two.get_logbook("b").unwrap(), book("b"));
    two.upsert_atom_details(&[atom("a", "f")]).unwrap();
    assert_eq!(one.atoms_for_flow("f").unwrap().len(), 1);

    assert_eq!(one.acquire_lease("f", "one", 60.0, 0.0).unwrap(), Ok(1));
    assert_eq!(two.acquire_lease("f", "two", 60.0, 1.0).unwrap(), Err("one".to_owned()));
    one.apply_transitions(&[Transition { state: Some("RUNNING".into()), ..Transition::new("a") }]).unwrap();
    assert_eq!(two.get_atom_detail("a").unwrap().state.as_deref(), Some("RUNNING"));
}

#[test]
fn a_newer_schema_file_is_refused_with_upgrade_advice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.db");
    Store::open(&path, Durability::Process).unwrap().close().unwrap();
    rusqlite::Connection::open(&path).unwrap().execute_batch("PRAGMA user_version = 7").unwrap();
    let message = storage_message(Store::open(&path, Durability::Process));
    assert_eq!(
        message,
        format!(
            "store '{}' was written by a newer ferroflow (schema v7, this version knows up to v{LATEST_VERSION}); \
             upgrade ferroflow",
            path.display()
        )
    );
}

#[test]
fn garbage_and_truncated_files_are_storage_errors_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    // A real store big enough to span many pages, to cut down below.
    let good = dir.path().join("good.db");
    {
        let mut store = Store::open(&good, Durability::Process).unwrap();
        store.save_logbook(&book("b")).unwrap();
        store.save_flow_detail(&flow("f", "b")).unwrap();
        let atoms: Vec<_> = (0..2_000).map(|i| atom(&format!("a{i}"), "f")).collect();
        store.upsert_atom_details(&atoms).unwrap();
        store.close().unwrap();
    }
    let image = std::fs::read(&good).unwrap();
    assert!(image.len() > 3 * 4096);

    let pseudo_random: Vec<u8> = (0..8192u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let mut bad_page_size = image[..4096].to_vec();
    bad_page_size[16..18].copy_from_slice(&[0x03, 0x00]);
    let cases: [(&str, Vec<u8>, &str); 5] = [
        ("garbage.db", pseudo_random, "not a SQLite database"),
        ("text.db", b"hello, I am a text file\n".repeat(10), "not a SQLite database"),
        ("header-cut.db", image[..50].to_vec(), "too short for a SQLite header"),
        ("bad-page-size.db", bad_page_size, "page size"),
        ("pages-cut.db", image[..2 * 4096].to_vec(), "malformed"),
    ];
    for (name, bytes, expected) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        let message = storage_message(Store::open(&path, Durability::Process));
        assert!(message.contains(&path.display().to_string()), "{name}: {message}");
        assert!(message.contains(expected), "{name}: {message}");
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{name} was modified");
    }
}

#[test]
fn an_unopenable_path_is_a_storage_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no/such/dir/x.db");
    let message = storage_message(Store::open(&path, Durability::Process));
    assert!(message.contains("no/such/dir/x.db"), "{message}");
    let message = storage_message(Store::open(dir.path(), Durability::Process));
    assert!(message.contains("it is a directory"), "{message}");
}

/// Environment variable telling the re-executed test binary to act as the crashing writer.
const CRASH_DB_ENV: &str = "FERROFLOW_STORE_CRASH_DB";
const CRASH_COMMITS: usize = 500;

/// The child half of `committed_transitions_survive_the_process_being_killed`: commits transitions
/// one by one, then dies at once without closing the store (as `kill -9` would).
#[test]
#[ignore = "run by committed_transitions_survive_the_process_being_killed in a child process"]
fn crash_child_commits_then_aborts() {
    let Ok(path) = std::env::var(CRASH_DB_ENV) else { return };
    let mut store = Store::open(&path, Durability::Process).unwrap();
    for i in 0..CRASH_COMMITS {
        let t = Transition {
            state: Some("SUCCESS".into()),
            results: Some(i.to_string().into()),
            ..Transition::new(format!("a{i}"))
        };
        store.apply_transitions(&[t]).unwrap();
    }
    std::process::abort();
}

#[test]
fn committed_transitions_survive_the_process_being_killed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    {
        let mut store = Store::open(&path, Durability::Process).unwrap();
        store.save_logbook(&book("b")).unwrap();
        store.save_flow_detail(&flow("f", "b")).unwrap();
        let atoms: Vec<_> = (0..CRASH_COMMITS).map(|i| atom(&format!("a{i}"), "f")).collect();
        store.upsert_atom_details(&atoms).unwrap();
        store.close().unwrap();
    }
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "store::tests::crash_child_commits_then_aborts", "--ignored", "--test-threads=1"])
        .env(CRASH_DB_ENV, &path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the child was meant to abort");
    assert!(dir.path().join("crash.db-wal").exists(), "the child should have died before any checkpoint on close");

    let store = Store::open(&path, Durability::Process).unwrap();
    let atoms = store.atoms_for_flow("f").unwrap();
    assert_eq!(atoms.len(), CRASH_COMMITS);
    for (i, a) in atoms.iter().enumerate() {
        assert_eq!((a.state.as_deref(), a.results.as_str()), (Some("SUCCESS"), i.to_string().as_str()), "atom {i}");
    }
    assert_eq!(store.integrity_check().unwrap(), "ok");
}

#[cfg(unix)]
#[test]
fn handles_on_one_path_know_whether_they_opened_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("one.db");
    let first = Store::open(&path, Durability::Process).unwrap();
    let reader = Store::open_read_only(&path).unwrap();
    assert!(first.file_identity().is_some());
    assert_eq!(reader.file_identity(), first.file_identity());
    // The path replaced by another store file (a restored backup, say): a handle opened now
    // reads another file than `first`, which still has the old one open.
    let other = dir.path().join("other.db");
    drop(Store::open(&other, Durability::Process).unwrap());
    std::fs::rename(&other, &path).unwrap();
    let later = Store::open_read_only(&path).unwrap();
    assert_ne!(later.file_identity(), first.file_identity());
    assert_eq!(Store::open_in_memory().unwrap().file_identity(), None);
}

// ---- benchmarks (print, never assert time) --------------------------------------------------------

const BENCH_ATOMS: usize = 100_000;

fn bench_store(dir: &tempfile::TempDir, durability: Durability) -> Store {
    let mut store = Store::open(dir.path().join("bench.db"), durability).unwrap();
    store.save_logbook(&book("b")).unwrap();
    store.save_flow_detail(&flow("f", "b")).unwrap();
    store
}

fn bench_atoms() -> Vec<AtomDetailRow> {
    (0..BENCH_ATOMS)
        .map(|i| AtomDetailRow {
            uuid: format!("{i:08x}-0000-4000-8000-000000000000"),
            name: format!("task-{i}"),
            ..atom("", "f")
        })
        .collect()
}

#[test]
#[ignore = "benchmark"]
fn bench_insert_and_load_100k_atoms() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = bench_store(&dir, Durability::Process);
    let atoms = bench_atoms();
    let started = Instant::now();
    store.upsert_atom_details(&atoms).unwrap();
    let inserted = started.elapsed();
    let started = Instant::now();
    let loaded = store.atoms_for_flow("f").unwrap();
    let load = started.elapsed();
    assert_eq!(loaded.len(), BENCH_ATOMS);
    assert_eq!(loaded[BENCH_ATOMS - 1], atoms[BENCH_ATOMS - 1]);
    eprintln!("insert {BENCH_ATOMS} atoms in one transaction: {inserted:?}");
    eprintln!("load {BENCH_ATOMS} atoms (atoms_for_flow): {load:?}");
}

fn bench_commits(durability: Durability, commits: u32, per_commit: u32) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = bench_store(&dir, durability);
    let atoms = bench_atoms();
    store.upsert_atom_details(&atoms).unwrap();
    let transitions: Vec<Transition> = atoms
        .iter()
        .cycle()
        .take((commits * per_commit) as usize)
        .map(|a| Transition {
            state: Some("SUCCESS".into()),
            results: Some(r#"{"value": 42}"#.into()),
            updated_at: Some(99.0),
            ..Transition::new(a.uuid.clone())
        })
        .collect();
    let started = Instant::now();
    for group in transitions.chunks(per_commit as usize) {
        let mut batch = Batch::new();
        batch.transitions = group.to_vec();
        store.apply(&batch).unwrap();
    }
    store.flush().unwrap();
    let elapsed = started.elapsed();
    assert_eq!(store.get_atom_detail(&atoms[0].uuid).unwrap().state.as_deref(), Some("SUCCESS"));
    eprintln!(
        "{durability:?}: {commits} commits of {per_commit} transition(s): {elapsed:?} = {:.2} us/commit, {:.2} us/transition",
        elapsed.as_secs_f64() * 1e6 / f64::from(commits),
        elapsed.as_secs_f64() * 1e6 / f64::from(commits * per_commit)
    );
}

#[test]
#[ignore = "benchmark"]
fn bench_100k_single_transition_commits() {
    bench_commits(Durability::Process, 100_000, 1);
}

#[test]
#[ignore = "benchmark"]
fn bench_group_commits() {
    bench_commits(Durability::Process, 12_500, 8);
    bench_commits(Durability::Fsync, 2_000, 1);
    bench_commits(Durability::Fsync, 2_000, 8);
    bench_commits(Durability::Batch, 100_000, 1);
}

// ---- group commit (Durability::Batch) ----------------------------------------------------------

/// A batch-durability store (groups of `rows` rows, `delay`) holding book `b`, flow `f` and atoms
/// `a0..a{n}`, and a second handle on its file.
fn grouped(dir: &tempfile::TempDir, n: usize, rows: usize, delay: Duration) -> (Store, Store) {
    let path = dir.path().join("grouped.db");
    let mut store = Store::open(&path, Durability::Batch).unwrap();
    store.set_group_commit(GroupCommit { max_transitions: rows, max_delay: delay });
    store.save_logbook(&book("b")).unwrap();
    store.save_flow_detail(&flow("f", "b")).unwrap();
    let atoms: Vec<_> = (0..n).map(|i| atom(&format!("a{i}"), "f")).collect();
    store.upsert_atom_details(&atoms).unwrap();
    let other = Store::open(&path, Durability::Process).unwrap();
    (store, other)
}

fn step(atom: &str, state: &str) -> Batch {
    let mut batch = Batch::new();
    batch.transition(Transition { state: Some(state.to_owned().into()), ..Transition::new(atom) });
    batch
}

fn state_of(store: &Store, atom: &str) -> String {
    store.get_atom_detail(atom).unwrap().state.unwrap()
}

#[test]
fn a_grouped_flow_state_joins_the_open_group_and_commits_with_its_steps() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, mut other) = grouped(&dir, 2, 1000, Duration::from_secs(60));
    let flow_state = |store: &Store| store.get_flow_detail("f").unwrap().state.unwrap_or_default();
    let epoch = store.acquire_lease("f", "me", 10.0, 0.0).unwrap().unwrap();
    let fence = Some(Fence { flow_uuid: "f".into(), owner: "me".into(), epoch });
    let fenced = |mut batch: Batch, grouped: bool| {
        batch.fence.clone_from(&fence);
        batch.grouped = grouped;
        batch
    };
    let mut start = Batch::new();
    start.flow_state("f", "RUNNING", Some(1.0));
    // A run's start waits in the group with the steps after it...
    store.apply(&fenced(start.clone(), true)).unwrap();
    store.apply(&fenced(step("a0", "SUCCESS"), false)).unwrap();
    assert_eq!((flow_state(&other), state_of(&other, "a0")), (String::new(), "PENDING".into()));
    store.flush().unwrap();
    assert_eq!((flow_state(&other), state_of(&other, "a0")), ("RUNNING".into(), "SUCCESS".into()));
    // ...and an ungrouped one commits the group and itself at once.
    store.apply(&fenced(step("a1", "RUNNING"), false)).unwrap();
    let mut end = Batch::new();
    end.flow_state("f", "SUCCESS", Some(2.0));
    store.apply(&fenced(end, false)).unwrap();
    assert_eq!((flow_state(&other), state_of(&other, "a1")), ("SUCCESS".into(), "RUNNING".into()));
    // A flow's later state in the group replaces the earlier one; a state written after the
    // group (joining it) is the last one written.
    store.apply(&fenced(start.clone(), true)).unwrap();
    let mut suspended = Batch::new();
    suspended.flow_state("f", "SUSPENDED", None);
    store.apply(&fenced(suspended, true)).unwrap();
    store.apply(&fenced(step("a1", "SUCCESS"), false)).unwrap();
    let mut failed = Batch::new();
    failed.flow_state("f", "FAILURE", None);
    store.apply(&fenced(failed, false)).unwrap();
    assert_eq!((flow_state(&other), state_of(&other, "a1")), ("FAILURE".into(), "SUCCESS".into()));
    // A group holding a run's start is refused whole once the lease was lost.
    store.apply(&fenced(start, true)).unwrap();
    store.apply(&fenced(step("a0", "REVERTING"), false)).unwrap();
    other.release_lease("f", "me").unwrap();
    other.acquire_lease("f", "thief", 10.0, 5.0).unwrap().unwrap();
    assert!(matches!(store.flush(), Err(CoreError::LeaseLost(_))));
    assert_eq!((flow_state(&other), state_of(&other, "a0")), ("FAILURE".into(), "SUCCESS".into()));
}

#[test]
fn grouped_transitions_commit_together_once_the_group_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, other) = grouped(&dir, 3, 3, Duration::from_secs(60));
    store.apply(&step("a0", "RUNNING")).unwrap();
    store.apply(&step("a0", "SUCCESS")).unwrap();
    // Nothing is written before the group commits.
    assert_eq!(state_of(&other, "a0"), "PENDING");
    store.apply(&step("a1", "RUNNING")).unwrap();
    assert_eq!((state_of(&other, "a0"), state_of(&other, "a1")), ("SUCCESS".into(), "RUNNING".into()));
    store.apply(&step("a1", "SUCCESS")).unwrap();
    assert_eq!(state_of(&other, "a1"), "RUNNING");
    store.flush().unwrap();
    assert_eq!(state_of(&other, "a1"), "SUCCESS");
    store.flush().unwrap(); // nothing open: a no-op
}

#[test]
fn an_atoms_transitions_in_one_group_merge_into_one_row_write() {
    let mut first =
        Transition { state: Some("RUNNING".into()), intention: Some("EXECUTE".into()), ..Transition::new("a") };
    first.failure = Nullable::Set("{}".into());
    let later = Transition {
        state: Some("SUCCESS".into()),
        results: Some("1".into()),
        failure: Nullable::Clear,
        resume: Some("r".into()),
        ..Transition::new("a")
    };
    first.merge(later.clone());
    let expected = Transition {
        state: Some("SUCCESS".into()),
        intention: Some("EXECUTE".into()),
        results: Some("1".into()),
        failure: Nullable::Clear,
        resume: Some("r".into()),
        ..Transition::new("a")
    };
    assert_eq!(first, expected);
    first.merge(Transition::new("a"));
    assert_eq!(first, expected, "a later transition keeping every column changes nothing");
}

#[test]
fn a_flow_state_change_or_any_other_write_commits_the_open_group_first() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, other) = grouped(&dir, 2, 1000, Duration::from_secs(60));
    store.apply(&step("a0", "SUCCESS")).unwrap();
    let mut end = step("a1", "SUCCESS");
    end.flow_state("f", "SUCCESS", None);
    store.apply(&end).unwrap();
    assert_eq!(other.get_flow_detail("f").unwrap().state.as_deref(), Some("SUCCESS"));
    assert_eq!((state_of(&other, "a0"), state_of(&other, "a1")), ("SUCCESS".into(), "SUCCESS".into()));

    store.apply(&step("a0", "REVERTING")).unwrap();
    assert_eq!(state_of(&other, "a0"), "SUCCESS");
    store.acquire_lease("f", "me", 10.0, 0.0).unwrap().unwrap();
    assert_eq!(state_of(&other, "a0"), "REVERTING");
}

#[test]
fn a_write_joining_the_open_group_that_fails_writes_the_group_alone() {
    // A flow state joins the open group's transitions in one commit; should that fail (here the
    // flow does not exist), the group is still written, as it would have been on its own.
    let dir = tempfile::tempdir().unwrap();
    let (mut store, other) = grouped(&dir, 2, 1000, Duration::from_secs(60));
    store.apply(&step("a0", "SUCCESS")).unwrap();
    let mut end = step("a1", "SUCCESS");
    end.flow_state("ghost", "SUCCESS", None);
    assert!(is_not_found(&store.apply(&end), "flow detail 'ghost'"));
    assert_eq!((state_of(&other, "a0"), state_of(&other, "a1")), ("SUCCESS".into(), "PENDING".into()));
    assert!(!store.has_uncommitted_writes());
}

// ---- held writes (Store::begin_hold) -----------------------------------------------------------

#[test]
fn held_writes_of_every_kind_commit_together_on_the_bounds_and_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, other) = grouped(&dir, 2, 4, Duration::from_secs(60));
    assert!(store.begin_hold().unwrap());
    assert!(store.holding());
    store.apply(&step("a0", "RUNNING")).unwrap();
    let mut state = Batch::new();
    state.flow_state("f", "RUNNING", None);
    store.apply(&state).unwrap(); // flushes the group into the held transaction: 1 write
    store.acquire_lease("f", "me", 10.0, 0.0).unwrap().unwrap(); // 2
                                                                 // This handle reads its own held writes; another sees nothing of them.
    assert_eq!(state_of(&store, "a0"), "RUNNING");
    assert_eq!(state_of(&other, "a0"), "PENDING");
    assert_eq!(other.get_flow_detail("f").unwrap().state, None);
    assert_eq!(other.lease("f").unwrap(), None);
    store.apply(&step("a1", "SUCCESS")).unwrap();
    store.release_lease("f", "me").unwrap(); // flushes a1 (3), then 4: the transaction is due
    assert_eq!(state_of(&other, "a1"), "SUCCESS");
    assert_eq!(other.get_flow_detail("f").unwrap().state.as_deref(), Some("RUNNING"));

    store.apply(&step("a0", "SUCCESS")).unwrap();
    store.flush().unwrap(); // into the held transaction, not committed
    assert_eq!(state_of(&other, "a0"), "RUNNING");
    store.end_hold().unwrap();
    assert!(!store.holding());
    assert_eq!(state_of(&other, "a0"), "SUCCESS");
    // Writes commit one by one again.
    store.apply(&state).unwrap();
    store.apply(&step("a1", "REVERTED")).unwrap();
    store.acquire_lease("f", "me", 10.0, 0.0).unwrap().unwrap();
    assert_eq!(state_of(&other, "a1"), "REVERTED");
}

#[test]
fn a_failing_held_write_applies_nothing_and_keeps_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, other) = grouped(&dir, 2, 1000, Duration::from_secs(60));
    store.begin_hold().unwrap();
    let mut first = Batch::new();
    first.flow_state("f", "RUNNING", None);
    store.apply(&first).unwrap();
    // A batch naming a missing atom among good rows is refused whole.
    let mut bad = Batch::new();
    bad.flow_state("f", "FAILURE", None);
    bad.upsert_atom(atom("ghost", "nowhere"));
    assert!(store.apply(&bad).is_err());
    assert!(store.acquire_lease("nowhere", "me", 10.0, 0.0).is_err());
    store.end_hold().unwrap();
    assert_eq!(other.get_flow_detail("f").unwrap().state.as_deref(), Some("RUNNING"));
    assert!(other.get_atom_detail("ghost").is_err());
}

#[test]
fn held_writes_commit_when_old_enough_even_with_no_write_after_them() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, other) = grouped(&dir, 2, 1000, Duration::from_millis(5));
    store.begin_hold().unwrap();
    let mut state = Batch::new();
    state.flow_state("f", "RUNNING", None);
    store.apply(&state).unwrap();
    assert_eq!(other.get_flow_detail("f").unwrap().state, None);
    assert!(store.flush_due().is_some(), "not due yet: the time left is returned");
    std::thread::sleep(Duration::from_millis(10));
    assert_eq!(store.flush_due(), None);
    assert_eq!(other.get_flow_detail("f").unwrap().state.as_deref(), Some("RUNNING"));
}

#[test]
fn a_kill_loses_at_most_the_open_held_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grouped.db");
    let (mut store, other) = grouped(&dir, 2, 2, Duration::from_secs(60));
    store.begin_hold().unwrap();
    for state in ["RUNNING", "SUSPENDED", "SUCCESS"] {
        let mut batch = Batch::new();
        batch.flow_state("f", state, None);
        store.apply(&batch).unwrap();
    }
    // Two writes committed; the third is open when the handle goes without end_hold (a kill).
    std::mem::forget(store);
    drop(other);
    let reopened = Store::open(&path, Durability::Process).unwrap();
    assert_eq!(reopened.get_flow_detail("f").unwrap().state.as_deref(), Some("SUSPENDED"));
}

#[test]
fn only_a_batch_store_holds_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path().join("p.db"), Durability::Process).unwrap();
    assert!(!store.begin_hold().unwrap());
    assert!(!store.holding());
}

#[test]
fn a_group_with_a_missing_atom_is_refused_whole_when_it_commits() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, other) = grouped(&dir, 2, 1000, Duration::from_secs(60));
    store.apply(&step("a0", "SUCCESS")).unwrap();
    store.apply(&step("ghost", "SUCCESS")).unwrap();
    assert!(is_not_found(&store.flush(), "atom detail 'ghost'"));
    assert_eq!(state_of(&other, "a0"), "PENDING");
    // The store goes on: the next group commits.
    store.apply(&step("a1", "RUNNING")).unwrap();
    store.flush().unwrap();
    assert_eq!(state_of(&other, "a1"), "RUNNING");
}

#[test]
fn a_due_group_is_committed_by_the_timer_and_a_lost_lease_refuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, mut other) = grouped(&dir, 1, 1000, Duration::from_millis(20));
    assert_eq!(store.flush_due(), None);
    store.apply(&step("a0", "RUNNING")).unwrap();
    let wait = store.flush_due().expect("a group is open");
    assert!(wait <= Duration::from_millis(20));
    assert_eq!(state_of(&other, "a0"), "PENDING");
    std::thread::sleep(wait);
    assert_eq!(store.flush_due(), None);
    assert_eq!(state_of(&other, "a0"), "RUNNING");

    // A group is written under its batches' fence: once another owner holds the lease, the
    // whole group is refused.
    let epoch = store.acquire_lease("f", "me", 1.0, 0.0).unwrap().unwrap();
    let fenced = |state: &str| {
        let mut batch = step("a0", state);
        batch.fence = Some(Fence { flow_uuid: "f".into(), owner: "me".into(), epoch });
        batch
    };
    store.apply(&fenced("SUCCESS")).unwrap();
    store.flush().unwrap();
    store.apply(&fenced("FAILURE")).unwrap();
    other.acquire_lease("f", "thief", 10.0, 5.0).unwrap().unwrap();
    assert!(matches!(store.flush(), Err(CoreError::LeaseLost(_))));
    assert_eq!(state_of(&other, "a0"), "SUCCESS");
}

#[test]
fn committed_pages_reach_the_database_file_without_the_writer_checkpointing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let mut store = Store::open(&path, Durability::Process).unwrap();
    store.save_logbook(&book("b")).unwrap();
    store.save_flow_detail(&flow("f", "b")).unwrap();
    let size_before = std::fs::metadata(&path).unwrap().len();
    // Far fewer WAL pages than the writer's own checkpoint threshold.
    let mut big = atom("a", "f");
    big.results = format!("\"{}\"", "x".repeat(64 * 1024));
    store.upsert_atom_details(&[big]).unwrap();
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    while std::fs::metadata(&path).unwrap().len() <= size_before + 32 * 1024 {
        assert!(Instant::now() < deadline, "the WAL was never checkpointed into the database file");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    store.close().unwrap();
}

#[test]
fn fresh_atoms_are_inserted_from_columns() {
    let mut store = populated(0);
    let fresh = |uuids: Vec<&str>, versions: Vec<Option<&str>>| {
        let mut rows = FreshRows::default();
        for (uuid, version) in uuids.iter().zip(versions) {
            rows.push(uuid, &format!("n-{uuid}"), *uuid == "r", version);
        }
        Batch { fresh_atoms: Some(FreshAtoms { parent_uuid: "f".into(), created_at: 5.0, rows }), ..Batch::default() }
    };
    store.apply(&fresh(vec!["t", "r"], vec![Some("1.0"), None])).unwrap();
    let rows = store.atoms_for_flow("f").unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0].name.as_str(), rows[0].atom_type, rows[0].version.as_deref()),
        ("n-t", AtomType::Task, Some("1.0"))
    );
    assert_eq!(
        (rows[1].atom_type, rows[1].state.as_deref(), rows[1].intention.as_str()),
        (AtomType::Retry, Some("PENDING"), "EXECUTE")
    );
    assert_eq!((rows[1].results.as_str(), rows[1].meta.as_str(), rows[1].created_at), ("null", "{}", 5.0));

    // A missing flow detail is named; a uuid already saved refuses the whole batch.
    let mut orphan = fresh(vec!["z"], vec![None]);
    orphan.fresh_atoms.as_mut().unwrap().parent_uuid = "noflow".into();
    let err = store.apply(&orphan).unwrap_err();
    assert_eq!(err, CoreError::NotFound("flow detail 'noflow' not found (saving atom detail 'z')".into()));
    let err = store.apply(&fresh(vec!["w", "t"], vec![None, None])).unwrap_err();
    assert!(matches!(err, CoreError::Storage(ref m) if m.contains("UNIQUE")), "{err:?}");
    assert_eq!(store.atoms_for_flow("f").unwrap().len(), 2, "nothing of a refused batch is written");
}

// ---- files that are not stores: refused untouched; new stores private --------------------------

/// A hash of the bytes, the modification time and the names in its directory: what "untouched"
/// compares.
fn snapshot(path: &std::path::Path) -> (u64, std::time::SystemTime, Vec<String>) {
    use std::hash::{Hash, Hasher};
    let mut names: Vec<String> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    std::fs::read(path).unwrap().hash(&mut hasher);
    (hasher.finish(), std::fs::metadata(path).unwrap().modified().unwrap(), names)
}

/// Another application's database: its own table, its own journal mode, its own `user_version`.
fn foreign_db(path: &std::path::Path, journal: &str, user_version: i64) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.pragma_update_and_check(None, "journal_mode", journal, |_| Ok(())).unwrap();
    conn.execute_batch(&format!(
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes (body) VALUES ('keep me');
         PRAGMA user_version = {user_version};"
    ))
    .unwrap();
    conn.close().unwrap();
}

#[test]
fn files_that_are_not_stores_are_refused_untouched_by_every_open() {
    type Make = Box<dyn Fn(&std::path::Path)>;
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Make, &str)> = vec![
        ("empty.db", Box::new(|p| std::fs::write(p, b"").unwrap()), "empty (0 bytes)"),
        ("text.db", Box::new(|p| std::fs::write(p, "a text file\n".repeat(20)).unwrap()), "not a SQLite database"),
        ("app.db", Box::new(|p| foreign_db(p, "delete", 0)), "without a ferroflow schema"),
        ("app-wal.db", Box::new(|p| foreign_db(p, "wal", 0)), "without a ferroflow schema"),
        ("app-versioned.db", Box::new(|p| foreign_db(p, "wal", 2)), "has no 'logbooks' table"),
    ];
    for (name, make, expected) in cases {
        let path = dir.path().join(name);
        make(&path);
        let before = snapshot(&path);
        std::thread::sleep(std::time::Duration::from_millis(20)); // an mtime change would show
        for open in [
            &(|p: &std::path::Path| Store::open(p, Durability::Process)) as &dyn Fn(&std::path::Path) -> _,
            &|p: &std::path::Path| Store::open_read_only(p),
        ] {
            let message = storage_message(open(&path));
            assert!(message.contains(&path.display().to_string()), "{name}: {message}");
            assert!(message.contains(expected), "{name}: {message}");
            assert_eq!(snapshot(&path), before, "{name} was modified (or -wal/-shm files were left)");
        }
    }
}

#[test]
fn a_read_only_open_writes_nothing_and_needs_an_existing_store() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.db");
    let message = storage_message(Store::open_read_only(&missing));
    assert!(message.contains("no such file") && message.contains("missing.db"), "{message}");
    assert!(!missing.exists(), "a read-only open created the file");

    let path = dir.path().join("s.db");
    {
        let mut store = Store::open(&path, Durability::Process).unwrap();
        store.save_logbook(&book("b")).unwrap();
        store.save_flow_detail(&flow("f", "b")).unwrap();
        store.upsert_atom_details(&[atom("a", "f")]).unwrap();
        store.close().unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let mut store = Store::open_read_only(&path).unwrap();
    assert!(store.is_read_only());
    assert_eq!(store.atoms_for_flow("f").unwrap().len(), 1);
    let refused = store.save_logbook(&book("c"));
    assert!(matches!(&refused, Err(CoreError::Storage(m)) if m.contains("readonly")), "{refused:?}");
    assert_eq!(store.upgrade().unwrap(), LATEST_VERSION);
    store.close().unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn an_older_store_opened_read_only_is_read_as_it_is_and_not_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    {
        // Schema v1 as it was released: the tables without the columns added since.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE logbooks (uuid TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL, meta TEXT NOT NULL,
                 created_at REAL NOT NULL, updated_at REAL);
             CREATE TABLE flowdetails (uuid TEXT PRIMARY KEY NOT NULL, parent_uuid TEXT NOT NULL, name TEXT NOT NULL,
                 state TEXT, meta TEXT NOT NULL, created_at REAL NOT NULL, updated_at REAL, owner TEXT,
                 lease_until REAL);
             CREATE TABLE atomdetails (uuid TEXT PRIMARY KEY NOT NULL, parent_uuid TEXT NOT NULL, name TEXT NOT NULL,
                 atom_type TEXT NOT NULL, state TEXT, intention TEXT NOT NULL, results TEXT NOT NULL, failure TEXT,
                 revert_results TEXT NOT NULL, revert_failure TEXT, version TEXT, meta TEXT NOT NULL,
                 created_at REAL NOT NULL, updated_at REAL);
             INSERT INTO logbooks VALUES ('b', 'b', '{}', 0, NULL);
             INSERT INTO flowdetails VALUES ('f', 'b', 'f', 'RUNNING', '{}', 0, NULL, NULL, NULL);
             INSERT INTO atomdetails VALUES ('a', 'f', 'a', 'TASK_DETAIL', 'SUCCESS', 'EXECUTE', '1', NULL, 'null',
                                             NULL, '1.0', '{}', 0, NULL);
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let mut store = Store::open_read_only(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), 1);
    assert_eq!(store.list_logbooks().unwrap().len(), 1);
    assert_eq!(store.flows_for_book("b").unwrap()[0].state.as_deref(), Some("RUNNING"));
    assert_eq!(store.atoms_for_flow("f").unwrap()[0].state.as_deref(), Some("SUCCESS"));
    assert_eq!(store.resume_rows("f").unwrap().len(), 1);
    let refused = store.upgrade();
    assert!(matches!(&refused, Err(CoreError::Storage(m)) if m.contains("schema v1") && m.contains("read-only")));
    store.close().unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), before, "the read-only open changed the file");
    // A read-write open upgrades it.
    let store = Store::open(&path, Durability::Process).unwrap();
    assert_eq!(store.schema_version().unwrap(), LATEST_VERSION);
}

/// A v4 file (atoms named their flow by its uuid) is read as it is by a read-only handle, through
/// views with v5's keys, and rebuilt by a read-write open keeping every row, rowid and lease; a
/// missing flow is refused as before.
#[test]
fn a_v4_store_is_read_through_views_read_only_and_upgraded_by_a_writer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v4.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        schema::create_at(&conn, 4).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             INSERT INTO logbooks VALUES ('b', 'b', '{}', 0, NULL);
             INSERT INTO flowdetails VALUES ('x', 'b', 'x', NULL, '{}', 0, NULL, NULL, NULL, 0);
             INSERT INTO flowdetails VALUES ('f', 'b', 'f', 'RUNNING', '{}', 1, NULL, 'me', 1e12, 3);
             INSERT INTO flowdetails VALUES ('g', 'b', 'g', NULL, '{}', 2, NULL, NULL, NULL, 0);
             DELETE FROM flowdetails WHERE uuid = 'x';
             INSERT INTO atomdetails (rowid, uuid, parent_uuid, name, atom_type, state, intention, results,
                                      revert_results, meta, created_at, resume, reserve)
             VALUES (30, 'f1', 'f', 'one', 'TASK_DETAIL', 'SUCCESS', 'EXECUTE', '1', 'null', '{}', 0,
                     'i\u{1d}noop\u{1d}\u{1d}', NULL),
                    (9, 'g0', 'g', 'zero', 'TASK_DETAIL', NULL, 'EXECUTE', 'null', 'null', '{}', 0, NULL, NULL),
                    (31, 'f2', 'f', 'two', 'TASK_DETAIL', 'PENDING', 'EXECUTE', 'null', 'null', '{}', 0, NULL,
                     zeroblob(32)),
                    (5, 'f0', 'f', 'zero', 'TASK_DETAIL', 'SUCCESS', 'EXECUTE', '0', 'null', '{}', 0, NULL, NULL);",
        )
        .unwrap();
        conn.close().unwrap();
    }
    let names = |atoms: Vec<AtomDetailRow>| -> Vec<(String, String)> {
        atoms.into_iter().map(|a| (a.uuid, a.parent_uuid)).collect()
    };
    let in_order = [("f0", "f"), ("f1", "f"), ("f2", "f")].map(|(a, f)| (a.to_owned(), f.to_owned()));
    let before = std::fs::read(&path).unwrap();
    let mut reader = Store::open_read_only(&path).unwrap();
    assert_eq!(reader.schema_version().unwrap(), 4);
    let flows: Vec<String> = reader.flows_for_book("b").unwrap().into_iter().map(|f| f.uuid).collect();
    assert_eq!(flows, ["f", "g"]);
    assert_eq!(names(reader.atoms_for_flow("f").unwrap()), in_order);
    assert_eq!(reader.get_atom_detail("g0").unwrap().parent_uuid, "g");
    assert_eq!(reader.resume_rows("f").unwrap().len(), 3);
    assert_eq!(reader.restore_rows("f").unwrap().rows.len(), 3);
    assert_eq!(reader.resume_summaries("f").unwrap().len(), 1);
    assert!(reader.upgrade().is_err());
    reader.close().unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), before, "the read-only open changed the file");
    let raw = rusqlite::Connection::open(&path).unwrap();
    assert_eq!(schema::read_version(&raw).unwrap(), 4);
    drop(raw);

    let mut store = Store::open(&path, Durability::Process).unwrap();
    assert_eq!(store.schema_version().unwrap(), LATEST_VERSION);
    store.validate().unwrap();
    assert_eq!(names(store.atoms_for_flow("f").unwrap()), in_order);
    let raw = rusqlite::Connection::open(&path).unwrap();
    let rowids: Vec<i64> = raw
        .prepare("SELECT rowid FROM atomdetails ORDER BY rowid")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(rowids, [5, 9, 30, 31]);
    let lease = store.lease("f").unwrap().unwrap();
    assert_eq!((lease.owner.as_str(), lease.epoch), ("me", 3));
    drop(raw);
    assert!(is_not_found(
        &store.upsert_atom_details(&[atom("y", "noflow")]),
        "flow detail 'noflow' not found (saving atom detail 'y')"
    ));
    // Writes name flows by uuid as before; a flow's deletion takes its atoms.
    store.upsert_atom_details(&[atom("g1", "g")]).unwrap();
    assert_eq!(names(store.atoms_for_flow("g").unwrap()).len(), 2);
    assert_eq!(store.delete_flow_detail("g", 0.0, None).unwrap(), Ok(()));
    assert!(is_not_found(&store.get_atom_detail("g1"), "atom detail 'g1'"));
    assert_eq!(store.atoms_for_flow("f").unwrap().len(), 3);
    store.close().unwrap();
}

#[cfg(unix)]
#[test]
fn a_new_store_and_its_wal_are_private_and_no_temporary_file_is_left() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("private.db");
    let mut store = Store::open(&path, Durability::Process).unwrap();
    store.save_logbook(&book("b")).unwrap();
    let mode = |suffix: &str| {
        let file = format!("{}{suffix}", path.display());
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(mode(""), 0o600);
    assert_eq!(mode("-wal"), 0o600);
    assert_eq!(mode("-shm"), 0o600);
    store.close().unwrap();
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("private.db")], "temporary or journal files were left");
}

#[test]
fn processes_creating_one_new_store_at_once_all_open_it() {
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("race-{round}.db"));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || Store::open(&path, Durability::Process).map(|s| s.schema_version()))
            })
            .collect();
        for handle in handles {
            assert_eq!(handle.join().unwrap().unwrap().unwrap(), LATEST_VERSION);
        }
        let count = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "new"))
            .count();
        assert_eq!(count, 0, "temporary files were left");
    }
}

#[test]
fn a_store_whose_path_holds_uri_characters_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("we?ird #%20name&mode=rw.db");
    let mut store = Store::open(&path, Durability::Process).unwrap();
    store.save_logbook(&book("b")).unwrap();
    store.close().unwrap();
    // Checked through an immutable `file:` URI (no -wal file now): the name must be escaped.
    assert_eq!(Store::open_read_only(&path).unwrap().list_logbooks().unwrap().len(), 1);
    assert_eq!(Store::open(&path, Durability::Process).unwrap().list_logbooks().unwrap().len(), 1);
}
