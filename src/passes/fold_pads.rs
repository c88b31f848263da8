//! A zero padding written as its own layer before a convolution (Keras' `ZeroPadding2D((3,
//! 3))` before ResNet's and DenseNet's stem) becomes the convolution's own padding where
//! it pads each side of an axis alike: `nn.Conv2d(3, 64, 7, stride=2, padding=3)`, as
//! torchvision writes the stem, instead of an `F.pad` before the layer. An uneven padding
//! stays an `F.pad` (PyTorch's convolutions pad both sides alike).
//!
//! A max pooling is padded with `-inf` in PyTorch, not zeros: a zero padding folds into it
//! only where what is padded is never negative (ResNet's stem pads a ReLU's output, then
//! pools: `nn.MaxPool2d(3, 2, padding=1)`, as torchvision's), and no window is all padding.

use petgraph::stable_graph::NodeIndex;

use crate::error::Result;
use crate::ir::{Graph, ValueRef};
use crate::passes::pattern::{const_ints, const_scalar, single_consumer};

const CONVS: &[&str] = &["Conv2D", "DepthwiseConv2dNative"];

/// Ops whose output is never negative.
const NON_NEGATIVE: &[&str] = &["Relu", "Relu6"];

pub fn fold_pads(g: &mut Graph) -> Result<()> {
    let windowed = |g: &Graph, n: NodeIndex| {
        let op = g.node(n).op.as_str();
        CONVS.contains(&op) || op == "MaxPool"
    };
    let mut layers: Vec<NodeIndex> = g.g.node_indices().filter(|&n| windowed(g, n)).collect();
    layers.sort_by_key(|&n| g.node(n).ordinal);
    for conv in layers {
        if let Some((x, pad, explicit)) = plan(g, conv) {
            g.set_input(conv, 0, x);
            let node = g.node_mut(conv);
            node.set_attr_str("padding", "EXPLICIT");
            node.set_attr_ints("explicit_paddings", &explicit);
            if g.use_count(ValueRef { node: pad, port: 0 }) == 0 {
                g.g.remove_node(pad);
            }
        }
    }
    Ok(())
}

/// `(the padded input, the pad node, the convolution's explicit paddings)` when `conv` (or a
/// max pooling) reads a zero padding of height and width only, which with its own padding
/// pads each side alike.
fn plan(g: &Graph, conv: NodeIndex) -> Option<(ValueRef, NodeIndex, Vec<i64>)> {
    let c = g.node(conv);
    if c.attr_str_or("data_format", "NHWC").ok()? != "NHWC" {
        return None;
    }
    let own = match c.attr_str("padding").ok()?.as_str() {
        "VALID" => vec![0; 8],
        "EXPLICIT" => c.attr_ints("explicit_paddings").ok()?,
        _ => return None,
    };
    let padded = *g.inputs(conv).first()?;
    let pad = g.node(padded.node);
    if padded.port != 0 || single_consumer(g, padded)? != conv {
        return None;
    }
    let ins = g.inputs(padded.node);
    let zero = match pad.op.as_str() {
        "Pad" => ins.len() == 2,
        "PadV2" => ins.len() == 3 && const_scalar(g, ins[2]) == Some(0.0),
        _ => false,
    };
    let sizes = const_ints(g, *ins.get(1)?)?;
    if !zero || sizes.len() != 8 || own.len() != 8 {
        return None;
    }
    let total: Vec<i64> =
        sizes.iter().zip(&own).map(|(a, b)| a.checked_add(*b)).collect::<Option<_>>()?;
    let spatial_only = total[..2] == [0, 0] && total[6..] == [0, 0];
    let even = total[2] == total[3] && total[4] == total[5];
    if c.op == "MaxPool" {
        // Zeros never win over what is never negative; torch pads at most half a window.
        let kernel = c.attr_ints("ksize").ok()?;
        let within = |p: i64, k: i64| p.checked_mul(2).is_some_and(|p| p <= k);
        let half = kernel.len() == 4 && within(total[2], kernel[1]) && within(total[4], kernel[2]);
        if !NON_NEGATIVE.contains(&g.node(ins[0].node).op.as_str()) || !half {
            return None;
        }
    }
    (spatial_only && even && total.iter().all(|&p| p >= 0)).then(|| (ins[0], padded.node, total))
}

#[cfg(test)]
mod tests {
    use crate::testing::*;
    use insta::assert_snapshot;

    fn conv_after_pad(pads: &[i64]) -> String {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 8, 8, 3]);
        let p = g.constant("pad/paddings", int_tensor(&[4, 2], pads));
        let y = g.op("pad/Pad", "Pad", &[x, p], &[]);
        let w = g.constant("conv/kernel", weights(&[7, 7, 3, 4]));
        let a = [("strides", ints(&[1, 2, 2, 1])), ("padding", string("VALID"))];
        let y = g.op("conv/Conv2D", "Conv2D", &[y, w], &a);
        g.lower(&[y])
    }

    #[test]
    fn an_even_zero_padding_is_the_convolutions_own() {
        assert_snapshot!(conv_after_pad(&[0, 0, 3, 3, 3, 3, 0, 0]), @"
        self.conv2d = nn.Conv2d(3, 4, 7, stride=2, padding=3, bias=False)
        # conv2d.weight: [4, 3, 7, 7]
        ---
        x = x.permute(0, 3, 1, 2)
        x = self.conv2d(x).permute(0, 2, 3, 1)
        return x
        ");
    }

    /// ResNet's stem: a ReLU's output padded with zeros, then max pooled; a value that may be
    /// negative keeps its zero padding.
    fn pool_after_pad(relu: bool) -> String {
        let mut g = TestGraph::new();
        let mut x = g.input("x", &[-1, 8, 8, 3]);
        if relu {
            x = g.op("relu/Relu", "Relu", &[x], &[]);
        }
        let p = g.constant("pad/paddings", int_tensor(&[4, 2], &[0, 0, 1, 1, 1, 1, 0, 0]));
        let y = g.op("pad/Pad", "Pad", &[x, p], &[]);
        let a = [
            ("ksize", ints(&[1, 3, 3, 1])),
            ("strides", ints(&[1, 2, 2, 1])),
            ("padding", string("VALID")),
        ];
        let y = g.op("pool/MaxPool", "MaxPool", &[y], &a);
        g.lower(&[y])
    }

    #[test]
    fn a_zero_padding_of_a_relu_is_the_max_poolings_own() {
        assert_snapshot!(pool_after_pad(true), @"
        self.pool = nn.MaxPool2d(3, 2, padding=1)
        ---
        x = F.relu(x).permute(0, 3, 1, 2)
        x = self.pool(x).permute(0, 2, 3, 1)
        return x
        ");
        assert_snapshot!(pool_after_pad(false), @"
        self.pool = nn.MaxPool2d(3, 2)
        ---
        x = x.permute(0, 3, 1, 2)
        x = F.pad(x, (1, 1, 1, 1))
        x = self.pool(x).permute(0, 2, 3, 1)
        return x
        ");
    }

    #[test]
    fn an_uneven_padding_stays_a_pad() {
        assert_snapshot!(conv_after_pad(&[0, 0, 0, 1, 0, 1, 0, 0]), @"
        self.conv = nn.Conv2d(3, 4, 7, stride=2, bias=False)
        # conv.weight: [4, 3, 7, 7]
        ---
        x = x.permute(0, 3, 1, 2)
        x = F.pad(x, (0, 1, 0, 1))
        x = self.conv(x).permute(0, 2, 3, 1)
        return x
        ");
    }
}
