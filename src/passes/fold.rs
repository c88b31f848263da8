//! Static shape inference and constant folding, in one walk: each needs the other (a Reshape's
//! target is often computed from `Shape` of a tensor, and `Shape` folds once shapes are known).

use crate::error::{Error, Result};
use crate::ir::{Graph, ValueInfo};
use crate::ops::{self, Folded, OpInputs};

pub fn fold_and_infer(g: &mut Graph) -> Result<()> {
    let order = g.topo_order().map_err(|n| {
        let node = g.node(n);
        Error::node(
            &node.name,
            &node.op,
            "is part of a cycle (loops are not supported yet)",
        )
    })?;
    for n in order {
        let node = g.node(n);
        if node.value.is_some() || node.op == "Placeholder" {
            continue;
        }
        let inputs = g.inputs(n);
        let Some(def) = ops::lookup(&node.op) else {
            continue;
        };
        let folded = {
            let inp = OpInputs {
                node,
                infos: inputs.iter().map(|&v| g.info(v)).collect(),
                consts: inputs.iter().map(|&v| g.const_value(v)).collect(),
                partials: inputs
                    .iter()
                    .map(|&v| {
                        if v.port == 0 {
                            g.node(v.node).partial.as_ref()
                        } else {
                            None
                        }
                    })
                    .collect(),
            };
            let infos: Option<Vec<ValueInfo>> = def.infer.and_then(|f| f(&inp));
            // Fold functions check what they need: most need constant inputs, `Shape` only
            // needs a static shape.
            let folded = def.fold.and_then(|f| f(&inp));
            (infos, folded)
        };
        match folded {
            (_, Some(Folded::Tensor(t))) => g.make_const(n, t),
            (infos, partial) => {
                let node = g.node_mut(n);
                if let Some(infos) = infos {
                    node.outputs = infos;
                }
                if let Some(Folded::Partial(p)) = partial {
                    node.partial = Some(p);
                }
            }
        }
    }
    Ok(())
}
