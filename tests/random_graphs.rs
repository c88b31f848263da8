//! Random small graphs over every translated op (see `common/op_graphs.rs`) go through the
//! whole pipeline without a panic. A fixed set of seeds, so a failure names the seed that
//! reproduces it:
//!
//!     RANDOM_GRAPHS_SEED=1234 cargo test --test random_graphs -- --nocapture
//!
//! `RANDOM_GRAPHS=N` runs N seeds instead of the default, `RANDOM_GRAPHS_TRACE=1` names each
//! seed before running it (an allocation failure aborts without a report); `scripts/fuzz.sh
//! ops` searches on.

#[path = "common/op_graphs.rs"]
mod op_graphs;

use arbitrary::Unstructured;

const DEFAULT_SEEDS: u64 = 20_000;

/// splitmix64: bytes for `Unstructured`, the same on every machine.
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name}={v}: not a number")))
}

#[test]
fn random_graphs_of_every_op_never_panic() {
    let seeds: Vec<u64> = match env_u64("RANDOM_GRAPHS_SEED") {
        Some(s) => vec![s],
        None => (0..env_u64("RANDOM_GRAPHS").unwrap_or(DEFAULT_SEEDS)).collect(),
    };
    // An allocation failure aborts the process, before any report: this names the seed.
    let trace = std::env::var_os("RANDOM_GRAPHS_TRACE").is_some();
    let mut failures = Vec::new();
    for &seed in &seeds {
        let data = bytes(seed, 512);
        let Ok(gd) = op_graphs::graph(&mut Unstructured::new(&data)) else { continue };
        let shown = format!("{gd:?}");
        if trace {
            eprintln!("seed {seed}: {shown}");
        }
        if std::panic::catch_unwind(|| op_graphs::run(gd)).is_err() {
            failures.push(format!("seed {seed}: {shown}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} graphs panicked:\n{}",
        failures.len(),
        seeds.len(),
        failures.join("\n")
    );
}
