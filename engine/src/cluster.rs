use std::path::{Path, PathBuf};

use clap::{Args, Parser};
use timely::{CommunicationConfig, WorkerConfig};

use crate::EngineError;

/// Where and how wide a job runs: worker threads per process, the processes,
/// and which one this is.
///
/// The flags: `--workers/-w N`, `--processes/-n N`, `--process/-p I`,
/// `--hostfile/-H FILE` (one `host:port` per line, line `k` is process `k`)
/// and `--quiet/-q` (no progress bar, no run summary). `-h` is help, as in
/// every clap program. Flatten it into your own clap parser:
///
/// ```
/// use clap::Parser;
/// use weir_engine::Cluster;
///
/// #[derive(Parser)]
/// struct Args {
///     #[command(flatten)]
///     cluster: Cluster,
///     /// How many events to generate.
///     #[arg(long, default_value_t = 1000)]
///     events: u64,
/// }
///
/// let args = Args::try_parse_from(["job", "-w", "4", "--events", "10"]).unwrap();
/// assert_eq!(args.cluster.workers(), 4);
/// assert_eq!(args.events, 10);
/// let help = Args::try_parse_from(["job", "-h"]).err().unwrap();
/// assert_eq!(help.kind(), clap::error::ErrorKind::DisplayHelp);
/// ```
#[derive(Args, Debug, Clone, PartialEq, Eq)]
#[command(next_help_heading = "Cluster")]
pub struct Cluster {
    /// Worker threads in this process
    #[arg(short = 'w', long = "workers", default_value_t = 1, value_name = "N")]
    workers: usize,
    /// Processes in the cluster (start each with its own --process)
    #[arg(short = 'n', long = "processes", default_value_t = 1, value_name = "N")]
    processes: usize,
    /// Which process this is, from 0 to --processes minus 1
    #[arg(short = 'p', long = "process", default_value_t = 0, value_name = "I")]
    process: usize,
    /// File of the processes' addresses, one host:port per line, line k for process k
    /// [default: localhost:2101, localhost:2102, ...]
    #[arg(short = 'H', long = "hostfile", value_name = "FILE")]
    hostfile: Option<PathBuf>,
    /// No progress bar and no run summary on stderr
    #[arg(short = 'q', long = "quiet")]
    quiet: bool,
    /// Seconds to wait for every process of the cluster to connect before giving up
    #[arg(long = "connect-timeout", default_value_t = 60, value_name = "SECS")]
    connect_timeout: u64,
    /// File holding the cluster secret the processes prove to each other when they
    /// connect (or set WEIR_CLUSTER_SECRET); the same on every process
    #[arg(long = "secret-file", value_name = "FILE")]
    secret_file: Option<PathBuf>,
    /// Serve live metrics at this address (host:port, port 0 for any free
    /// one): GET /metrics in the OpenMetrics text format Prometheus scrapes
    #[arg(long = "metrics", value_name = "ADDR")]
    metrics: Option<String>,
    /// Whether SIGINT and SIGTERM stop a run cleanly (on for clusters made
    /// from flags, the way programs run).
    #[arg(skip = true)]
    signals: bool,
    /// Asks a run of this cluster to stop.
    #[arg(skip)]
    stop: crate::StopHandle,
}

/// The environment variable holding the cluster secret.
pub const SECRET_ENV: &str = "WEIR_CLUSTER_SECRET";

/// The cluster flags alone, for [`Cluster::from_args`].
#[derive(Parser)]
#[command(about = "A weir job. Runs on the worker threads and processes the flags below give.")]
struct ClusterOnly {
    #[command(flatten)]
    cluster: Cluster,
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster::threads(1)
    }
}

impl Cluster {
    /// One process with `workers` worker threads.
    ///
    /// # Examples
    ///
    /// ```
    /// let c = weir_engine::Cluster::threads(3);
    /// assert_eq!((c.workers(), c.processes(), c.process()), (3, 1, 0));
    /// ```
    pub fn threads(workers: usize) -> Self {
        Cluster {
            workers,
            processes: 1,
            process: 0,
            hostfile: None,
            quiet: false,
            connect_timeout: 60,
            secret_file: None,
            metrics: None,
            signals: false,
            stop: crate::StopHandle::new(),
        }
    }

    /// Process `process` of a cluster of `processes`, each with `workers`
    /// threads, whose addresses are read from `hostfile`.
    pub fn multi_process(
        workers: usize,
        processes: usize,
        process: usize,
        hostfile: impl Into<PathBuf>,
    ) -> Self {
        Cluster {
            workers,
            processes,
            process,
            hostfile: Some(hostfile.into()),
            quiet: false,
            connect_timeout: 60,
            secret_file: None,
            metrics: None,
            signals: false,
            stop: crate::StopHandle::new(),
        }
    }

    /// The same cluster, waiting at most `timeout` for its processes to
    /// connect when the job starts (default 60 s, at least 1 s).
    pub fn with_connect_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.connect_timeout = timeout.as_secs().max(1);
        self
    }

    /// How long the job waits for its processes to connect.
    pub fn connect_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.connect_timeout.max(1))
    }

    /// The same cluster, its processes proving to each other that they
    /// know the secret in file `path` when they connect (see
    /// [`secret`](Cluster::secret)).
    pub fn with_secret_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.secret_file = Some(path.into());
        self
    }

    /// The cluster secret: the contents of `--secret-file` (without a final
    /// newline), else the environment variable `WEIR_CLUSTER_SECRET`, else
    /// none. With one, each process proves it knows it to every other when
    /// they connect (HMAC-SHA256 over fresh nonces: the secret never goes on
    /// the wire), and a process that does not is refused. Only set-up is
    /// authenticated; the traffic is not encrypted.
    ///
    /// # Errors
    ///
    /// The file cannot be read, or the secret is empty.
    pub fn secret(&self) -> Result<Option<Vec<u8>>, EngineError> {
        let secret = match &self.secret_file {
            Some(path) => {
                let mut bytes = std::fs::read(path).map_err(|e| EngineError::Config {
                    field: "--secret-file",
                    expected: format!(
                        "a readable file holding the cluster secret ({}: {e})",
                        path.display()
                    ),
                })?;
                while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    bytes.pop();
                }
                Some((bytes, "--secret-file"))
            }
            None => std::env::var_os(SECRET_ENV)
                .map(|v| (v.into_encoded_bytes(), "WEIR_CLUSTER_SECRET")),
        };
        match secret {
            Some((bytes, field)) if bytes.is_empty() => Err(EngineError::Config {
                field,
                expected: "a cluster secret that is not empty".into(),
            }),
            Some((bytes, _)) => Ok(Some(bytes)),
            None => Ok(None),
        }
    }

    /// Whether SIGINT (Ctrl-C) and SIGTERM stop a run cleanly, a second
    /// one at once: on for a cluster made from flags ([`Cluster::from_args`],
    /// or flattened into a program's own parser), off for
    /// [`Cluster::threads`] and [`Cluster::multi_process`], which a
    /// library or a test makes.
    pub fn handle_signals(mut self, on: bool) -> Self {
        self.signals = on;
        self
    }

    /// The handle that asks a run of this cluster (and of its clones) to
    /// stop cleanly, as SIGTERM does.
    pub fn stop_handle(&self) -> crate::StopHandle {
        self.stop.clone()
    }

    /// The handles a run listens to, each reset: its own and, with
    /// [`handle_signals`](Cluster::handle_signals), the process's signal
    /// handle (installed now).
    ///
    /// # Errors
    ///
    /// The signal handlers cannot be installed.
    pub fn stop_handles(&self) -> Result<Vec<crate::StopHandle>, EngineError> {
        let mut handles = vec![self.stop.clone()];
        if self.signals {
            let signals = crate::StopHandle::signals().map_err(|e| {
                EngineError::Startup(format!("cannot handle SIGINT and SIGTERM: {e}"))
            })?;
            handles.push(signals);
        }
        for h in &handles {
            h.reset();
        }
        Ok(handles)
    }

    /// The same cluster without progress bar and run summary.
    pub fn quiet(mut self, quiet: bool) -> Self {
        self.quiet = quiet;
        self
    }

    /// Parses the cluster flags from the process arguments; prints help or
    /// the error and exits on bad flags, as clap does.
    pub fn from_args() -> Self {
        ClusterOnly::parse().cluster
    }

    /// Parses the cluster flags from `args` (the first item is the program name).
    ///
    /// # Errors
    ///
    /// Unknown flags or values that are not numbers.
    pub fn try_parse_from<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        ClusterOnly::try_parse_from(args).map(|c| c.cluster)
    }

    /// Worker threads per process.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Number of processes.
    pub fn processes(&self) -> usize {
        self.processes
    }

    /// Index of this process.
    pub fn process(&self) -> usize {
        self.process
    }

    /// The host file, if one was given.
    pub fn hostfile(&self) -> Option<&Path> {
        self.hostfile.as_deref()
    }

    /// Serves the metrics of runs of this cluster at `addr` (see
    /// [`MetricsServer`](crate::MetricsServer)), as `--metrics ADDR` does.
    pub fn with_metrics(mut self, addr: impl Into<String>) -> Self {
        self.metrics = Some(addr.into());
        self
    }

    /// Where the metrics of a run are served, if anywhere.
    pub fn metrics_addr(&self) -> Option<&str> {
        self.metrics.as_deref()
    }

    /// True if progress bar and run summary are off.
    pub fn is_quiet(&self) -> bool {
        self.quiet
    }

    /// Workers in the whole cluster: `workers × processes`.
    pub fn total_workers(&self) -> usize {
        self.workers * self.processes
    }

    /// Checks the settings and builds timely's configuration (timely's own
    /// argument parsing panics on flags it does not know, so weir builds it).
    ///
    /// # Errors
    ///
    /// [`EngineError::Config`] naming the flag: zero workers or processes, a
    /// process index out of range, an unreadable host file or one with fewer
    /// addresses than processes.
    pub fn timely_config(&self) -> Result<timely::Config, EngineError> {
        if self.workers == 0 {
            return Err(config_err(
                "--workers",
                "at least 1 worker thread per process",
            ));
        }
        if self.processes == 0 {
            return Err(config_err("--processes", "at least 1 process"));
        }
        if self.process >= self.processes {
            return Err(config_err(
                "--process",
                format!(
                    "an index below --processes ({}), got {}",
                    self.processes, self.process
                ),
            ));
        }
        let communication = if self.processes > 1 {
            CommunicationConfig::Cluster {
                threads: self.workers,
                process: self.process,
                addresses: self.addresses()?,
                report: false,
                zerocopy: false,
            }
        } else if self.workers > 1 {
            CommunicationConfig::Process(self.workers)
        } else {
            CommunicationConfig::Thread
        };
        Ok(timely::Config {
            communication,
            worker: WorkerConfig::default(),
        })
    }

    /// The address of every process: the host file's, or the default ones.
    pub(crate) fn addresses(&self) -> Result<Vec<String>, EngineError> {
        let Some(path) = &self.hostfile else {
            return Ok((0..self.processes)
                .map(|k| format!("localhost:{}", 2101 + k))
                .collect());
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            config_err(
                "--hostfile",
                format!(
                    "a readable file of host:port lines ({}: {e})",
                    path.display()
                ),
            )
        })?;
        let addresses: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        if addresses.len() < self.processes {
            return Err(config_err(
                "--hostfile",
                format!(
                    "one host:port line per process: {} has {} address(es) but --processes is {}",
                    path.display(),
                    addresses.len(),
                    self.processes
                ),
            ));
        }
        if let Some(bad) = addresses.iter().find(|a| !a.contains(':')) {
            return Err(config_err(
                "--hostfile",
                format!(
                    "lines of the form host:port, got `{bad}` in {}",
                    path.display()
                ),
            ));
        }
        Ok(addresses.into_iter().take(self.processes).collect())
    }
}

fn config_err(field: &'static str, expected: impl Into<String>) -> EngineError {
    EngineError::Config {
        field,
        expected: expected.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn parses_timely_style_flags() {
        let c =
            Cluster::try_parse_from(["x", "-w", "3", "-n", "2", "-p", "1", "-H", "hosts"]).unwrap();
        assert_eq!(c.workers(), 3);
        assert_eq!(c.processes(), 2);
        assert_eq!(c.process(), 1);
        assert_eq!(c.hostfile(), Some(Path::new("hosts")));
        assert_eq!(c.total_workers(), 6);
    }

    /// `-h` and `--help` are help, and the help is written for people:
    /// every flag with its text, no rustdoc, no crate names. (clap checks a
    /// parser's flags for clashes when it is built in a debug build, as
    /// tests are: a clash would panic here.)
    #[test]
    fn help_is_h_and_reads_as_help() {
        for flag in ["-h", "--help"] {
            let err = Cluster::try_parse_from(["job", flag]).unwrap_err();
            assert_eq!(err.kind(), clap::error::ErrorKind::DisplayHelp, "{flag}");
            let help = err.to_string();
            for text in [
                "-w, --workers <N>",
                "-n, --processes <N>",
                "-p, --process <I>",
                "-H, --hostfile <FILE>",
                "-q, --quiet",
                "-h, --help",
                "Cluster:",
                "one host:port per line",
            ] {
                assert!(help.contains(text), "{flag}: no `{text}` in\n{help}");
            }
            assert!(
                !help.contains("weir_engine") && !help.contains("```"),
                "{help}"
            );
        }
    }

    #[test]
    fn unknown_flag_is_a_clap_error_not_a_panic() {
        assert!(Cluster::try_parse_from(["x", "--bogus"]).is_err());
    }

    #[test]
    fn bad_settings_name_the_flag() {
        let err = Cluster::threads(0).timely_config().unwrap_err();
        assert!(err.to_string().contains("--workers"), "{err}");
        let mut c = Cluster::threads(1);
        c.processes = 2;
        c.process = 2;
        let err = c.timely_config().unwrap_err();
        assert!(err.to_string().contains("--process`"), "{err}");
    }

    #[test]
    fn short_hostfile_is_rejected() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "127.0.0.1:4000").unwrap();
        let c = Cluster::multi_process(1, 2, 0, f.path());
        let err = c.timely_config().unwrap_err().to_string();
        assert!(
            err.contains("--hostfile") && err.contains("1 address"),
            "{err}"
        );
        let missing = Cluster::multi_process(1, 2, 0, "/nonexistent/hosts");
        let err = missing.timely_config().unwrap_err().to_string();
        assert!(
            err.contains("--hostfile") && err.contains("/nonexistent/hosts"),
            "{err}"
        );
    }

    #[test]
    fn hostfile_lines_become_addresses() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "127.0.0.1:4000\n127.0.0.1:4001\n").unwrap();
        let c = Cluster::multi_process(2, 2, 1, f.path());
        match c.timely_config().unwrap().communication {
            CommunicationConfig::Cluster {
                threads,
                process,
                addresses,
                ..
            } => {
                assert_eq!((threads, process), (2, 1));
                assert_eq!(addresses, vec!["127.0.0.1:4000", "127.0.0.1:4001"]);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
