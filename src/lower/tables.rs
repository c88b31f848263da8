//! Lookup tables named after a layer that holds others. A frozen graph names an embedding
//! after the scope its lookup runs in; where that scope is a layer holding layers of its own
//! (T5's relative position bias, looked up in `self_attention` beside its
//! `query_projector`), the table would take the holder's name: `self.self_attention =
//! nn.Embedding(32, 2)`, read as if it were the attention. It is the holder's embedding:
//! `self.self_attention_embedding`.

use std::collections::BTreeSet;

use crate::lower::module::Module;
use crate::py::printer::flat;
use crate::py::{Assign, Expr, Ref};

/// Renames each embedding whose name begins another layer's (`self_attention` of
/// `self_attention_query_projector`; not `dense` of Keras' `dense_1`) to `<name>_embedding`,
/// in the layers, their weights' keys and the statements that call them.
pub fn name_tables_in_holders(module: &mut Module, stmts: &mut [Assign]) {
    // Loops' methods would need the same renaming; a model with them keeps its names.
    if !module.methods.is_empty() {
        return;
    }
    // Sorted, so that the layers a name begins are found by range, not by a scan of all.
    let names: BTreeSet<&str> = module.layers.iter().map(|l| l.name.as_str()).collect();
    let buffers: BTreeSet<&str> = module.buffers.iter().map(|b| b.name.as_str()).collect();
    let mut renames: Vec<(String, String)> = Vec::new();
    for layer in &module.layers {
        let Expr::Call(c) = &layer.ctor else { continue };
        if flat(&c.func) != "nn.Embedding" {
            continue;
        }
        let prefix = format!("{}_", layer.name);
        let holds = names
            .range(prefix.as_str()..)
            .take_while(|n| n.starts_with(&prefix))
            .any(|n| n[prefix.len()..].starts_with(|c: char| c.is_ascii_lowercase()));
        let new = format!("{}_embedding", layer.name);
        if holds && !names.contains(new.as_str()) && !buffers.contains(new.as_str()) {
            renames.push((layer.name.clone(), new));
        }
    }
    for (old, new) in &renames {
        for layer in module.layers.iter_mut().filter(|l| &l.name == old) {
            layer.name = new.clone();
        }
        module.rename_weight_heads(|head| (head == old).then(|| new.clone()));
        let rename = |r: Ref<'_>| match r {
            Ref::SelfAttr(a) if a == old => Some(Expr::self_attr(new)),
            _ => None,
        };
        for s in stmts.iter_mut() {
            *s = Assign::new(s.target.clone(), s.value.renamed(&rename));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::tensor::DType;
    use crate::testing::*;
    use insta::assert_snapshot;

    /// A bias table looked up in the attention's own scope, beside its projection's scope,
    /// is the attention's embedding; a table in a scope of its own keeps that name.
    #[test]
    fn a_table_looked_up_in_a_layer_holding_layers_is_its_embedding() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 4, 8]);
        let ids = g.typed_input("ids", &[-1, 4], DType::I32);
        let axis = g.constant("axis", int_tensor(&[], &[0]));
        let w = g.constant("m/attention/query/kernel", weights(&[8, 8]));
        let q = g.op("m/attention/query/MatMul", "BatchMatMulV2", &[x, w], &[]);
        let table = g.constant("m/attention/GatherV2/table", weights(&[10, 8]));
        let bias = g.op("m/attention/GatherV2", "GatherV2", &[table, ids, axis], &[]);
        let tokens = g.constant("m/embedding/GatherV2/table", weights(&[10, 8]));
        let e = g.op("m/embedding/GatherV2", "GatherV2", &[tokens, ids, axis], &[]);
        let y = g.op("m/add", "AddV2", &[q, bias], &[]);
        let y = g.op("m/add_1", "AddV2", &[y, e], &[]);
        assert_snapshot!(g.lower(&[y]), @"
        self.attention_query = nn.Linear(8, 8, bias=False)
        self.attention_embedding = nn.Embedding(10, 8)
        self.embedding = nn.Embedding(10, 8)
        # attention_query.weight: [8, 8]
        # attention_embedding.weight: [10, 8]
        # embedding.weight: [10, 8]
        ---
        x = self.attention_query(x)
        attention = self.attention_embedding(ids)
        x = x + attention
        y = self.embedding(ids)
        x = x + y
        return x
        ");
    }
}
