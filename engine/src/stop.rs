//! Stopping a running job on request: SIGINT (Ctrl-C) or SIGTERM, or a
//! call of [`StopHandle::request`].
//!
//! The first request asks the job to stop cleanly (what that means depends
//! on the job: with checkpoints, at the next checkpoint; without, by
//! ending its input and draining what it read); a second signal exits the
//! process at once.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A request to stop a job, shared by whoever asks and the job's workers.
///
/// # Examples
///
/// ```
/// use weir_engine::StopHandle;
///
/// let stop = StopHandle::new();
/// assert!(!stop.is_requested());
/// stop.clone().request();
/// assert!(stop.is_requested());
/// assert_eq!(stop.signal(), None);
/// ```
#[derive(Clone, Default, Debug)]
pub struct StopHandle(Arc<Inner>);

#[derive(Default, Debug)]
struct Inner {
    requested: Arc<AtomicBool>,
    /// The signal that asked, if one did (0: none).
    signal: Arc<AtomicUsize>,
}

impl PartialEq for StopHandle {
    /// Handles are not configuration: any two compare equal, so that a
    /// [`Cluster`](crate::Cluster) compares by its settings alone.
    fn eq(&self, _: &StopHandle) -> bool {
        true
    }
}

impl Eq for StopHandle {}

impl StopHandle {
    /// A handle nobody has asked through yet.
    pub fn new() -> Self {
        StopHandle::default()
    }

    /// Asks the job to stop.
    pub fn request(&self) {
        self.0.requested.store(true, Ordering::SeqCst);
    }

    /// Whether a stop was asked for.
    pub fn is_requested(&self) -> bool {
        self.0.requested.load(Ordering::SeqCst)
    }

    /// The signal that asked (`SIGINT` = 2, `SIGTERM` = 15), if one did.
    pub fn signal(&self) -> Option<i32> {
        match self.0.signal.load(Ordering::SeqCst) {
            0 => None,
            s => Some(s as i32),
        }
    }

    /// Forgets an earlier request (a new run of a job starts unasked).
    pub(crate) fn reset(&self) {
        self.0.requested.store(false, Ordering::SeqCst);
        self.0.signal.store(0, Ordering::SeqCst);
    }

    /// The process's handle for SIGINT and SIGTERM, installed on first use:
    /// the first signal asks through it, a second one exits the process at
    /// once (status 130 for SIGINT, 143 for SIGTERM).
    ///
    /// # Errors
    ///
    /// The handlers cannot be installed.
    pub fn signals() -> std::io::Result<StopHandle> {
        static HANDLE: Mutex<Option<StopHandle>> = Mutex::new(None);
        let mut installed = HANDLE.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(handle) = installed.as_ref() {
            return Ok(handle.clone());
        }
        let handle = StopHandle::new();
        for (signal, status) in [
            (signal_hook::consts::SIGINT, 130),
            (signal_hook::consts::SIGTERM, 143),
        ] {
            // The exit is registered first, so the first signal finds the
            // flag still down and only raises it.
            signal_hook::flag::register_conditional_shutdown(
                signal,
                status,
                Arc::clone(&handle.0.requested),
            )?;
            signal_hook::flag::register_usize(
                signal,
                Arc::clone(&handle.0.signal),
                signal as usize,
            )?;
            signal_hook::flag::register(signal, Arc::clone(&handle.0.requested))?;
        }
        Ok(installed.insert(handle).clone())
    }
}
