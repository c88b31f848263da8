//! Channels-first TF ops (`data_format="NCHW"`: Keras' `channels_first` layers, graphs made
//! for GPUs) become their channels-last forms between two transposes. The lowering keeps
//! values in PyTorch's channels-first order anyway and composes transposes with it, so the
//! transposes cost nothing: the convolution reads the NCHW input as it is.
//!
//! Only the data input and output move; window attributes (`strides`, `ksize`, `dilations`,
//! `explicit_paddings`) are given in the data format's axis order and are reordered too. A
//! node of another op keeps its format (and fails to translate with a message naming it).

use petgraph::stable_graph::NodeIndex;

use crate::error::Result;
use crate::ir::attrs::CHANNELS_LAST;
use crate::ir::{Graph, Node, ValueInfo, ValueRef};
use crate::ops::contract::{to_channels_first, to_channels_last};
use crate::passes::pattern::int_const;

/// Ops whose channels-first form is their channels-last one between transposes: the data is
/// input 0 and output 0, other inputs and outputs (kernels, batch-norm statistics) have no
/// spatial axes.
const OPS: &[&str] = &[
    "Conv2D",
    "Conv3D",
    "DepthwiseConv2dNative",
    "BiasAdd",
    "MaxPool",
    "AvgPool",
    "MaxPool3D",
    "AvgPool3D",
    "FusedBatchNorm",
    "FusedBatchNormV2",
    "FusedBatchNormV3",
];

/// Attributes listing one entry per axis, in the data format's order.
const PER_AXIS: &[&str] = &["strides", "ksize", "dilations"];

/// Ops whose data has the rank their format says (a `BiasAdd` in NCHW may add to any rank).
const WINDOWED: &[&str] = &["Conv2D", "Conv3D", "DepthwiseConv2dNative"];

pub fn channels_first(g: &mut Graph) -> Result<()> {
    // Chosen before any is rewritten: a BiasAdd qualifies by what produces its input.
    let mut nodes: Vec<NodeIndex> = g.g.node_indices().filter(|&n| qualifies(g, n)).collect();
    nodes.sort_by_key(|&n| g.node(n).ordinal);
    for n in nodes {
        rewrite(g, n);
    }
    Ok(())
}

/// Whether node `n` is rewritten: one of [`OPS`] in a channels-first format, and for a
/// `BiasAdd`, on data of the format's rank (a convolution's output, or a known shape).
fn qualifies(g: &Graph, n: NodeIndex) -> bool {
    let node = g.node(n);
    let Some(rank) = channels_first_rank(node) else { return false };
    if !OPS.contains(&node.op.as_str()) {
        return false;
    }
    if node.op != "BiasAdd" {
        return true;
    }
    let Some(&x) = g.inputs(n).first() else { return false };
    let producer = g.node(x.node);
    let from_conv =
        WINDOWED.contains(&producer.op.as_str()) && channels_first_rank(producer) == Some(rank);
    from_conv || g.info(x).shape.is_some_and(|s| s.len() == rank)
}

/// The rank of the node's data if its format is channels-first (`NCHW` → 4, `NCDHW` → 5).
fn channels_first_rank(node: &Node) -> Option<usize> {
    match node.attr_str("data_format").ok()?.as_str() {
        "NCHW" => Some(4),
        "NCDHW" => Some(5),
        _ => None,
    }
}

fn rewrite(g: &mut Graph, n: NodeIndex) {
    let Some(rank) = channels_first_rank(g.node(n)) else { return };
    let Some(&x) = g.inputs(n).first() else { return };
    // Channels-last axis `i` is channels-first axis `to_last[i]`.
    let axes = |perm: Vec<i64>| -> Vec<usize> { perm.into_iter().map(|a| a as usize).collect() };
    let (to_last, to_first) = (axes(to_channels_last(rank)), axes(to_channels_first(rank)));
    let node = g.node_mut(n);
    for attr in PER_AXIS {
        if let Ok(v) = node.attr_ints(attr)
            && v.len() == rank
        {
            let moved: Vec<i64> = to_last.iter().map(|&a| v[a]).collect();
            node.set_attr_ints(attr, &moved);
        }
    }
    if let Ok(v) = node.attr_ints("explicit_paddings")
        && v.len() == 2 * rank
    {
        let moved: Vec<i64> = to_last.iter().flat_map(|&a| [v[2 * a], v[2 * a + 1]]).collect();
        node.set_attr_ints("explicit_paddings", &moved);
    }
    node.set_attr_str("data_format", if rank == 4 { "NHWC" } else { "NDHWC" });
    // Inferred again from the new input.
    if let Some(out) = node.outputs.first_mut() {
        *out = ValueInfo::default();
    }
    let (name, ordinal) = (node.name.clone(), node.ordinal);
    let out = ValueRef { node: n, port: 0 };
    let readers_before = g.use_count(out);
    let last = transpose(g, x, &to_last, &format!("{name}/channels_last"), ordinal);
    // Lowered as a relabeling of the channels-first tensor (see `ops::shape::transpose`).
    g.node_mut(last.node).set_attr_bool(CHANNELS_LAST, true);
    g.set_input(n, 0, last);
    if readers_before > 0 {
        let back = transpose_node(g, &to_first, &format!("{name}/channels_first"), ordinal);
        g.replace_uses(out, back);
        g.connect(out, back.node, 0);
    }
}

/// `Transpose(x, perm)`, a new node.
fn transpose(g: &mut Graph, x: ValueRef, perm: &[usize], name: &str, ordinal: usize) -> ValueRef {
    let t = transpose_node(g, perm, name, ordinal);
    g.connect(x, t.node, 0);
    t
}

/// A `Transpose` by `perm` whose data input is still to be connected.
fn transpose_node(g: &mut Graph, perm: &[usize], name: &str, ordinal: usize) -> ValueRef {
    let p: Vec<i32> = perm.iter().map(|&a| a as i32).collect();
    let pv = int_const(g, format!("{name}/perm"), &p, ordinal);
    let t = g.add_node(Node::new(name, "Transpose", ordinal));
    g.connect(pv, t, 1);
    ValueRef { node: t, port: 0 }
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use crate::testing::*;

    /// An NCHW convolution with an NCHW bias, max pool (window and strides in NCHW order) and
    /// batch norm: PyTorch's layers on the input as it is, no permute.
    #[test]
    fn nchw_ops_run_on_their_input_as_it_is() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 3, 8, 8]);
        let nchw = ("data_format", string("NCHW"));
        let w = g.constant("conv/kernel", weights(&[3, 3, 3, 4]));
        let conv_attrs =
            [("strides", ints(&[1, 1, 2, 2])), ("padding", string("VALID")), nchw.clone()];
        let y = g.op("conv/Conv2D", "Conv2D", &[x, w], &conv_attrs);
        let b = g.constant("conv/bias", weights(&[4]));
        let y = g.op("conv/BiasAdd", "BiasAdd", &[y, b], std::slice::from_ref(&nchw));
        let y = g.op("relu", "Relu", &[y], &[]);
        let pool_attrs = [
            ("ksize", ints(&[1, 1, 2, 1])),
            ("strides", ints(&[1, 1, 1, 1])),
            ("padding", string("VALID")),
            nchw.clone(),
        ];
        let y = g.op("pool", "MaxPool", &[y], &pool_attrs);
        let stats: Vec<_> =
            (0..4).map(|k| g.constant(&format!("bn/p{k}"), weights(&[4]))).collect();
        let bn_attrs = [("epsilon", float(0.001)), ("is_training", boolean(false)), nchw];
        let y =
            g.op("bn", "FusedBatchNormV3", &[y, stats[0], stats[1], stats[2], stats[3]], &bn_attrs);
        assert_snapshot!(g.lower(&[y]), @"
            self.conv = nn.Conv2d(3, 4, 3, stride=2)
            self.pool = nn.MaxPool2d((2, 1), 1)
            self.bn = nn.BatchNorm2d(4, eps=0.001)
            # conv.weight: [4, 3, 3, 3]
            # conv.bias: [4]
            # bn.weight: [4]
            # bn.bias: [4]
            # bn.running_mean: [4]
            # bn.running_var: [4]
            # bn.num_batches_tracked: []
            ---
            x = self.conv(x)
            x = F.relu(x, inplace=True)
            x = self.pool(x)
            x = self.bn(x)
            return x
            ");
    }

    /// A BiasAdd in NCHW on a matrix adds along axis 1 as it is (not a 4-D transpose).
    #[test]
    fn a_bias_on_a_matrix_stays() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 4]);
        let b = g.constant("b", weights(&[4]));
        let y = g.op("bias", "BiasAdd", &[x, b], &[("data_format", string("NCHW"))]);
        assert_snapshot!(g.lower(&[y]), @"
            self.bias_bias: [4] float32
            # bias_bias: [4]
            ---
            x = x + self.bias_bias
            return x
            ");
    }
}
