//! Static lookup tables (Keras' `IntegerLookup`, `tf.lookup.StaticHashTable`): a
//! `LookupTableFindV2` reading a `HashTableV2` that one `LookupTableImportV2` fills with keys
//! and values (the table's initializer, which a SavedModel keeps beside the signature and a
//! TF1 graph beside its outputs) becomes one [`Fused::TableLookup`] reading the keys, the
//! values, the looked-up keys and the default. Runs before anything prunes the initializer,
//! which no output reads; once folding has made keys and values constants,
//! [`sort_table_keys`] sorts them. A table filled otherwise (from a vocabulary file, with
//! string keys, or twice) keeps its lookup as a stub.

use std::collections::BTreeMap;

use petgraph::stable_graph::NodeIndex;

use crate::error::Result;
use crate::ir::fused::Fused;
use crate::ir::{Graph, Node, ValueRef};
use crate::passes::pattern::replace_with_fused;
use crate::tensor::{DType, Tensor};

/// Ops that create a table, and ops that fill one from a key tensor and a value tensor.
const TABLES: &[&str] = &["HashTableV2", "HashTable"];
const IMPORTS: &[&str] = &["LookupTableImportV2", "InitializeTableV2", "InitializeTable"];

pub fn fuse_table_lookups(g: &mut Graph) -> Result<()> {
    let finds: Vec<NodeIndex> =
        g.g.node_indices().filter(|&n| g.node(n).op == "LookupTableFindV2").collect();
    if finds.is_empty() {
        return Ok(());
    }
    let imports: Vec<NodeIndex> =
        g.g.node_indices().filter(|&n| IMPORTS.contains(&g.node(n).op.as_str())).collect();
    for n in finds {
        let [table, x, default] = g.inputs(n)[..] else { continue };
        let table = through_identities(g, table);
        if !TABLES.contains(&g.node(table.node).op.as_str()) {
            continue;
        }
        let Some((keys, values)) = contents(g, &imports, table) else { continue };
        let name = layer_name(&g.node(n).name);
        let fused = replace_with_fused(g, n, Fused::TableLookup, &[keys, values, x, default]);
        g.node_mut(fused).name = name;
    }
    Ok(())
}

/// Once folding has made the keys and values constants (a TF1 vocabulary's values are often
/// `range(n)`), each table's are sorted by key: two new constants, shared by every lookup in
/// the same table. Keys that stay run-time values, or a key given two values, are left for
/// the translator to refuse.
pub fn sort_table_keys(g: &mut Graph) -> Result<()> {
    let lookups: Vec<NodeIndex> =
        g.g.node_indices()
            .filter(|&n| matches!(g.node(n).fused, Some(Fused::TableLookup)))
            .collect();
    let mut sorted_once: BTreeMap<(ValueRef, ValueRef), (ValueRef, ValueRef)> = BTreeMap::new();
    for n in lookups {
        let [keys, values, ..] = g.inputs(n)[..] else { continue };
        let (keys, values) = match sorted_once.get(&(keys, values)) {
            Some(&kv) => kv,
            None => {
                let (Some(k), Some(v)) = (g.const_value(keys), g.const_value(values)) else {
                    continue;
                };
                let Some((k, v)) = sorted(k, v) else { continue };
                let (base, ordinal) = (g.node(n).name.clone(), g.node(n).ordinal);
                let k = constant(g, format!("{base}/keys"), k, ordinal);
                let v = constant(g, format!("{base}/values"), v, ordinal);
                *sorted_once.entry((keys, values)).or_insert((k, v))
            }
        };
        g.set_input(n, 0, keys);
        g.set_input(n, 1, values);
    }
    Ok(())
}

/// The lookup's name in its layer: TF opens a scope named after the table
/// (`integer_lookup/hash_table_Lookup/LookupTableFindV2`), which names no layer of the model
/// unless it is the only scope there is (`vocab_Lookup/LookupTableFindV2`, a TF1 table
/// named `vocab`; `None_Lookup` for a table without a name).
fn layer_name(name: &str) -> String {
    let parts: Vec<&str> = name.split('/').collect();
    // A table's second lookup is in `vocab_Lookup_1`.
    fn scope(p: &str) -> &str {
        p.trim_end_matches(|c: char| c.is_ascii_digit() || c == '_')
    }
    let Some(at) = parts.iter().rposition(|p| scope(p).ends_with("_Lookup")) else {
        return name.to_string();
    };
    let table = scope(parts[at]).trim_end_matches("_Lookup");
    match &parts[..at] {
        [] if table.is_empty() || table == "None" => "lookup".to_string(),
        [] => format!("{table}/lookup"),
        layer => format!("{}/lookup", layer.join("/")),
    }
}

/// `v` before any `Identity` (an inlined function passes its arguments through them).
fn through_identities(g: &Graph, mut v: ValueRef) -> ValueRef {
    while g.node(v.node).op == "Identity" {
        match g.inputs(v.node).first() {
            Some(&src) => v = src,
            None => break,
        }
    }
    v
}

/// The keys and values the table's one initializer imports (constants or not yet).
fn contents(g: &Graph, imports: &[NodeIndex], table: ValueRef) -> Option<(ValueRef, ValueRef)> {
    let mut imports = imports
        .iter()
        .copied()
        .filter(|&n| g.inputs(n).first().is_some_and(|&t| through_identities(g, t) == table));
    let import = imports.next()?;
    if imports.next().is_some() {
        return None;
    }
    let [_, keys, values] = g.inputs(import)[..] else { return None };
    // String keys have no tensor in PyTorch: that lookup stays a stub saying so.
    let strings = g.info(keys).dtype == Some(DType::String)
        || g.node(import).attr_type("Tin").is_ok_and(|d| d == DType::String);
    (!strings).then(|| (through_identities(g, keys), through_identities(g, values)))
}

/// Integer keys in ascending order, each once, with their values (1-D both): `None` where
/// the counts differ or a key has two values (which TF refuses when it fills the table).
fn sorted(keys: &Tensor, values: &Tensor) -> Option<(Tensor, Tensor)> {
    let k = keys.to_i64()?;
    let size = values.dtype.size()?;
    if values.data.len() != k.len() * size || !matches!(keys.dtype, DType::I32 | DType::I64) {
        return None;
    }
    let value = |i: usize| &values.data[i * size..(i + 1) * size];
    let mut order: Vec<usize> = (0..k.len()).collect();
    order.sort_by_key(|&i| k[i]);
    let mut kept: Vec<usize> = Vec::with_capacity(order.len());
    for i in order {
        match kept.last() {
            Some(&j) if k[j] == k[i] && value(j) != value(i) => return None,
            Some(&j) if k[j] == k[i] => {}
            _ => kept.push(i),
        }
    }
    let n = kept.len();
    let sorted_keys: Vec<i64> = kept.iter().map(|&i| k[i]).collect();
    let keys = match keys.dtype {
        DType::I32 => {
            let narrow: Vec<i32> = sorted_keys.iter().map(|&x| x as i32).collect();
            Tensor::from_i32(vec![n], &narrow)
        }
        _ => Tensor::from_i64(vec![n], &sorted_keys),
    };
    let bytes: Vec<u8> = kept.iter().flat_map(|&i| value(i).iter().copied()).collect();
    let values = Tensor { dtype: values.dtype, shape: vec![n], data: bytes.into() };
    Some((keys, values))
}

fn constant(g: &mut Graph, name: String, t: Tensor, ordinal: usize) -> ValueRef {
    ValueRef { node: g.add_node(Node::constant(name, t, ordinal)), port: 0 }
}

#[cfg(test)]
mod tests {
    use crate::proto::AttrValue;
    use crate::proto::attr_value::Value;
    use crate::tensor::{DType, Tensor};
    use crate::testing::*;
    use insta::assert_snapshot;

    fn dtype(d: DType) -> AttrValue {
        AttrValue { value: Some(Value::Type(d.to_tf())) }
    }

    /// `table.lookup(ids)` on a table an initializer fills with `keys` → `values`.
    fn lookup(keys: &[i64], values: &[f32]) -> String {
        let mut g = TestGraph::new();
        let ids = g.typed_input("ids", &[-1, 3], DType::I64);
        let table = g.op("hash_table", "HashTableV2", &[], &[]);
        let k = g.constant("init/keys", Tensor::from_i64(vec![keys.len()], keys));
        let v = g.constant("init/values", Tensor::from_f32(vec![values.len()], values));
        let arg = g.op("init/table", "Identity", &[table], &[]);
        g.op("init/LookupTableImportV2", "LookupTableImportV2", &[arg, k, v], &[]);
        let default = g.constant("default", Tensor::from_f32(vec![], &[-1.0]));
        let attrs = [("Tin", dtype(DType::I64)), ("Tout", dtype(DType::F32))];
        let found = g.op(
            "emb/hash_table_Lookup/LookupTableFindV2",
            "LookupTableFindV2",
            &[table, ids, default],
            &attrs,
        );
        let twice = g.op("emb/twice", "Add", &[found, found], &[]);
        g.lower(&[twice])
    }

    /// The keys sorted (values with them), in buffers named for the lookup's layer.
    #[test]
    fn a_table_filled_with_constants_is_looked_up_in_sorted_keys() {
        assert_snapshot!(lookup(&[30, -2, 7], &[0.5, 1.5, 2.5]), @"
        self.lookup_keys: [3] int64
        self.lookup_values: [3] float32
        # lookup_keys: [3]
        # lookup_values: [3]
        ---
        lookup = table_lookup(self.lookup_keys, self.lookup_values, ids, -1.0)
        x = lookup + lookup
        return x
        ");
        let keys = Tensor::from_i64(vec![4], &[30, -2, 7, -2]);
        let values = Tensor::from_f32(vec![4], &[0.5, 1.5, 2.5, 1.5]);
        let (k, v) = super::sorted(&keys, &values).expect("sorted");
        assert_eq!((k.to_i64(), v.to_f64()), (Some(vec![-2, 7, 30]), Some(vec![1.5, 2.5, 0.5])));
    }

    /// A key imported twice with two values is an error in TF: the lookup stays a stub,
    /// given the keys and values as they are.
    #[test]
    fn a_key_with_two_values_leaves_a_stub() {
        let code = lookup(&[4, 9, 4], &[0.5, 1.5, 2.5]);
        assert!(code.contains("stub table_lookup_"), "{code}");
    }

    /// A frozen graph keeps no table: the lookup's stub takes the keys' rank (not the
    /// handle's), so the batch read after it stays a run-time size.
    #[test]
    fn a_stub_reading_a_handle_has_the_shape_of_its_keys() {
        let mut g = TestGraph::new();
        let ids = g.typed_input("ids", &[-1, 3], DType::I64);
        let table = g.typed_input("table_handle", &[], DType::Resource);
        let default = g.constant("default", int_tensor(&[], &[0]));
        let attrs = [("Tin", dtype(DType::I64)), ("Tout", dtype(DType::I64))];
        let found = g.op("lookup", "LookupTableFindV2", &[table, ids, default], &attrs);
        let shape = g.op("shape", "Shape", &[found], &[]);
        assert_snapshot!(g.lower(&[shape]), @"
        ---
        x = custom_ops.lookup_table_find_v2(table_handle, ids, 0)
        shape = x.shape
        x = torch.tensor(shape, dtype=torch.int32)
        return x
        stub lookup_table_find_v2
        ");
    }
}
