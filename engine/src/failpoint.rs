//! Failure injection, for testing recovery: with `WEIR_FAILPOINT=name` in
//! the environment, the process aborts (as a crash would stop it, without
//! unwinding or flushing anything) the first time it reaches failpoint
//! `name`; with `WEIR_FAILPOINT=name:n`, the `n`-th time. Without the
//! variable a failpoint costs one check of a value read once.
//!
//! The failpoints of checkpoints: `checkpoint-state-saved` (a part has
//! written its share of a checkpoint), `checkpoint-manifest-written` (the
//! manifest is written, its output not yet published),
//! `checkpoint-published`, `final-manifest-written` (the job's end is
//! committed, not yet published), `restore-published` (a restored
//! checkpoint's output is published again, the job not yet started),
//! `queue-publishing` (a queue sink's publisher has sent a checkpoint's
//! output, not yet committed it) and `queue-published` (it has committed
//! it; the checkpoint does not note it yet).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The failpoint set in the environment, and at which hit it fires.
fn armed() -> Option<&'static (String, u64)> {
    static ARMED: OnceLock<Option<(String, u64)>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let value = std::env::var("WEIR_FAILPOINT").ok()?;
            match value.split_once(':') {
                Some((name, n)) => Some((name.to_string(), n.parse().unwrap_or(1))),
                None => Some((value, 1)),
            }
        })
        .as_ref()
}

/// Failpoint `name`: aborts the process if `WEIR_FAILPOINT` arms it and this
/// is the hit it names.
pub fn hit(name: &str) {
    static HITS: AtomicU64 = AtomicU64::new(0);
    let Some((armed, at)) = armed() else {
        return;
    };
    if armed == name && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *at {
        eprintln!("weir: failpoint `{name}` reached: aborting");
        std::process::abort();
    }
}
