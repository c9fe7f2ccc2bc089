//! Benchmarks of weir against hand-written timely dataflow and plain
//! single-threaded loops. The binaries (`nexmark-bench`, `window-bench`,
//! `latency-bench`, `pipeline-bench`) print one JSON line per run; see
//! `benches/README.md` for the commands and the figures.
#![deny(missing_docs)]

pub mod nexmark;
pub mod queues;

/// Every benchmark binary, and every implementation in it, allocates through
/// mimalloc: with glibc's allocator the weir pipelines' batches (about
/// 115 KB each) were returned to the kernel and faulted in again (Nexmark
/// q0, 10 M events: 2.2e5 page faults against 1.1e3 for hand-written
/// timely); see benches/README.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The peak resident set size of this process so far (`VmHWM`), in bytes;
/// 0 where `/proc` is not available.
pub fn peak_rss_bytes() -> u64 {
    weir::Usage::now().peak_resident_bytes.unwrap_or(0)
}

/// The resident set size of this process now (`VmRSS`), in bytes; 0
/// where `/proc` is not available.
pub fn rss_bytes() -> u64 {
    weir::Usage::now().resident_bytes.unwrap_or(0)
}

/// Samples [`rss_bytes`] every `every` on a thread of its own until the
/// returned guard is finished: the samples, in MB.
pub struct RssSampler {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Vec<f64>>,
}

impl RssSampler {
    /// Starts sampling.
    pub fn start(every: std::time::Duration) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut samples = vec![rss_bytes() as f64 / 1e6];
            let started = std::time::Instant::now();
            let mut next = every;
            while !stopping.load(Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(10));
                if started.elapsed() >= next {
                    samples.push(rss_bytes() as f64 / 1e6);
                    next += every;
                }
            }
            samples
        });
        RssSampler { stop, thread }
    }

    /// Stops sampling: the samples, in MB, the first at the start.
    pub fn finish(self) -> Vec<f64> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// Where a benchmarked job's results go: counted, and with
/// [`Results::keeping`] also kept as `Debug` strings so that implementations
/// can be compared. Clones share the same tally.
///
/// ```
/// use weir_benches::Results;
///
/// let r = Results::keeping();
/// r.add(&[3, 1]);
/// r.clone().add(&[2]);
/// let out = r.finish();
/// assert_eq!(out.count, 3);
/// assert_eq!(out.rows, ["1", "2", "3"]);
/// ```
#[derive(Clone, Default)]
pub struct Results {
    count: Arc<AtomicU64>,
    rows: Option<Arc<Mutex<Vec<String>>>>,
}

/// The results of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// How many results.
    pub count: u64,
    /// The results as `Debug` strings, sorted (empty unless kept).
    pub rows: Vec<String>,
}

impl Results {
    /// Results that are only counted.
    pub fn counting() -> Self {
        Results::default()
    }

    /// Results that are counted and kept.
    pub fn keeping() -> Self {
        Results {
            count: Arc::default(),
            rows: Some(Arc::default()),
        }
    }

    /// Adds a batch of results.
    pub fn add<T: Debug>(&self, batch: &[T]) {
        self.add_each(batch.len(), batch.iter());
    }

    /// Adds `n` results, read from `batch` only if they are kept.
    pub fn add_each<'a, T: Debug + 'a>(&self, n: usize, batch: impl Iterator<Item = &'a T>) {
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        if let Some(rows) = &self.rows {
            let mut rows = rows.lock().expect("results lock");
            rows.extend(batch.map(|r| format!("{r:?}")));
        }
    }

    /// The results so far.
    pub fn finish(&self) -> Output {
        let mut rows = self
            .rows
            .as_ref()
            .map(|r| std::mem::take(&mut *r.lock().expect("results lock")))
            .unwrap_or_default();
        rows.sort();
        Output {
            count: self.count.load(Ordering::Relaxed),
            rows,
        }
    }
}
