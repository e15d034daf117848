//! Audit store throughput: appends one event per transaction, appends in batches of 1,000, and
//! `verify` over the whole chain. Run with `bench/audit.sh` (or
//! `cargo bench -p orchestrate --bench audit -- [EVENTS]`); prints a Markdown table.
//!
//! Each figure is the best of three runs on a fresh database in a temp dir (on the same disk as
//! the state directory would be: `TMPDIR`).

use std::time::{Duration, Instant};

use orchestrate::state::{Event, Store};
use serde_json::json;

fn event(i: u64) -> Event {
    Event::for_run(
        "FR-12-20261123T100000-abcd",
        "tool_call",
        json!({"call_id": i, "tool": "write_file", "args": {"path": "src/slug.rs", "bytes": 812}, "allowed": true}),
    )
}

fn best_of<F: FnMut() -> Duration>(runs: usize, mut f: F) -> Duration {
    (0..runs).map(|_| f()).min().unwrap_or_default()
}

fn fresh() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let store = Store::open(dir.path()).unwrap_or_else(|e| panic!("open store: {e}"));
    (dir, store)
}

#[allow(clippy::cast_precision_loss)]
fn per_sec(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

#[allow(clippy::unwrap_used, clippy::expect_used)]
fn main() {
    let total: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let single_n = 5_000u64;

    let single = best_of(3, || {
        let (_d, mut s) = fresh();
        let t = Instant::now();
        for i in 0..single_n {
            s.append(&event(i)).unwrap();
        }
        t.elapsed()
    });

    let batch = 1_000u64;
    let (_keep, mut big) = fresh();
    let t = Instant::now();
    let mut i = 0;
    while i < total {
        let n = batch.min(total - i);
        let events: Vec<Event> = (i..i + n).map(event).collect();
        big.append_batch(&events).unwrap();
        i += n;
    }
    let batched = t.elapsed();

    let verify = best_of(3, || {
        let t = Instant::now();
        let r = big.verify(None).unwrap();
        assert!(r.is_valid() && r.rows_verified == total);
        t.elapsed()
    });

    println!("| measurement | events | time | rate |");
    println!("| --- | ---: | ---: | ---: |");
    println!(
        "| append, one transaction per event | {single_n} | {:.2} s | {:.0} events/s |",
        single.as_secs_f64(),
        per_sec(single_n, single)
    );
    println!(
        "| append, batches of {batch} | {total} | {:.2} s | {:.0} events/s |",
        batched.as_secs_f64(),
        per_sec(total, batched)
    );
    println!(
        "| audit verify | {total} | {:.2} s | {:.0} rows/s |",
        verify.as_secs_f64(),
        per_sec(total, verify)
    );
}
