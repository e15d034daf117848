//! The four ways to tamper with the audit table — edit, delete, reorder, truncate — each caught
//! and named at the first bad row; plus dropped guard triggers. The attacker here writes the
//! SQLite file directly (dropping the triggers first), as someone with the file would.

use rusqlite::Connection;
use serde_json::json;

use super::*;
use crate::state::{Event, Store};

fn store_with(n: u64) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let events: Vec<Event> = (1..=n)
        .map(|i| Event::for_run("FR-12-run", "iteration", json!({"i": i, "note": "ok"})))
        .collect();
    store.append_batch(&events).unwrap();
    (dir, store)
}

/// A raw connection with the append-only triggers dropped, as an attacker would.
fn attacker(store: &Store) -> Connection {
    let c = Connection::open(store.path()).unwrap();
    c.execute_batch("DROP TRIGGER events_no_update; DROP TRIGGER events_no_delete;")
        .unwrap();
    c
}

/// Puts the triggers back, so only the chain can tell.
fn restore_guards(c: &Connection) {
    c.execute_batch(
        "CREATE TRIGGER events_no_update BEFORE UPDATE ON events \
         BEGIN SELECT RAISE(ABORT, 'x'); END; \
         CREATE TRIGGER events_no_delete BEFORE DELETE ON events \
         BEGIN SELECT RAISE(ABORT, 'x'); END;",
    )
    .unwrap();
}

#[test]
fn an_untouched_chain_verifies_against_its_head() {
    let (_d, store) = store_with(20);
    let head = store.head().unwrap();
    let r = store.verify(Some(head)).unwrap();
    assert_eq!(r.problem, None);
    assert_eq!(r.rows_verified, 20);
    assert_eq!(r.head, head);
}

#[test]
fn the_triggers_refuse_update_and_delete() {
    let (_d, store) = store_with(3);
    let c = Connection::open(store.path()).unwrap();
    let up = c.execute("UPDATE events SET body = '{}' WHERE seq = 2", []);
    assert!(up.unwrap_err().to_string().contains("append-only"));
    let del = c.execute("DELETE FROM events WHERE seq = 3", []);
    assert!(del.unwrap_err().to_string().contains("append-only"));
}

#[test]
fn an_edited_row_is_named() {
    let (_d, store) = store_with(10);
    let c = attacker(&store);
    c.execute(
        "UPDATE events SET body = '{\"i\":4,\"note\":\"fine\"}' WHERE seq = 4",
        [],
    )
    .unwrap();
    restore_guards(&c);
    let r = store.verify(None).unwrap();
    assert!(
        matches!(r.problem, Some(Problem::ContentEdited { seq: 4, .. })),
        "{:?}",
        r.problem
    );
    assert_eq!(r.rows_verified, 3);
}

#[test]
fn an_edit_with_a_recomputed_hash_breaks_the_next_link() {
    let (_d, store) = store_with(10);
    let c = attacker(&store);
    // Rewrite row 4 consistently with its own prev_hash: row 5's prev_hash no longer matches.
    let (ts, prev): (i64, Vec<u8>) = c
        .query_row("SELECT ts, prev_hash FROM events WHERE seq = 4", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    let body = br#"{"i":4,"note":"forged"}"#;
    let mut entry = Vec::new();
    entry_bytes(&mut entry, 4, ts, Some("FR-12-run"), "iteration", body);
    let prev = Digest32(prev.try_into().unwrap());
    let hash = entry_hash(&prev, &entry);
    c.execute(
        "UPDATE events SET body = ?1, hash = ?2 WHERE seq = 4",
        rusqlite::params![std::str::from_utf8(body).unwrap(), &hash.0[..]],
    )
    .unwrap();
    restore_guards(&c);
    let r = store.verify(None).unwrap();
    assert!(
        matches!(r.problem, Some(Problem::PrevHashMismatch { seq: 5, .. })),
        "{:?}",
        r.problem
    );
}

#[test]
fn a_deleted_middle_row_is_named() {
    let (_d, store) = store_with(10);
    let c = attacker(&store);
    c.execute("DELETE FROM events WHERE seq = 6", []).unwrap();
    restore_guards(&c);
    let r = store.verify(None).unwrap();
    assert_eq!(
        r.problem,
        Some(Problem::SeqGap {
            seq: 7,
            expected_seq: 6
        })
    );
    let text = r.problem.unwrap().to_string();
    assert!(text.contains("rows 6..6 were deleted"), "{text}");
}

#[test]
fn reordered_rows_are_named() {
    let (_d, store) = store_with(10);
    let c = attacker(&store);
    // Swap rows 3 and 4 (content, links and hashes travel with them; only seq changes).
    c.execute_batch(
        "UPDATE events SET seq = -3 WHERE seq = 3; \
         UPDATE events SET seq = 3 WHERE seq = 4; \
         UPDATE events SET seq = 4 WHERE seq = -3;",
    )
    .unwrap();
    restore_guards(&c);
    let r = store.verify(None).unwrap();
    assert!(
        matches!(r.problem, Some(Problem::PrevHashMismatch { seq: 3, .. })),
        "{:?}",
        r.problem
    );
}

#[test]
fn truncation_is_caught_only_against_a_kept_head() {
    let (_d, store) = store_with(10);
    let head = store.head().unwrap();
    let c = attacker(&store);
    c.execute("DELETE FROM events WHERE seq > 7", []).unwrap();
    restore_guards(&c);
    // Alone, the shorter chain is consistent: this is why the head is kept elsewhere.
    assert_eq!(store.verify(None).unwrap().problem, None);
    let r = store.verify(Some(head)).unwrap();
    assert_eq!(
        r.problem,
        Some(Problem::Truncated {
            end_seq: 7,
            expected_seq: 10
        })
    );
}

#[test]
fn a_rewritten_chain_does_not_match_the_kept_head() {
    let (dir, store) = store_with(5);
    let head = store.head().unwrap();
    drop(store);
    // Replace the whole database with a fresh, self-consistent chain of the same length.
    std::fs::remove_file(dir.path().join(crate::state::DB_FILE)).unwrap();
    for ext in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.path().join(format!("{}{ext}", crate::state::DB_FILE)));
    }
    let mut forged = Store::open(dir.path()).unwrap();
    let events: Vec<Event> = (1..=5)
        .map(|i| Event::new("iteration", json!({"i": i})))
        .collect();
    forged.append_batch(&events).unwrap();
    let r = forged.verify(Some(head)).unwrap();
    assert!(
        matches!(r.problem, Some(Problem::HeadMismatch { seq: 5, .. })),
        "{:?}",
        r.problem
    );
}

#[test]
fn dropped_guards_are_reported() {
    let (_d, store) = store_with(2);
    let _c = attacker(&store);
    let r = store.verify(None).unwrap();
    assert!(
        matches!(r.problem, Some(Problem::GuardMissing { .. })),
        "{:?}",
        r.problem
    );
}
