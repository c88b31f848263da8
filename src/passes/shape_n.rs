//! `ShapeN(x0, .., xn)` (TF's shapes of several tensors at once; `tf.image.ssim` reads its
//! images' sizes so) becomes one `Shape` per input, so that each folds to the sizes it
//! knows as a lone `Shape` does: an op with several outputs would stop that at once.

use crate::error::Result;
use crate::ir::{Graph, Node, ValueInfo, ValueRef};

pub fn split_shape_n(g: &mut Graph) -> Result<()> {
    let mut nodes: Vec<_> = g.g.node_indices().filter(|&n| g.node(n).op == "ShapeN").collect();
    nodes.sort_by_key(|&n| g.node(n).ordinal);
    for n in nodes {
        let (name, ordinal) = (g.node(n).name.clone(), g.node(n).ordinal);
        let out_type = g.node(n).attrs.get("out_type").cloned();
        for (k, input) in g.inputs(n).into_iter().enumerate() {
            let mut shape = Node::new(format!("{name}/shape_{k}"), "Shape", ordinal);
            if let Some(t) = &out_type {
                shape.attrs.insert("out_type".into(), t.clone());
            }
            shape.outputs = vec![ValueInfo::default()];
            let s = g.add_node(shape);
            g.connect(input, s, 0);
            g.replace_uses(ValueRef { node: n, port: k }, ValueRef { node: s, port: 0 });
        }
        g.g.remove_node(n);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::testing::*;
    use insta::assert_snapshot;

    /// Each size a `ShapeN` gives is known or read where it is used, as a `Shape`'s is.
    #[test]
    fn shapes_of_several_tensors_fold_one_by_one() {
        let mut g = TestGraph::new();
        let a = g.input("a", &[-1, 8, 3]);
        let b = g.input("b", &[2, 24]);
        let shapes = g.op("shapes", "ShapeN", &[a, b], &[]);
        let zero = g.constant("zero", int_tensor(&[1], &[0]));
        let one = g.constant("one", int_tensor(&[1], &[1]));
        let third = g.constant("third", int_tensor(&[1], &[2]));
        let first = g.op(
            "first",
            "StridedSlice",
            &[shapes, zero, one, one],
            &[("shrink_axis_mask", int(1))],
        );
        let width = g.op(
            "width",
            "StridedSlice",
            &[TestGraph::port(shapes, 1), one, third, one],
            &[("shrink_axis_mask", int(1))],
        );
        let dims = g.op("dims", "Pack", &[first, width], &[]);
        let y = g.op("y", "Reshape", &[a, dims], &[]);
        assert_snapshot!(g.lower(&[y]), @"
        ---
        x = a.reshape(-1, 24)
        return x
        ");
    }
}
