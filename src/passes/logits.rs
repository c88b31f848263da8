//! Names `logits` the scores a classifier returns beside their softmax (a TF1 graph's
//! `logits` and `probs` outputs), as PyTorch code calls them, not after the layer that made
//! them (`mat_mul = self.fc(x)`).

use petgraph::stable_graph::NodeIndex;

use crate::error::Result;
use crate::ir::{Graph, ValueRef};

pub fn name_logits(g: &mut Graph) -> Result<()> {
    let softmaxes: Vec<NodeIndex> =
        g.g.node_indices().filter(|&n| g.node(n).op == "Softmax").collect();
    let mut named: Vec<ValueRef> = Vec::new();
    for s in softmaxes {
        let Some(&scores) = g.inputs(s).first() else { continue };
        if g.is_unnamed_computed(scores) && g.outputs.contains(&scores) {
            named.push(scores);
        }
    }
    // Two classifiers' scores are not both logits: which is which, their names say.
    if let [scores] = named[..] {
        g.node_mut(scores.node).set_role(scores.port, Some("logits"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::testing::*;
    use insta::assert_snapshot;

    /// A classifier that returns its scores and their softmax; a softmax whose input the
    /// model does not return leaves it unnamed.
    #[test]
    fn returned_scores_beside_their_softmax_are_logits() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 4]);
        let w = g.constant("w", weights(&[4, 3]));
        let scores = g.op("MatMul", "MatMul", &[x, w], &[]);
        let probs = g.op("Softmax", "Softmax", &[scores], &[]);
        let t = g.op("Tanh", "Tanh", &[x], &[]);
        let other = g.op("Softmax_1", "Softmax", &[t], &[]);
        assert_snapshot!(g.lower(&[probs, scores, other]), @"
        self.fc = nn.Linear(4, 3, bias=False)
        # fc.weight: [3, 4]
        ---
        logits = self.fc(x)
        h = F.softmax(logits, dim=-1)
        x = torch.tanh(x)
        softmax_1 = F.softmax(x, dim=-1)
        return h, logits, softmax_1
        ");
    }
}
