//! Lookup tables: a static hash table's `LookupTableFindV2`, once `passes::tables` has read
//! the table's contents from its initializer (the synthetic `_TableLookup`).

use crate::ir::ValueInfo;
use crate::ir::fused;
use crate::ops::contract::{Ctx, Layout, Lowered, OpResult};
use crate::ops::{OpDef, OpInputs, op};
use crate::py::Expr;
use crate::tensor::DType;

pub const OPS: &[OpDef] = &[
    op(fused::TABLE_LOOKUP, table_lookup).infer(values_for_keys),
    // What `passes::tables` could not read stays a stub saying why.
    op("LookupTableFindV2", unread_lookup).infer(found_for_keys),
    op("HashTableV2", |_| Err("a table whose contents tf2torch could not read".into())),
];

/// `table_lookup(keys, values, x, default)` (templates/table_lookup.py).
fn table_lookup(ctx: &mut Ctx) -> OpResult<Lowered> {
    ctx.require_class("table_lookup", include_str!("../../templates/table_lookup.py"));
    // `passes::tables` sorted constant keys, unless one had two values.
    if !ctx.is_const(0) || !ctx.is_const(1) {
        return Err("the table's keys and values are computed at run time".into());
    }
    let sorted = ctx.const_input(0)?.to_i64().is_some_and(|k| k.windows(2).all(|w| w[0] < w[1]));
    if !sorted {
        return Err("a key of the table has two values (TF refuses to fill it)".into());
    }
    // Buffers named for the lookup's layer (`self.id_lookup_keys`), one pair per table.
    let keys = ctx.constant_named(0, "keys")?;
    let values = ctx.constant_named(1, "values")?;
    let (x, default) = (ctx.input_tf(2)?, ctx.input_tf(3)?);
    let expr = Expr::call("table_lookup", vec![keys, values, x, default]);
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

/// The looked-up keys' shape, in the values' dtype.
fn values_for_keys(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let dtype = inp.infos.get(1)?.dtype;
    Some(vec![ValueInfo { dtype, shape: inp.infos.get(2)?.shape.clone() }])
}

/// A lookup in a table whose contents are unknown: why, for the stub's docstring.
fn unread_lookup(ctx: &mut Ctx) -> OpResult<Lowered> {
    let keys = ctx.info(1).dtype;
    let reason = if keys == Some(DType::String) {
        // The ids it looks up can be the model's input instead.
        format!(
            "string keys: PyTorch has no string tensors (map the strings to ids before the \
             model, and convert from the ids: --inputs {})",
            ctx.node().name
        )
    } else if ctx.producer(0).is_some_and(|p| p.op == "Placeholder") {
        "the table's contents are not in the graph (freezing drops them; the SavedModel has \
         them)"
            .to_string()
    } else {
        "the table's contents could not be read from its initializer (a vocabulary file, or \
         keys and values computed at run time)"
            .to_string()
    };
    Err(reason.into())
}

/// `LookupTableFindV2`'s result: a value per looked-up key, of the table's value type.
fn found_for_keys(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let dtype = inp.node.attr_type("Tout").ok();
    Some(vec![ValueInfo { dtype, shape: inp.infos.get(1)?.shape.clone() }])
}
