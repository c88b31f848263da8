//! Integer operands (shapes, multiples, bounds, paddings, counts) as the generated code holds
//! them: literals when known at conversion time, `x.shape[k]` when they are read off a value's
//! shape, and otherwise the run-time value as Python ints (`Layout::Host`, see there). A person
//! writes `x.reshape(x.shape[0], -1)` or `t.repeat(n, 1, 1)`, not tensors of sizes.

use crate::ir::{Dim, Partial};
use crate::ops::contract::{Ctx, Layout, OpResult};
use crate::ops::util::phys_axis;
use crate::py::Expr;

/// One integer: its value when known at conversion time, and how the code reads it.
#[derive(Clone, Debug)]
pub struct Item {
    pub known: Option<i64>,
    pub expr: Expr,
}

impl Item {
    pub fn int(v: i64) -> Item {
        Item { known: Some(v), expr: Expr::int(v) }
    }
}

/// A vector of integers for an op's argument.
#[derive(Clone, Debug)]
pub enum Sizes {
    /// Entry by entry (literals, `x.shape[k]`, `v[k]`).
    Items(Vec<Item>),
    /// The whole vector as one run-time expression (a tuple or list of Python ints) whose
    /// length is not known here.
    Whole(Expr),
}

impl Sizes {
    /// As separate arguments (`x.reshape(a, b)`) or the one vector (`x.reshape(v)`): torch's
    /// size-taking methods accept either. An empty vector is `()` (a scalar's shape).
    pub fn args(self) -> Vec<Expr> {
        match self {
            Sizes::Items(v) if v.is_empty() => vec![Expr::Tuple(Vec::new())],
            Sizes::Items(v) => v.into_iter().map(|i| i.expr).collect(),
            Sizes::Whole(e) => vec![e],
        }
    }

    /// As one tuple (`torch.full(<sizes>, v)`).
    pub fn tuple(self) -> Expr {
        match self {
            Sizes::Items(v) => Expr::Tuple(v.into_iter().map(|i| i.expr).collect()),
            Sizes::Whole(e) => e,
        }
    }

    /// The values, when all are known at conversion time.
    pub fn known(&self) -> Option<Vec<i64>> {
        match self {
            Sizes::Items(v) => v.iter().map(|i| i.known).collect(),
            Sizes::Whole(_) => None,
        }
    }
}

/// Python expressions for a size vector known in part: numbers, and `v.shape[k]` for sizes
/// read from values at run time where `v` is an input of the node (`passes::fold` makes it one
/// for reshape targets); `None` for an entry computed otherwise.
fn partial_items(ctx: &mut Ctx, p: &Partial) -> OpResult<Vec<Option<Item>>> {
    let mut out = Vec::new();
    for d in &p.values {
        out.push(match *d {
            Dim::Known(v) => Some(Item::int(v)),
            Dim::Of(v, axis) => {
                let Some(slot) = ctx.slot_of(v) else {
                    out.push(None);
                    continue;
                };
                let val = ctx.input(slot)?;
                let axis = match ctx.rank(slot) {
                    Some(r) => phys_axis(axis, val.layout, r),
                    None => axis,
                };
                let expr = val.expr.attr("shape").index(Expr::int(axis as i64));
                Some(Item { known: None, expr })
            }
            Dim::Unknown => None,
        });
    }
    Ok(out)
}

/// Integer vector input `i` as sizes: entry by entry when each is known or read off a shape
/// here, else the run-time vector whole.
pub fn sizes(ctx: &mut Ctx, i: usize) -> OpResult<Sizes> {
    match resolved(ctx, i)? {
        Some(items) if items.iter().all(Option::is_some) => {
            Ok(Sizes::Items(items.into_iter().flatten().collect()))
        }
        _ => Ok(Sizes::Whole(ctx.input_in(i, Layout::Host)?)),
    }
}

/// What is known of input `i` entry by entry (`None` without a constant or partial value). A
/// partial value comes first: a constant may carry one (-1 entries standing for sizes read
/// at run time, see `passes::fold`).
fn resolved(ctx: &mut Ctx, i: usize) -> OpResult<Option<Vec<Option<Item>>>> {
    if let Some(p) = ctx.partial(i) {
        return Ok(Some(partial_items(ctx, p)?));
    }
    Ok(ctx.const_ints(i).ok().map(|v| v.into_iter().map(|v| Some(Item::int(v))).collect()))
}

/// Integer vector input `i` as `len` entries: known ones as such, the others read from the
/// run-time vector (`v[k]`).
pub fn items(ctx: &mut Ctx, i: usize, len: usize) -> OpResult<Vec<Item>> {
    // `len` may come from a file's declared shape: no vector of sizes is longer than a rank.
    if len > crate::ops::MAX_RANK {
        return Err(format!("input #{i} has {len} entries, more than any tensor has axes").into());
    }
    let resolved = resolved(ctx, i)?.unwrap_or_else(|| vec![None; len]);
    if resolved.len() != len {
        return Err(format!("input #{i} has {} entries, expected {len}", resolved.len()).into());
    }
    if resolved.iter().all(Option::is_some) {
        return Ok(resolved.into_iter().flatten().collect());
    }
    // Entries packed from scalars the node reads too (see `passes::packed_bounds`) are those
    // scalars: `x[:, step]`, not `x[:, sizes[1]]` of the vector read back as ints.
    let mut resolved = resolved;
    if let Some(entries) = ctx.packed_entries(i).filter(|e| e.len() == len) {
        for (item, v) in resolved.iter_mut().zip(entries) {
            if let (None, Some(slot)) = (&item, ctx.slot_of(v)) {
                *item = Some(Item { known: None, expr: ctx.input(slot)?.expr });
            }
        }
        if resolved.iter().all(Option::is_some) {
            return Ok(resolved.into_iter().flatten().collect());
        }
    }
    let whole = ctx.input_in(i, Layout::Host)?;
    Ok(resolved
        .into_iter()
        .enumerate()
        .map(|(k, item)| {
            item.unwrap_or_else(|| Item {
                known: None,
                expr: whole.clone().index(Expr::int(k as i64)),
            })
        })
        .collect())
}

/// Integer scalar input `i` as a Python int.
pub fn scalar(ctx: &mut Ctx, i: usize) -> OpResult<Item> {
    if let Ok(v) = ctx.const_ints(i) {
        return match v.as_slice() {
            [v] => Ok(Item::int(*v)),
            _ => Err(format!("input #{i} must be a scalar").into()),
        };
    }
    if let Some(p) = ctx.partial(i)
        && p.values.len() == 1
        && let Some(item) = partial_items(ctx, p)?.pop().flatten()
    {
        return Ok(item);
    }
    Ok(Item { known: None, expr: ctx.input_in(i, Layout::Host)? })
}

/// Whether input `i` is held as Python ints (or is an integer constant of rank ≤ 1, which can
/// be written as one).
pub fn is_host(ctx: &mut Ctx, i: usize) -> bool {
    if ctx.is_const(i) {
        return ctx.const_input(i).is_ok_and(|t| t.rank() <= 1 && t.dtype.is_int());
    }
    matches!(ctx.layout(i), Ok(Layout::Host))
}

/// Whether input `i` is held as Python ints (not merely writable as them).
pub fn is_host_value(ctx: &mut Ctx, i: usize) -> bool {
    !ctx.is_const(i) && matches!(ctx.layout(i), Ok(Layout::Host))
}
