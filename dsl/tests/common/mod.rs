//! Helpers shared by the reference implementations of the tests.

/// Each record with the watermark the source stamps it with: its
/// partition's `max event time seen − bound` as of the start of its batch
/// (record `i` is in partition `i % partitions` as `Iter` splits its input;
/// a partition's first batch is its first record, then batches of `every`
/// records as `Watermark::every` says).
pub fn stamped<R: Copy>(
    input: &[R],
    time: impl Fn(&R) -> u64,
    partitions: usize,
    every: usize,
    bound: u64,
) -> Vec<(u64, R)> {
    let mut out = Vec::new();
    for p in 0..partitions {
        let part: Vec<R> = input.iter().copied().skip(p).step_by(partitions).collect();
        let (mut wm, mut max) = (0u64, 0u64);
        let first = part.len().min(1);
        let batches = std::iter::once(&part[..first]).chain(part[first..].chunks(every));
        for batch in batches {
            out.extend(batch.iter().map(|r| (wm, *r)));
            max = batch.iter().map(&time).fold(max, u64::max);
            wm = wm.max(max.saturating_sub(bound));
        }
    }
    out
}
