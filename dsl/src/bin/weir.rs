//! The `weir` command: run or explain a text pipeline spec.
//!
//! ```sh
//! weir run spec.toml                 # one worker
//! weir run spec.toml -w 4            # four worker threads
//! weir explain spec.toml             # the plan, as text
//! ```

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use weir::Cluster;
use weir::spec::Spec;

/// weir: stream processing pipelines, from a TOML spec.
#[derive(Parser)]
#[command(version, disable_help_subcommand = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the pipeline a spec describes.
    Run {
        /// The spec file (TOML).
        spec: PathBuf,
        /// With [checkpoint]: start from the beginning instead of resuming
        /// (deletes the job's checkpoints and the output they published).
        #[arg(long)]
        fresh: bool,
        #[command(flatten)]
        cluster: Cluster,
    },
    /// Print the plan of a spec, as text, Mermaid or DOT.
    Explain {
        /// The spec file (TOML).
        spec: PathBuf,
        /// Output format.
        #[arg(long, default_value = "text", value_parser = ["text", "mermaid", "dot"])]
        format: String,
    },
}

/// Runs the command; a failure is a message on stderr (the error and its
/// causes, never a backtrace, whatever `RUST_BACKTRACE` says: a mistake in
/// a spec is not a crash) and exit status 1, or 130 / 143 for a job without
/// checkpoints stopped by SIGINT / SIGTERM (its output partial). A job with
/// checkpoints stopped by a signal stops at a checkpoint and exits 0.
fn main() -> std::process::ExitCode {
    match command(Cli::parse().command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let stopped = e
                .chain()
                .find_map(|c| match c.downcast_ref::<weir::RunError>() {
                    Some(weir::RunError::Stopped { signal, .. }) => Some(*signal),
                    _ => None,
                });
            if let Some(signal) = stopped {
                eprintln!("weir: {}", e.root_cause());
                return std::process::ExitCode::from(match signal {
                    Some(s) => (128 + s).clamp(1, 255) as u8,
                    None => 1,
                });
            }
            eprintln!("Error: {e}");
            let mut causes = e.chain().skip(1).peekable();
            if causes.peek().is_some() {
                eprintln!("\nCaused by:");
                for cause in causes {
                    eprintln!("    {cause}");
                }
            }
            std::process::ExitCode::FAILURE
        }
    }
}

fn command(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run {
            spec,
            fresh,
            cluster,
        } => {
            let mut pipeline = Spec::from_path(&spec)?.pipeline()?;
            if fresh {
                let Some(checkpointing) = pipeline.checkpointing() else {
                    anyhow::bail!(
                        "--fresh starts a checkpointed job from the beginning, and {} has no [checkpoint] table",
                        spec.display()
                    );
                };
                pipeline = pipeline.checkpoint(checkpointing.fresh());
            }
            pipeline
                .run(cluster)
                .with_context(|| format!("running {}", spec.display()))?;
        }
        Command::Explain { spec, format } => {
            let pipeline = Spec::from_path(&spec)?.pipeline()?;
            let text = match format.as_str() {
                "mermaid" => pipeline.explain_mermaid(),
                "dot" => pipeline.explain_dot(),
                _ => pipeline.explain(),
            };
            print!("{text}");
        }
    }
    Ok(())
}
