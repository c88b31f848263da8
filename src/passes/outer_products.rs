//! A matrix product over an axis of size 1 is an outer product: Keras' rotary embeddings
//! write `positions[:, None] @ inv_freq[None, :]`, which as a layer would read
//! `nn.Linear(1, 4, bias=False)` holding the inverse frequencies as a weight to train. It
//! becomes the broadcast product a person writes, `t[:, None] * inv_freq`, and the table a
//! buffer named `inv_freq`.
//!
//! Only a table of inverse frequencies (falling from 1 by a constant ratio) or an untrained
//! constant: a trained `[1, N]` kernel is a real `Dense` over one feature, a layer.

use crate::error::Result;
use crate::ir::Graph;

pub fn outer_products(g: &mut Graph) -> Result<()> {
    let nodes: Vec<_> = g.g.node_indices().collect();
    for n in nodes {
        let node = g.node(n);
        let plain = |k: &str| !node.attr_bool_or(k, false).unwrap_or(true);
        let transposed = ["transpose_a", "transpose_b", "adj_x", "adj_y"];
        if !matches!(node.op.as_str(), "MatMul" | "BatchMatMulV2")
            || !transposed.iter().all(|k| plain(k))
        {
            continue;
        }
        let inputs = g.inputs(n);
        let [x, w] = inputs[..] else { continue };
        let Some(table) = g.const_value(w) else { continue };
        let x_shape = g.info(x).shape;
        let over_one = table.rank() == 2
            && table.shape[0] == 1
            && x_shape.is_some_and(|s| s.len() >= 2 && s.last() == Some(&Some(1)));
        let no_kernel = table.falls_from_one(4) || !g.node(w.node).is_trained();
        if !over_one || !no_kernel {
            continue;
        }
        let node = g.node_mut(n);
        node.op = "Mul".to_string();
        node.attrs.retain(|k, _| k == "T");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::tensor::Tensor;
    use crate::testing::*;
    use insta::assert_snapshot;

    fn positions_times(table: Tensor, trained: bool) -> String {
        let mut g = TestGraph::new();
        let t = g.input("t", &[-1, 1]);
        let w = if trained { g.variable("inv_freq", table) } else { g.constant("w", table) };
        let y = g.op("freqs", "MatMul", &[t, w], &[]);
        g.lower(&[y])
    }

    /// Keras' rotary angles: the positions times the inverse frequencies, a product over an
    /// axis of size 1 of a table Keras keeps as a (never trained) variable.
    #[test]
    fn positions_times_inverse_frequencies_are_a_broadcast_product() {
        let freq = [1.0, 0.1, 0.01, 0.001];
        assert_snapshot!(positions_times(Tensor::from_f32(vec![1, 4], &freq), true), @"
        self.inv_freq: [1, 4] float32
        # inv_freq: [1, 4]
        ---
        x = t * self.inv_freq
        return x
        ");
    }

    /// A trained kernel over one feature is a `Dense` layer.
    #[test]
    fn a_trained_kernel_over_one_feature_stays_a_layer() {
        let kernel = weights(&[1, 4]);
        assert_snapshot!(positions_times(kernel, true), @"
        self.freqs = nn.Linear(1, 4, bias=False)
        # freqs.weight: [4, 1]
        ---
        x = self.freqs(t)
        return x
        ");
    }
}
