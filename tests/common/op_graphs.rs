//! Small random graphs over the ops tf2torch translates, for finding panics, overflows and
//! runaway allocations that byte-level fuzzing of whole files reaches only by luck: every op
//! in the registry, fed placeholders and constants of random dtypes and shapes, and attributes
//! drawn from the values hostile files use (negative, zero, huge).
//!
//! Shared by `tests/random_graphs.rs` (a fixed set of seeds, in CI) and the `ops` fuzz target
//! (`scripts/fuzz.sh ops`), which includes this file by path.

use arbitrary::{Result, Unstructured};
use tf2torch::proto::attr_value::Value;
use tf2torch::proto::tensor_shape_proto::Dim;
use tf2torch::proto::{AttrValue, GraphDef, ListValue, NodeDef, TensorProto, TensorShapeProto};

/// Ops the passes handle rather than the registry: loop frames, calls, no-ops.
const PASS_OPS: &[&str] = &[
    "Enter",
    "Exit",
    "Merge",
    "Switch",
    "NextIteration",
    "LoopCond",
    "NoOp",
    "PartitionedCall",
    "StatelessWhile",
    "While",
];

/// Integers a hostile file would try: boundaries of every width the converter might cast to.
const INTS: &[i64] = &[
    0,
    1,
    2,
    3,
    4,
    -1,
    -2,
    -3,
    7,
    64,
    i32::MAX as i64,
    i32::MIN as i64,
    1 << 40,
    i64::MAX,
    i64::MIN,
];

const FLOATS: &[f32] = &[0.0, 1.0, -1.0, 0.5, 1e-3, 1e30, -1e30, f32::INFINITY, f32::NAN];

/// TF dtype enums: float, double, int32, uint8, string, int64, bool, half, bfloat16, and an
/// unknown one.
const DTYPES: &[i32] = &[1, 2, 3, 4, 7, 9, 10, 19, 14, 999];

/// Attribute names the translators read, by kind.
const INT_ATTRS: &[&str] = &[
    "axis",
    "batch_dims",
    "begin_mask",
    "depth_radius",
    "ellipsis_mask",
    "end_mask",
    "new_axis_mask",
    "num",
    "num_split",
    "shrink_axis_mask",
];
const LIST_ATTRS: &[&str] = &["dilations", "explicit_paddings", "ksize", "squeeze_dims", "strides"];
const BOOL_ATTRS: &[&str] = &[
    "adj_x",
    "adj_y",
    "align_corners",
    "exclusive",
    "half_pixel_centers",
    "is_training",
    "keep_dims",
    "reverse",
    "sorted",
    "transpose_a",
    "transpose_b",
];
const FLOAT_ATTRS: &[&str] = &["alpha", "beta", "bias", "epsilon"];
const TYPE_ATTRS: &[&str] =
    &["T", "DstT", "SrcT", "element_dtype", "out_type", "output_type", "Tidx", "index_type"];
const STRING_ATTRS: &[(&str, &[&str])] = &[
    ("padding", &["SAME", "VALID", "EXPLICIT", "FULL"]),
    ("data_format", &["NHWC", "NCHW", "NDHWC", ""]),
    ("mode", &["REFLECT", "SYMMETRIC", "CONSTANT"]),
    ("frame_name", &["loop", "other", ""]),
    ("equation", &["ij,jk->ik", "bij,bjk->bik", "...ij,...jk->...ik", "ab->ba", "a,b", "->", ""]),
];

fn int(u: &mut Unstructured) -> Result<i64> {
    if u.ratio(1, 4)? { u.arbitrary() } else { u.choose(INTS).copied() }
}

/// A small size most of the time (so ops get far; zero included), sometimes anything.
fn size(u: &mut Unstructured) -> Result<i64> {
    if u.ratio(1, 5)? { int(u) } else { u.int_in_range(0..=5) }
}

fn shape(u: &mut Unstructured, max_rank: usize) -> Result<TensorShapeProto> {
    if u.ratio(1, 10)? {
        return Ok(TensorShapeProto { dim: vec![], unknown_rank: true });
    }
    let rank = u.int_in_range(0..=max_rank)?;
    let dim = (0..rank)
        .map(|_| Ok(Dim { size: if u.ratio(1, 5)? { -1 } else { size(u)? } }))
        .collect::<Result<_>>()?;
    Ok(TensorShapeProto { dim, unknown_rank: false })
}

fn attr(value: Value) -> AttrValue {
    AttrValue { value: Some(value) }
}

fn placeholder(u: &mut Unstructured, name: String) -> Result<NodeDef> {
    let mut n = NodeDef { name, op: "Placeholder".into(), ..Default::default() };
    let dtype = if u.ratio(2, 3)? { 1 } else { *u.choose(DTYPES)? };
    n.attr.insert("dtype".into(), attr(Value::Type(dtype)));
    if u.ratio(4, 5)? {
        n.attr.insert("shape".into(), attr(Value::Shape(shape(u, 5)?)));
    }
    Ok(n)
}

/// A constant of at most 81 values, up to rank 4 (weights); its declared shape may disagree
/// with them (a broken file).
fn constant(u: &mut Unstructured, name: String) -> Result<NodeDef> {
    let dtype = *u.choose(&[1, 3, 9, 1, 3, 10, 2, 19])?;
    let rank = u.int_in_range(0..=4)?;
    let dims: Vec<i64> = (0..rank).map(|_| u.int_in_range(0..=3)).collect::<Result<_>>()?;
    let mut count = dims.iter().product::<i64>() as usize;
    if u.ratio(1, 10)? {
        count = u.int_in_range(0..=16)?;
    }
    let mut t = TensorProto {
        dtype,
        tensor_shape: Some(TensorShapeProto {
            dim: dims.iter().map(|&size| Dim { size }).collect(),
            unknown_rank: false,
        }),
        ..Default::default()
    };
    for _ in 0..count.min(81) {
        match dtype {
            1 | 19 => t.float_val.push(*u.choose(FLOATS)?),
            2 => t.double_val.push(*u.choose(FLOATS)? as f64),
            3 => t.int_val.push(int(u)? as i32),
            10 => t.bool_val.push(u.arbitrary()?),
            _ => t.int64_val.push(int(u)?),
        }
    }
    let mut n = NodeDef { name, op: "Const".into(), ..Default::default() };
    n.attr.insert("dtype".into(), attr(Value::Type(dtype)));
    n.attr.insert("value".into(), attr(Value::Tensor(Box::new(t))));
    Ok(n)
}

fn attrs(u: &mut Unstructured, n: &mut NodeDef) -> Result<()> {
    for &name in INT_ATTRS {
        if u.ratio(1, 3)? {
            n.attr.insert(name.into(), attr(Value::I(int(u)?)));
        }
    }
    for &name in LIST_ATTRS {
        if u.ratio(1, 2)? {
            let len = u.int_in_range(0..=8)?;
            let i = (0..len).map(|_| if u.ratio(2, 3)? { size(u) } else { int(u) });
            let list = ListValue { i: i.collect::<Result<_>>()?, ..Default::default() };
            n.attr.insert(name.into(), attr(Value::List(Box::new(list))));
        }
    }
    for &name in BOOL_ATTRS {
        if u.ratio(1, 3)? {
            n.attr.insert(name.into(), attr(Value::B(u.arbitrary()?)));
        }
    }
    for &name in FLOAT_ATTRS {
        if u.ratio(1, 3)? {
            n.attr.insert(name.into(), attr(Value::F(*u.choose(FLOATS)?)));
        }
    }
    for &name in TYPE_ATTRS {
        if u.ratio(1, 3)? {
            n.attr.insert(name.into(), attr(Value::Type(*u.choose(DTYPES)?)));
        }
    }
    for &(name, values) in STRING_ATTRS {
        if u.ratio(1, 2)? {
            let s = u.choose(values)?.as_bytes().to_vec();
            n.attr.insert(name.into(), attr(Value::S(s)));
        }
    }
    Ok(())
}

/// One to four ops of the registry (or ones the passes handle), each reading earlier values or fresh placeholders and
/// constants.
pub fn graph(u: &mut Unstructured) -> Result<GraphDef> {
    let mut ops = tf2torch::ops::supported();
    ops.extend(PASS_OPS);
    let mut node = Vec::new();
    let mut values: Vec<String> = Vec::new();
    let count = u.int_in_range(1..=4)?;
    for k in 0..count {
        let op = *u.choose(&ops)?;
        let mut input = Vec::new();
        for i in 0..u.int_in_range(0..=4)? {
            if u.ratio(1, 12)? {
                // A later op (a cycle, as loop frames make), or a control input.
                let later = format!("op{}", u.int_in_range(k..=count)?);
                input.push(if u.ratio(1, 3)? { format!("^{later}") } else { later });
                continue;
            }
            if !values.is_empty() && u.ratio(1, 3)? {
                input.push(u.choose(&values)?.clone());
                continue;
            }
            let name = format!("in{k}_{i}");
            node.push(if u.ratio(1, 2)? {
                placeholder(u, name.clone())?
            } else {
                constant(u, name.clone())?
            });
            values.push(name.clone());
            input.push(name);
        }
        let mut n = NodeDef { name: format!("op{k}"), op: op.into(), input, ..Default::default() };
        attrs(u, &mut n)?;
        values.push(n.name.clone());
        if u.ratio(1, 4)? {
            values.push(format!("{}:{}", n.name, u.int_in_range(1..=3)?));
        }
        node.push(n);
    }
    Ok(GraphDef { node, ..Default::default() })
}

/// Everything `convert` does short of the disk. Errors are fine; the caller checks for panics.
pub fn run(gd: GraphDef) {
    let Ok(gd) = tf2torch::load::inline_library(gd) else { return };
    let Ok(mut g) = tf2torch::ir::build(gd, &[], &[]) else { return };
    if tf2torch::passes::run_all(&mut g).is_err() {
        return;
    }
    let _ = tf2torch::ir::dump(&g, None);
    let Ok((module, _)) = tf2torch::lower::lower(&g, "Model", "random.pb") else { return };
    let _ = tf2torch::emit::render_model(&module, false);
    let _ = tf2torch::emit::render_custom_ops(&module, None);
}
