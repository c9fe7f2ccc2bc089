//! Word count: the words of text files (or of generated text), counted per
//! word; the top N are printed on stdout.
//!
//! ```sh
//! cargo run --release --example wordcount                       # generated text
//! cargo run --release --example wordcount -- --input 'docs/*.txt' --top 20 -w 2
//! ```

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use serde::{Deserialize, Serialize};
use weir::prelude::*;

/// Counts words in text files or generated text and prints the most frequent.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    cluster: Cluster,
    /// Text to read: a file, a directory or a glob of JSON-lines-free plain text.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Lines of generated text when no --input is given.
    #[arg(long, default_value_t = 200_000)]
    lines: u64,
    /// How many of the most frequent words to print.
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Also write every (word, count) as JSON lines to this file.
    #[arg(long)]
    output: Option<PathBuf>,
}

/// One word and how often it occurs.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct WordCount {
    word: String,
    count: u64,
}

const VOCABULARY: &[&str] = &[
    "the", "river", "weir", "water", "stream", "flows", "over", "stone", "and", "under", "a",
    "bridge", "fish", "swim", "up", "to", "spawn", "in", "cold", "clear", "pools",
];

/// Deterministic text: line `i` is eight words picked by a hash of `i`.
fn generated_line(i: u64) -> String {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let mut words = Vec::with_capacity(8);
    for _ in 0..8 {
        x ^= x >> 31;
        x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        // Skewed choice: low indices are more frequent.
        let r = (x >> 40) as usize % (VOCABULARY.len() * VOCABULARY.len());
        words.push(VOCABULARY[VOCABULARY.len() - 1 - r.isqrt()]);
    }
    words.join(" ")
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let p = Pipeline::new("wordcount");
    let lines = match &args.input {
        Some(path) => p.source(TextLines::new(path)),
        None => p.source(Generator::new(args.lines, generated_line)),
    };
    let counts = lines
        .flat_map(|line: String| {
            line.split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
        })
        .key_by(|word: &String| word.clone())
        .count()
        .filter(|u| u.diff > 0)
        .map(|u| WordCount {
            word: u.key,
            count: u.value,
        });
    let collected = Collect::new();
    if let Some(out) = &args.output {
        counts.clone().sink(JsonLinesFile::to(out));
    }
    let job = counts.sink(collected.clone());
    job.run(args.cluster.clone()).context("wordcount failed")?;

    // Results come back to process 0.
    let mut all = collected.take();
    if args.cluster.process() == 0 {
        all.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.word.cmp(&b.word)));
        for wc in all.iter().take(args.top) {
            println!("{:>10} {}", wc.count, wc.word);
        }
    }
    Ok(())
}
