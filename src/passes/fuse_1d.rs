//! 1-D window ops as TF graphs spell them: `ExpandDims(x, 1) → op → Squeeze([1])`, the op a
//! 2-D convolution (plain, depthwise or transposed) or pooling on a unit axis (Keras' `Conv1D`,
//! `Conv1DTranspose`, `MaxPooling1D`, ...), or several such ops in a row (`SeparableConv1D`:
//! depthwise then pointwise), with row-wise ops (`BiasAdd`, activations) between them. Each
//! window op becomes one [`Fused::Window1D`] node: TF's attributes with the unit axis dropped
//! (`strides=[1, s, 1]`), filters without it, lowered to `nn.Conv1d`, `nn.MaxPool1d`, ... on
//! channels-first values.

use petgraph::stable_graph::NodeIndex;

use crate::error::Result;
use crate::ir::fused::{Fused, Window1D};
use crate::ir::{Graph, Node, ValueRef};
use crate::passes::pattern::{const_ints, single_consumer};

pub fn fuse_1d(g: &mut Graph) -> Result<()> {
    let mut ops: Vec<NodeIndex> =
        g.g.node_indices().filter(|&n| Window1D::of(&g.node(n).op).is_some()).collect();
    ops.sort_by_key(|&n| g.node(n).ordinal);
    for n in ops {
        // An op later in a chain fused already is gone.
        if !g.g.contains_node(n) {
            continue;
        }
        if let Some(plan) = plan(g, n) {
            apply(g, plan);
        }
    }
    Ok(())
}

/// What a match found: the 1-D data input, the ops between `ExpandDims` and `Squeeze` (a
/// separable conv is a depthwise and a pointwise conv; a bias may sit between), the squeeze.
struct Plan {
    data: ValueRef,
    /// The `ExpandDims` giving the ops their unit axis (read by the first op alone).
    expand: NodeIndex,
    steps: Vec<Step>,
    squeeze: NodeIndex,
}

/// One op on the unit axis: a window op to rebuild in 1-D, or an op that works on each row
/// of its input (`BiasAdd`, an activation), which stays as it is.
struct Step {
    node: NodeIndex,
    window: Option<WindowStep>,
}

struct WindowStep {
    kind: Window1D,
    data_slot: usize,
    /// Per-axis attributes with the unit axis dropped.
    attrs: Vec<(&'static str, Vec<i64>)>,
    /// `(slot, filter)` with the unit axis dropped.
    filter: Option<(usize, crate::tensor::Tensor)>,
}

/// `ExpandDims(x, 1)` (or `-3`) of a rank-3 value: `x`.
fn unit_axis_input(g: &Graph, v: ValueRef) -> Option<ValueRef> {
    let e = g.node(v.node);
    if e.op != "ExpandDims" || g.use_count(v) != 1 {
        return None;
    }
    let ins = g.inputs(v.node);
    let dim = const_ints(g, *ins.get(1)?)?;
    matches!(dim.as_slice(), [1] | [-3]).then_some(ins[0])
}

/// A per-axis attribute without its unit axis (index 1): `[1, 1, s, 1]` → `[1, s, 1]`, when
/// its entry for that axis is one `unit` allows.
fn drop_unit(v: &[i64], unit: impl Fn(i64) -> bool) -> Option<Vec<i64>> {
    (v.len() == 4 && unit(v[1])).then(|| vec![v[0], v[2], v[3]])
}

/// The input slot a window op reads its data from.
fn data_slot(kind: Window1D) -> usize {
    if kind == Window1D::ConvTranspose { 2 } else { 0 }
}

/// Window op `n` in 1-D, when its attributes and filter have the unit axis to drop.
fn window_step(g: &Graph, n: NodeIndex) -> Option<WindowStep> {
    let node = g.node(n);
    let kind = Window1D::of(&node.op)?;
    if node.attr_str_or("data_format", "NHWC").ok()? != "NHWC" {
        return None;
    }
    let ins = g.inputs(n);
    let mut attrs = Vec::new();
    // A window one element tall on an axis one element long reads that element whatever its
    // stride or dilation there: Keras' `SeparableConv1D(strides=2)` strides its unit axis by
    // 2 too. A transposed conv's stride would grow that axis, so it must be 1.
    let any_step = kind != Window1D::ConvTranspose;
    for name in ["strides", "dilations", "ksize"] {
        let unit = |u: i64| match name {
            "strides" => u == 1 || (any_step && u > 1),
            "dilations" => u >= 1,
            _ => u == 1,
        };
        if let Some(v) = node.attrs.contains_key(name).then(|| node.attr_ints(name).ok()).flatten()
        {
            let one_d = drop_unit(&v, unit)?;
            attrs.push((name, one_d));
        }
    }
    if let Ok(p) = node.attr_ints("explicit_paddings")
        && !p.is_empty()
    {
        if p.len() != 8 || p[2..4] != [0, 0] {
            return None;
        }
        attrs.push(("explicit_paddings", vec![p[0], p[1], p[4], p[5], p[6], p[7]]));
    }
    // The filter's leading unit axis (pooling has none).
    let filter = match kind {
        Window1D::MaxPool | Window1D::AvgPool => None,
        _ => {
            let w = g.const_value(*ins.get(1)?)?;
            if w.rank() != 4 || w.shape[0] != 1 {
                return None;
            }
            Some((1, w.reshaped(w.shape[1..].to_vec())))
        }
    };
    Some(WindowStep { kind, data_slot: data_slot(kind), attrs, filter })
}

/// Op `n` reading `v` in slot 0, working row by row with constant operands of rank ≤ 1
/// (`BiasAdd`, `Relu`): the same op on the value without its unit axis.
fn row_step(g: &Graph, n: NodeIndex, v: ValueRef) -> bool {
    let node = g.node(n);
    let per_row = crate::ops::lookup(&node.op).and_then(|d| d.per_row).is_some_and(|f| f(node));
    let ins = g.inputs(n);
    per_row
        && ins.first() == Some(&v)
        && ins[1..].iter().all(|&i| g.const_value(i).is_some_and(|t| t.rank() <= 1))
}

fn plan(g: &Graph, n: NodeIndex) -> Option<Plan> {
    let first = window_step(g, n)?;
    let input = *g.inputs(n).get(first.data_slot)?;
    let data = unit_axis_input(g, input)?;
    let mut steps = vec![Step { node: n, window: Some(first) }];
    let mut cur = ValueRef { node: n, port: 0 };
    loop {
        let next = single_consumer(g, cur)?;
        let node = g.node(next);
        if node.op == "Squeeze" {
            let dims = node.attr_ints_or("squeeze_dims", &[]).ok()?;
            if !(dims == [1] || dims == [-3]) {
                return None;
            }
            return Some(Plan { data, expand: input.node, steps, squeeze: next });
        }
        let window = match window_step(g, next) {
            Some(w) if g.inputs(next).get(w.data_slot) == Some(&cur) => Some(w),
            Some(_) => return None,
            None if row_step(g, next, cur) => None,
            None => return None,
        };
        steps.push(Step { node: next, window });
        cur = ValueRef { node: next, port: 0 };
    }
}

/// Output infos of `n` without the unit axis.
fn without_unit_axis(g: &Graph, n: NodeIndex) -> Vec<crate::ir::ValueInfo> {
    let mut outs = g.node(n).outputs.clone();
    for o in &mut outs {
        if let Some(s) = o.shape.as_mut().filter(|s| s.len() == 4) {
            s.remove(1);
        }
    }
    outs
}

fn apply(g: &mut Graph, p: Plan) {
    let mut prev = p.data;
    let last = p.steps.len() - 1;
    // Removed at the end: removing a node drops its edges, which the next step reads.
    let mut replaced = Vec::new();
    for (k, step) in p.steps.into_iter().enumerate() {
        let n = step.node;
        let outputs =
            if k == last { g.node(p.squeeze).outputs.clone() } else { without_unit_axis(g, n) };
        let Some(w) = step.window else {
            g.set_input(n, 0, prev);
            g.node_mut(n).outputs = outputs;
            prev = ValueRef { node: n, port: 0 };
            continue;
        };
        let (name, ordinal) = (g.node(n).name.clone(), g.node(n).ordinal);
        let mut node = Node::fused(name.clone(), Fused::Window1D(w.kind), ordinal);
        node.attrs = g.node(n).attrs.clone();
        for (attr, v) in &w.attrs {
            node.set_attr_ints(attr, v);
        }
        node.outputs = outputs;
        let ins = g.inputs(n);
        let one_d = g.add_node(node);
        for (slot, v) in ins.into_iter().enumerate() {
            let v = match (&w.filter, slot) {
                _ if slot == w.data_slot => prev,
                (Some((fs, f)), s) if *fs == s => {
                    let c = Node::constant(format!("{name}/kernel"), f.clone(), ordinal);
                    ValueRef { node: g.add_node(c), port: 0 }
                }
                _ => v,
            };
            g.connect(v, one_d, slot);
        }
        replaced.push(n);
        prev = ValueRef { node: one_d, port: 0 };
    }
    for n in replaced {
        g.g.remove_node(n);
    }
    g.replace_uses(ValueRef { node: p.squeeze, port: 0 }, prev);
    g.g.remove_node(p.squeeze);
    // Now unread: removed here so that passes after this one see `data`'s true readers.
    g.g.remove_node(p.expand);
}

#[cfg(test)]
mod tests {
    use crate::passes::{fold_and_infer, fuse_1d};
    use crate::testing::*;
    use insta::assert_snapshot;

    #[test]
    fn expand_conv2d_squeeze_is_one_conv1d() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 10, 3]);
        let dim = g.constant("conv/dim", int_tensor(&[], &[1]));
        let w = g.constant("conv/kernel", weights(&[1, 5, 3, 4]));
        let e = g.op("conv/ExpandDims", "ExpandDims", &[x, dim], &[]);
        let a = [
            ("strides", ints(&[1, 1, 2, 1])),
            ("dilations", ints(&[1, 1, 1, 1])),
            ("padding", string("SAME")),
        ];
        let c = g.op("conv/Conv2D", "Conv2D", &[e, w], &a);
        let y = g.op("conv/Squeeze", "Squeeze", &[c], &[("squeeze_dims", ints(&[1]))]);
        assert_snapshot!(g.after_passes(&[y], &[fold_and_infer, fuse_1d]), @r#"
        inputs: x:0
        outputs: conv/Conv2D:0
        x = Placeholder -> float32 [?, 10, 3]
        conv/Conv2D/kernel = Const -> float32 [5, 3, 4]
        conv/Conv2D = _Conv1D(x:0, conv/Conv2D/kernel:0) {dilations=[1, 1, 1], padding="SAME", strides=[1, 2, 1]} -> float32 [?, 5, 4]
        "#);
    }

    #[test]
    fn expand_max_pool_squeeze_is_one_max_pool1d() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 10, 3]);
        let dim = g.constant("pool/dim", int_tensor(&[], &[1]));
        let e = g.op("pool/ExpandDims", "ExpandDims", &[x, dim], &[]);
        let a = [
            ("ksize", ints(&[1, 1, 2, 1])),
            ("strides", ints(&[1, 1, 2, 1])),
            ("padding", string("VALID")),
        ];
        let p = g.op("pool/MaxPool", "MaxPool", &[e], &a);
        let y = g.op("pool/Squeeze", "Squeeze", &[p], &[("squeeze_dims", ints(&[1]))]);
        assert_snapshot!(g.after_passes(&[y], &[fold_and_infer, fuse_1d]), @r#"
        inputs: x:0
        outputs: pool/MaxPool:0
        x = Placeholder -> float32 [?, 10, 3]
        pool/MaxPool = _MaxPool1D(x:0) {ksize=[1, 2, 1], padding="VALID", strides=[1, 2, 1]} -> float32 [?, 5, 3]
        "#);
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 10, 3]);
        let dim = g.constant("pool/dim", int_tensor(&[], &[1]));
        let e = g.op("pool/ExpandDims", "ExpandDims", &[x, dim], &[]);
        let p = g.op("pool/MaxPool", "MaxPool", &[e], &a);
        let y = g.op("pool/Squeeze", "Squeeze", &[p], &[("squeeze_dims", ints(&[1]))]);
        assert_snapshot!(g.lower(&[y]), @"
        self.max_pool = nn.MaxPool1d(2)
        ---
        x = x.permute(0, 2, 1)
        x = self.max_pool(x).permute(0, 2, 1)
        return x
        ");
    }
    /// Keras' `SeparableConv1D`: a depthwise conv, then a pointwise one, on a unit axis the
    /// depthwise conv strides by `unit_stride` (Keras 3 gives it the sequence's stride).
    fn separable(unit_stride: i64, kernel_height: usize) -> String {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 12, 3]);
        let dim = g.constant("sep/dim", int_tensor(&[], &[1]));
        let dw = g.constant("sep/depthwise_kernel", weights(&[kernel_height, 3, 3, 1]));
        let pw = g.constant("sep/pointwise_kernel", weights(&[1, 1, 3, 8]));
        let e = g.op("sep/ExpandDims", "ExpandDims", &[x, dim], &[]);
        let a = [("strides", ints(&[1, unit_stride, 2, 1])), ("padding", string("VALID"))];
        let d = g.op("sep/depthwise", "DepthwiseConv2dNative", &[e, dw], &a);
        let a = [("strides", ints(&[1, 1, 1, 1])), ("padding", string("VALID"))];
        let c = g.op("sep/pointwise", "Conv2D", &[d, pw], &a);
        let y = g.op("sep/Squeeze", "Squeeze", &[c], &[("squeeze_dims", ints(&[1]))]);
        g.lower(&[y])
    }

    #[test]
    fn a_separable_conv_striding_its_unit_axis_is_two_conv1ds() {
        assert_snapshot!(separable(2, 1), @"
        self.depthwise = nn.Conv1d(3, 3, 3, stride=2, groups=3, bias=False)
        self.pointwise = nn.Conv1d(3, 8, 1, bias=False)
        # depthwise.weight: [3, 1, 3]
        # pointwise.weight: [8, 3, 1]
        ---
        x = x.permute(0, 2, 1)
        x = self.depthwise(x)
        x = self.pointwise(x).permute(0, 2, 1)
        return x
        ");
        assert_eq!(separable(2, 1), separable(1, 1));
    }

    #[test]
    fn a_window_taller_than_the_unit_axis_stays_2d() {
        // A kernel two rows tall on a one-row axis is not a 1-D op (TF would reject it; we
        // leave it to the 2-D translation rather than drop a row).
        assert!(separable(2, 2).contains("nn.Conv2d"));
    }
}
