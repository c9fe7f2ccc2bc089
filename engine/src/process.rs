//! What the operating system says about this process: resident memory and
//! CPU time, from `/proc` (Linux; `None` elsewhere).

/// Clock ticks per second of the CPU times in `/proc/<pid>/stat`: Linux
/// reports them in USER_HZ, 100 on every architecture it runs on.
const USER_HZ: f64 = 100.0;

/// This process's resource use, now.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// Resident memory, in bytes.
    pub resident_bytes: Option<u64>,
    /// The most resident memory so far (`VmHWM`), in bytes.
    pub peak_resident_bytes: Option<u64>,
    /// CPU time, user and system, over all threads, in seconds.
    pub cpu_seconds: Option<f64>,
}

impl Usage {
    /// Reads this process's resource use.
    ///
    /// # Examples
    ///
    /// ```
    /// let usage = weir_engine::Usage::now();
    /// if cfg!(target_os = "linux") {
    ///     assert!(usage.resident_bytes.unwrap() > 0);
    ///     assert!(usage.cpu_seconds.unwrap() >= 0.0);
    /// }
    /// ```
    pub fn now() -> Usage {
        let status = std::fs::read_to_string("/proc/self/status").ok();
        let status = status.as_deref().unwrap_or_default();
        Usage {
            resident_bytes: status_bytes(status, "VmRSS:"),
            peak_resident_bytes: status_bytes(status, "VmHWM:"),
            cpu_seconds: cpu_seconds(),
        }
    }
}

/// The size in kB on the line of `/proc/self/status` starting with
/// `field`, in bytes.
fn status_bytes(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// `utime + stime` of `/proc/self/stat` (fields 14 and 15), in seconds.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: the
    // fields after it start at the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}
