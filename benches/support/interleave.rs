//! The interleaved mode every bench offers: each variant runs in its own timed loop, in
//! turn, round after round, and the medians are compared. On a shared machine whose load
//! drifts while criterion measures one variant after another, ratios taken this way, in
//! one run, are the ones that hold.

/// One variant: a name and a timed loop of its own that returns nanoseconds per operation.
pub struct Variant<'a> {
    pub name: &'static str,
    pub run: Box<dyn FnMut() -> f64 + 'a>,
}

impl<'a> Variant<'a> {
    pub fn new(name: &'static str, run: impl FnMut() -> f64 + 'a) -> Self {
        Variant {
            name,
            run: Box::new(run),
        }
    }
}

/// The rounds asked for with `<VAR>=<rounds>`, if any.
pub fn rounds(var: &str) -> Option<usize> {
    std::env::var(var)
        .ok()
        .and_then(|rounds| rounds.parse().ok())
}

/// Runs every variant once per round, in turn, and prints each median (ns per operation)
/// with its ratio to the first variant and to `anchor` (an index, if given). Returns the
/// medians, in the variants' order.
pub fn interleave(
    title: &str,
    rounds: usize,
    anchor: Option<usize>,
    variants: &mut [Variant<'_>],
) -> Vec<f64> {
    let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); variants.len()];
    for _ in 0..rounds {
        for (variant, times) in variants.iter_mut().zip(&mut times) {
            times.push((variant.run)());
        }
    }
    let medians: Vec<f64> = times
        .iter_mut()
        .map(|times| {
            times.sort_by(f64::total_cmp);
            times[times.len() / 2]
        })
        .collect();
    let anchor_name = anchor.map_or("", |i| variants[i].name);
    println!(
        "{title}: {rounds} rounds (median ns per operation; ratio to {}{}{anchor_name})",
        variants[0].name,
        if anchor.is_some() { ", and to " } else { "" },
    );
    for (variant, median) in variants.iter().zip(&medians) {
        let to_anchor = anchor.map_or(String::new(), |i| {
            format!("  {:>6.2}x", median / medians[i])
        });
        println!(
            "  {:<40} {median:>12.1} ns  {:>6.2}x{to_anchor}",
            variant.name,
            median / medians[0]
        );
    }
    medians
}

/// Nanoseconds per operation of `ops` operations that took `elapsed`.
pub fn per_op(elapsed: std::time::Duration, ops: u64) -> f64 {
    elapsed.as_secs_f64() * 1e9 / ops as f64
}
