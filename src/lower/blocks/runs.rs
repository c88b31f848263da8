//! Blocks found by structure where no name marks them: a Keras functional model built from
//! layers its author did not name (`layer_normalization_3`, `multi_head_attention_1`,
//! `dense_5`, `add_2`) repeats the same stretch of layers once per transformer block or
//! mixer block, and only the sequence of what they compute says where one block ends.
//!
//! Each layer's span gets a fingerprint (its statements with names left out, its layers'
//! types); the longest stretch of spans that repeats back to back (period `p`, at least two
//! repetitions) is a candidate per repetition, checked and grouped like any other (a
//! stretch that does not hand one value on from block to block is no block).

use std::collections::BTreeMap;

use super::{Candidate, Member, Tag, layer_key};
use crate::lower::Span;
use crate::lower::keras_names::keras_kind;
use crate::lower::module::Module;
use crate::py::printer::flat;
use crate::py::{Assign, Expr, Ref};

/// Runs looked for in one model, at most (each takes the spans it covers out of the search).
const MAX_RUNS: usize = 8;

/// The longest period tried, in spans (a hostile graph may have many thousands of spans).
const MAX_PERIOD: usize = 64;

/// Spans searched, at most.
const MAX_SPANS: usize = 4096;

/// A block is at least this many layers' spans.
const MIN_PERIOD: usize = 3;

/// Candidates for the repeated stretches of layers Keras named after their kind.
pub(super) fn structural_runs(
    spans: &[Span],
    stmts: &[Assign],
    module: &Module,
) -> Vec<(Tag, Candidate)> {
    if spans.len() > MAX_SPANS {
        return Vec::new();
    }
    // Fingerprints, interned; a span of a named layer or one that cannot move is a barrier
    // (its own id, equal to nothing).
    let kinds: BTreeMap<&str, String> =
        module.layers.iter().map(|l| (l.name.as_str(), layer_key(&l.ctor))).collect();
    let mut ids: BTreeMap<String, usize> = BTreeMap::new();
    let mut sig: Vec<usize> = Vec::with_capacity(spans.len());
    for (i, s) in spans.iter().enumerate() {
        // A layer Keras named after its kind, or one inside such a layer (`query` of
        // `multi_head_attention_1`); not a kind-like name a model gave (`image_encoder`).
        let unnamed =
            keras_kind(&s.scope).is_some() || s.head.as_deref().and_then(keras_kind).is_some();
        let id = if s.movable && !s.shared && unnamed {
            let next = ids.len();
            *ids.entry(fingerprint(s, stmts, &kinds)).or_insert(next)
        } else {
            usize::MAX - i
        };
        sig.push(id);
    }
    if std::env::var_os("TF2TORCH_DEBUG_RUNS").is_some() {
        for (s, id) in spans.iter().zip(&sig) {
            eprintln!("{:>20} {:?} {} {} {}", id, s.head, s.scope, s.movable, s.shared);
        }
    }
    let mut out = Vec::new();
    for run in 0..MAX_RUNS {
        let Some((start, period, reps, slack)) = longest_repetition(&sig) else { break };
        // Where one block ends is not known yet: every phase the stretch allows is a
        // candidate, and the checks keep those that hand one value from block to block.
        for phase in 0..=slack {
            for r in 0..reps {
                let first = start + phase + r * period;
                let candidate = Candidate {
                    family: format!("#run{run}.{phase}"),
                    spans: (first..first + period).collect(),
                };
                out.push((Tag::Run(run, phase, r), candidate));
            }
        }
        for (k, s) in sig.iter_mut().enumerate().skip(start).take(period * reps + slack) {
            *s = usize::MAX - k;
        }
    }
    out
}

/// Of the phases a run's blocks may start at, the one whose blocks most passed the checks;
/// among those, one whose blocks read their input twice (a residual block adds its input
/// back: ConvMixer's block starts at its depthwise convolution, not at the activation
/// before it), then the earliest. The members of the other phases go.
pub(super) fn one_phase_per_run(members: &mut Vec<Member>) {
    let mut phases: BTreeMap<usize, BTreeMap<usize, (usize, bool)>> = BTreeMap::new();
    for m in members.iter() {
        let Tag::Run(run, phase, _) = m.tag else { continue };
        let residual = m.canon.stmts.iter().map(|(_, e)| e.reads("IN0")).sum::<usize>() >= 2;
        let entry = phases.entry(run).or_default().entry(phase).or_insert((0, true));
        entry.0 += 1;
        entry.1 &= residual;
    }
    let best: BTreeMap<usize, usize> = phases
        .into_iter()
        .filter_map(|(run, by_phase)| {
            let key = |(phase, (n, residual)): (&usize, &(usize, bool))| {
                (*n, *residual, usize::MAX - phase)
            };
            by_phase.iter().max_by_key(|p| key(*p)).map(|(&phase, _)| (run, phase))
        })
        .collect();
    members.retain(|m| match m.tag {
        Tag::Run(run, phase, _) => best.get(&run) == Some(&phase),
        _ => true,
    });
}

/// `(start, period, repetitions, slack)` of the stretch repeated back to back that covers
/// most spans (ties: the shorter period, then the earlier start); the repetitions may start
/// up to `slack` spans later.
fn longest_repetition(sig: &[usize]) -> Option<(usize, usize, usize, usize)> {
    let n = sig.len();
    let mut best: Option<(usize, usize, usize, usize)> = None;
    for p in MIN_PERIOD..=MAX_PERIOD.min(n / 2) {
        // `same` spans from `j - same + 1` to `j` equal the ones `p` later.
        let mut same = 0;
        for j in 0..n - p {
            same = if sig[j] == sig[j + p] { same + 1 } else { 0 };
            let ends = j + 1 == n - p || sig[j + 1] != sig[j + 1 + p];
            if same >= p && ends {
                let start = j + 1 - same;
                let reps = same / p + 1;
                let better = best.is_none_or(|(_, bp, br, _)| reps * p > bp * br);
                if better {
                    best = Some((start, p, reps, same % p));
                }
            }
        }
    }
    best
}

/// A span's statements with every local name left out and each layer by its type: what
/// two spans of the same layer in two blocks share.
fn fingerprint(span: &Span, stmts: &[Assign], kinds: &BTreeMap<&str, String>) -> String {
    let mut out = String::new();
    for s in &stmts[span.stmts.clone()] {
        let value = s.value.renamed(&|r| match r {
            Ref::Var(_) => Some(Expr::name("_")),
            Ref::SelfAttr(a) => Some(Expr::name(kinds.get(a).map_or("buffer", String::as_str))),
        });
        out.push_str(&flat(&value));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::longest_repetition;

    /// A stem, three blocks of four layers, a head that repeats the blocks' first layer:
    /// three repetitions from the first block, which may also start one span later.
    #[test]
    fn the_longest_repetition_and_its_slack() {
        let sig = [90, 1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4, 1, 91];
        assert_eq!(longest_repetition(&sig), Some((1, 4, 3, 1)));
        // Nothing repeats back to back: no run.
        assert_eq!(longest_repetition(&[1, 2, 3, 4, 5, 6, 7]), None);
    }
}
