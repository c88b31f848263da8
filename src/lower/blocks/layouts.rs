//! A block that receives its input in the other layout than its siblings do.
//!
//! Values stay in the layout their producer gives them and are converted where a reader
//! needs the other one. ConvNeXt's blocks compute channels-last and add their input back;
//! most receive it channels-last from the block before and convert it for their depthwise
//! convolution (`inputs_nchw = inputs.permute(0, 3, 1, 2)` first), but the first block of a
//! stage receives the downsampling convolution's output, channels-first, and converts it
//! for the add (`inputs_nhwc = inputs.permute(0, 2, 3, 1)` last). Same layers, same
//! arithmetic, two classes (`StageBlock`, `StageBlock2`) and no loop over the whole stage.
//!
//! Here such a block takes its input as its siblings do: its conversion moves before it (the
//! caller hands it `conv.permute(0, 2, 3, 1)`), and it converts that back first, as they do.
//! Only where a sibling of its family begins with that conversion back: elsewhere it would
//! only add a pair of permutes.

use std::collections::{BTreeMap, BTreeSet};

use super::hoist::tiles;
use super::{candidates, is_layout_conversion, is_residual_add};
use crate::lower::Span;
use crate::ops::contract::{to_channels_first, to_channels_last};
use crate::py::{Assign, Expr, Ref};

/// A layout conversion's parts: `(target, source, axes)` of `target = source.permute(axes)`.
fn conversion(stmt: &Assign) -> Option<(&str, &str, Vec<i64>)> {
    if !is_layout_conversion(stmt) {
        return None;
    }
    let Expr::Call(c) = &stmt.value else { return None };
    let Expr::Attribute(recv, _) = &c.func else { return None };
    let axes = c.args.iter().map(Expr::as_int).collect::<Option<Vec<i64>>>()?;
    Some((stmt.target.as_name()?, recv.as_name()?, axes))
}

/// Each candidate block's statements: its spans', and an unnamed add right after them (the
/// residual ConvNeXt writes outside the block's scope), by family.
fn blocks(spans: &[Span]) -> BTreeMap<String, Vec<std::ops::Range<usize>>> {
    let mut out: BTreeMap<String, Vec<std::ops::Range<usize>>> = BTreeMap::new();
    for c in candidates(spans).into_values() {
        let (Some(&first), Some(&last)) = (c.spans.first(), c.spans.last()) else { continue };
        if last - first + 1 != c.spans.len() {
            continue;
        }
        let end = match spans.get(last + 1) {
            Some(s) if s.movable && !s.shared && is_residual_add(s) => last + 1,
            _ => last,
        };
        out.entry(c.family).or_default().push(spans[first].stmts.start..spans[end].stmts.end);
    }
    out
}

/// Whether the block in `range` begins converting its input to `axes`, and reads the input
/// again as it came (its residual).
fn begins_converting(stmts: &[Assign], range: &std::ops::Range<usize>, axes: &[i64]) -> bool {
    let Some((_, source, own)) = stmts.get(range.start).and_then(conversion) else {
        return false;
    };
    own == axes && stmts[range.start + 1..range.end].iter().any(|s| s.value.reads(source) > 0)
}

/// Whether `name` is read after `from` before it is bound again.
fn read_after(stmts: &[Assign], from: usize, name: &str) -> bool {
    for s in &stmts[from..] {
        if s.value.reads(name) > 0 {
            return true;
        }
        if s.target.bound_names().contains(&name) {
            return false;
        }
    }
    false
}

/// A rewrite of one block: its conversion at `at` moves to its start, followed by the
/// conversion back, named `back`, which its other reads of the input read.
struct Rewrite {
    range: std::ops::Range<usize>,
    at: usize,
    back: String,
}

/// The rewrite that makes the block in `range` take its input channels-last, if a sibling
/// does and it is safe: the input is not rebound in the block, the converted name is bound
/// only there and not read before, and the input itself is not read after the block.
fn rewrite_for(
    stmts: &[Assign],
    range: &std::ops::Range<usize>,
    siblings: &[std::ops::Range<usize>],
    taken: &BTreeSet<String>,
) -> Option<Rewrite> {
    // A block that already begins with a conversion is as it should be.
    if stmts.get(range.start).and_then(conversion).is_some() {
        return None;
    }
    let body = &stmts[range.clone()];
    let binds = |s: &Assign, n: &str| s.target.bound_names().contains(&n);
    // A conversion of the block's input: of a name nothing in the block bound before (one
    // walk, bound names gathered on the way: a block may be the whole model).
    let mut bound: BTreeSet<&str> = BTreeSet::new();
    let mut found = None;
    for (k, s) in body.iter().enumerate() {
        if let Some(c) = conversion(s)
            && !bound.contains(c.1)
            && c.1 != c.0
            && c.2 == to_channels_last(c.2.len())
        {
            found = Some((k, c));
            break;
        }
        bound.extend(s.target.bound_names());
    }
    let (at, (target, source, axes)) = found?;
    let back = to_channels_first(axes.len());
    if !siblings.iter().any(|r| r != range && begins_converting(stmts, r, &back)) {
        return None;
    }
    let read_before = body[..at].iter().any(|s| s.value.reads(target) > 0);
    let rebound = body.iter().enumerate().any(|(k, s)| k != at && binds(s, target))
        || body.iter().any(|s| binds(s, source));
    let read_elsewhere = body.iter().enumerate().any(|(k, s)| k != at && s.value.reads(source) > 0);
    if read_before || rebound || !read_elsewhere || read_after(stmts, range.end, source) {
        return None;
    }
    let mut name = format!("{source}_nchw");
    let mut n = 2;
    while taken.contains(&name) {
        name = format!("{source}_nchw_{n}");
        n += 1;
    }
    Some(Rewrite { range: range.clone(), at: range.start + at, back: name })
}

/// Rewrites each block that takes its input channels-first where a sibling of its family
/// takes it channels-last (see the module's comment); spans keep their statements.
pub fn inputs_as_siblings(stmts: &mut Vec<Assign>, spans: &mut [Span]) {
    // Spans must tile the statements for each to keep its own.
    if !tiles(stmts, spans) {
        return;
    }
    let mut taken: BTreeSet<String> = BTreeSet::new();
    for s in stmts.iter() {
        taken.extend(s.target.bound_names().into_iter().map(String::from));
        taken.extend(s.value.names().into_iter().map(String::from));
    }
    let mut rewrites: Vec<Rewrite> = Vec::new();
    for family in blocks(spans).values() {
        for range in family {
            if let Some(r) = rewrite_for(stmts, range, family, &taken) {
                taken.insert(r.back.clone());
                rewrites.push(r);
            }
        }
    }
    // Blocks of several families may overlap (a stage around its blocks): one rewrite per
    // statement range, the first block's.
    rewrites.sort_by_key(|r| (r.range.start, r.range.end));
    let mut done_upto = 0;
    let mut owner: Vec<usize> = Vec::with_capacity(stmts.len());
    for (i, s) in spans.iter().enumerate() {
        owner.extend(std::iter::repeat_n(i, s.stmts.len()));
    }
    let mut edits: BTreeMap<usize, &Rewrite> = BTreeMap::new();
    for r in &rewrites {
        if r.range.start >= done_upto {
            edits.insert(r.range.start, r);
            done_upto = r.range.end;
        }
    }
    if edits.is_empty() {
        return;
    }
    let old: Vec<(Assign, usize)> = std::mem::take(stmts).into_iter().zip(owner).collect();
    let mut out: Vec<(Assign, usize)> = Vec::with_capacity(old.len() + edits.len());
    let mut k = 0;
    while k < old.len() {
        let Some(r) = edits.get(&k) else {
            out.push(old[k].clone());
            k += 1;
            continue;
        };
        let (moved, _) = &old[r.at];
        let Some((target, source, axes)) = conversion(moved) else {
            out.push(old[k].clone());
            k += 1;
            continue;
        };
        let back = Expr::name(target).permuted(&to_channels_first(axes.len()));
        let span = old[k].1;
        out.push((moved.clone(), span));
        out.push((Assign::new(Expr::name(&r.back), back), span));
        let rename =
            |n: Ref<'_>| matches!(n, Ref::Var(v) if v == source).then(|| Expr::name(&r.back));
        for (j, (s, span)) in old.iter().enumerate().take(r.range.end).skip(k) {
            if j != r.at {
                out.push((Assign::new(s.target.clone(), s.value.renamed(&rename)), *span));
            }
        }
        k = r.range.end;
    }
    let mut start = 0;
    for (i, span) in spans.iter_mut().enumerate() {
        let n = out.iter().filter(|(_, o)| *o == i).count();
        span.stmts = start..start + n;
        start += n;
    }
    *stmts = out.into_iter().map(|(s, _)| s).collect();
}

#[cfg(test)]
mod tests {
    use super::inputs_as_siblings;
    use crate::lower::Span;
    use crate::py::printer::flat;
    use crate::py::{Assign, BinOp, Expr};

    fn call(layer: &str, arg: &str) -> Expr {
        Expr::self_attr(layer).called(vec![Expr::name(arg)], vec![])
    }

    fn assign(target: &str, value: Expr) -> Assign {
        Assign::new(Expr::name(target), value)
    }

    /// ConvNeXt's stage: the downsampling conv, then blocks that add their input back
    /// channels-last; the first block's input arrives channels-first.
    fn stage(with_sibling: bool) -> (Vec<Assign>, Vec<Span>) {
        let mut spans = Vec::new();
        let mut stmts = Vec::new();
        let mut span = |scope: &str, body: Vec<Assign>| {
            let start = stmts.len();
            stmts.extend(body);
            spans.push(Span {
                scope: scope.to_string(),
                head: None,
                stmts: start..stmts.len(),
                layers: 0..0,
                buffers: 0..0,
                movable: true,
                shared: false,
            });
        };
        let add = |a: &str, b: &str| Expr::name(a).binop(BinOp::Add, Expr::name(b));
        span("down_conv", vec![assign("conv", call("down_conv", "x"))]);
        span("stage_1_block_0_dw", vec![assign("y", call("stage_1_block_0_dw", "conv"))]);
        span("stage_1_block_0_fc", vec![assign("y", call("stage_1_block_0_fc", "y"))]);
        span(
            "Add_1",
            vec![
                assign("conv_nhwc", Expr::name("conv").permuted(&[0, 2, 3, 1])),
                assign("add_1", add("conv_nhwc", "y")),
            ],
        );
        if with_sibling {
            span(
                "stage_1_block_1_dw",
                vec![
                    assign("add_1_nchw", Expr::name("add_1").permuted(&[0, 3, 1, 2])),
                    assign("y", call("stage_1_block_1_dw", "add_1_nchw")),
                ],
            );
            span("stage_1_block_1_fc", vec![assign("y", call("stage_1_block_1_fc", "y"))]);
            span("Add_2", vec![assign("add_2", add("add_1", "y"))]);
        }
        (stmts, spans)
    }

    fn listing(stmts: &[Assign], spans: &[Span]) -> String {
        let mut out = String::new();
        for s in spans {
            for a in &stmts[s.stmts.clone()] {
                out += &format!("{}: {} = {}\n", s.scope, flat(&a.target), flat(&a.value));
            }
        }
        out
    }

    #[test]
    fn a_block_takes_its_input_as_its_siblings_do() {
        let (mut stmts, mut spans) = stage(true);
        inputs_as_siblings(&mut stmts, &mut spans);
        insta::assert_snapshot!(listing(&stmts, &spans), @r"
        down_conv: conv = self.down_conv(x)
        stage_1_block_0_dw: conv_nhwc = conv.permute(0, 2, 3, 1)
        stage_1_block_0_dw: conv_nchw = conv_nhwc.permute(0, 3, 1, 2)
        stage_1_block_0_dw: y = self.stage_1_block_0_dw(conv_nchw)
        stage_1_block_0_fc: y = self.stage_1_block_0_fc(y)
        Add_1: add_1 = conv_nhwc + y
        stage_1_block_1_dw: add_1_nchw = add_1.permute(0, 3, 1, 2)
        stage_1_block_1_dw: y = self.stage_1_block_1_dw(add_1_nchw)
        stage_1_block_1_fc: y = self.stage_1_block_1_fc(y)
        Add_2: add_2 = add_1 + y
        ");
    }

    #[test]
    fn without_a_sibling_that_converts_nothing_moves() {
        let (mut stmts, mut spans) = stage(false);
        let before = listing(&stmts, &spans);
        inputs_as_siblings(&mut stmts, &mut spans);
        assert_eq!(listing(&stmts, &spans), before);
    }
}
