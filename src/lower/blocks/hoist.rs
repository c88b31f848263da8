//! Statements of another scope that landed inside a block: a mask computed from the model
//! input where the first layer first needs it (ESM's `token_ids != 0`, read by every layer)
//! splits that layer's statements, so it cannot become an instance of the layer class.
//! Such statements move up, before the block, when nothing they read is computed in the
//! block and no name they bind is one the block uses.

use std::collections::BTreeSet;

use super::candidates;
use crate::lower::Span;
use crate::py::Assign;

/// Candidate blocks whose spans are contiguous (what [`super::extract`] can use).
fn contiguous_count(spans: &[Span]) -> usize {
    candidates(spans)
        .values()
        .filter(|c| {
            let (first, last) = (c.spans[0], c.spans[c.spans.len() - 1]);
            c.spans.len() >= 2 && last - first + 1 == c.spans.len()
        })
        .count()
}

/// The spans in `order`, their statements moved with them (ranges renumbered).
fn reordered(stmts: &[Assign], spans: &[Span], order: &[usize]) -> (Vec<Assign>, Vec<Span>) {
    let mut out_stmts = Vec::with_capacity(stmts.len());
    let mut out_spans = Vec::with_capacity(spans.len());
    for &i in order {
        let s = &spans[i];
        let start = out_stmts.len();
        out_stmts.extend_from_slice(&stmts[s.stmts.clone()]);
        out_spans.push(Span { stmts: start..out_stmts.len(), ..s.clone() });
    }
    (out_stmts, out_spans)
}

/// Whether the spans cover the statements in order, each statement in one span.
pub(super) fn tiles(stmts: &[Assign], spans: &[Span]) -> bool {
    spans.first().is_some_and(|s| s.stmts.start == 0)
        && spans.windows(2).all(|w| w[0].stmts.end == w[1].stmts.start)
        && spans.last().is_some_and(|s| s.stmts.end == stmts.len())
}

/// For each block split by foreign statements, moves those before it where that is safe and
/// leaves more blocks whole than before.
pub fn hoist_foreign(stmts: &mut Vec<Assign>, spans: &mut Vec<Span>) {
    // Spans must tile the statements for a reorder to keep every statement.
    if !tiles(stmts, spans) {
        return;
    }
    let mut whole = contiguous_count(spans);
    // Each accepted move makes one more block whole, so this ends.
    'retry: loop {
        let split = candidates(spans)
            .into_values()
            .map(|c| c.spans)
            .filter(|idx| idx.len() >= 2 && idx[idx.len() - 1] - idx[0] + 1 != idx.len());
        for idx in split {
            if let Some(order) = hoisted_order(stmts, spans, &idx) {
                let (new_stmts, new_spans) = reordered(stmts, spans, &order);
                let now = contiguous_count(&new_spans);
                if now > whole {
                    whole = now;
                    *stmts = new_stmts;
                    *spans = new_spans;
                    continue 'retry;
                }
            }
        }
        return;
    }
}

/// The span order with the foreign spans inside block `idx` moved before it, if that keeps
/// every value's meaning.
fn hoisted_order(stmts: &[Assign], spans: &[Span], idx: &[usize]) -> Option<Vec<usize>> {
    let (first, last) = (idx[0], idx[idx.len() - 1]);
    let inside: BTreeSet<usize> = idx.iter().copied().collect();
    let foreign: Vec<usize> = (first..=last).filter(|i| !inside.contains(i)).collect();
    // A composite layer's own code is all under its scope, so a layer of another scope
    // amid it is another's (FLUX's `txt_in` projection, its rotary tables' `embed_nd`,
    // made where the first double-stream block first reads them). In a model whose blocks
    // are only a prefix on flat layer names, an unnamed layer amid one is its own
    // (Keras' `conv2d_5` shortcut inside `block_3`), and stays.
    let head = spans[first].head.as_deref();
    let composite = head.is_some() && idx.iter().all(|&i| spans[i].head.as_deref() == head);
    for &f in &foreign {
        let span = &spans[f];
        let holds = !span.layers.is_empty() || !span.buffers.is_empty();
        if !span.movable || (holds && !composite) {
            return None;
        }
    }
    let moved: Vec<usize> = foreign.iter().chain(idx).copied().collect();
    let before: Vec<usize> = (first..=last).collect();
    if !same_meaning(stmts, spans, &before, &moved) {
        return None;
    }
    Some((0..first).chain(moved).chain(last + 1..spans.len()).collect())
}

/// Whether the spans `a` and `b` (the same spans in two orders) give every name read the
/// same statement's value, and leave each name bound to the same statement's value after
/// them. A mask computed inside a layer may take the name `x` the layer uses too: it moves
/// up as long as the layer binds `x` again before it reads it.
fn same_meaning(stmts: &[Assign], spans: &[Span], a: &[usize], b: &[usize]) -> bool {
    /// For each statement (by index), the statement each name it reads was bound by (None:
    /// before the spans); and each name's last binder.
    type Reaching<'s> = (BTreeSet<(usize, &'s str, Option<usize>)>, Vec<(&'s str, usize)>);
    let reaching = |order: &[usize]| -> Reaching<'_> {
        let mut bound_by: std::collections::BTreeMap<&str, usize> = Default::default();
        let mut reads = BTreeSet::new();
        for &span in order {
            for i in spans[span].stmts.clone() {
                let s = &stmts[i];
                for name in s.value.names() {
                    reads.insert((i, name, bound_by.get(name).copied()));
                }
                for name in s.target.bound_names() {
                    bound_by.insert(name, i);
                }
            }
        }
        (reads, bound_by.into_iter().collect())
    };
    reaching(a) == reaching(b)
}
