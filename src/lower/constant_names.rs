//! Names for the constants `forward` reads from buffers, where the graph's names only say
//! which op read them (`Sub/y`, `Maximum`, `const`): what the model's own code calls them
//! (`mean`, `std`, `hann_window`, `rotary_embedding_inv_freq`).

use super::scopes::without_counter;
use crate::ir::{Graph, ValueRef};
use crate::py::names::identifier;
use crate::tensor::{DType, Tensor};

/// The name hint of the buffer holding constant `v` (value `t`) read in `scope`.
pub(super) fn hint(graph: &Graph, v: ValueRef, t: &Tensor, scope: &str) -> String {
    // A tiny rotary embedding's frequencies (a head of 4 has two: `[1.0, 0.01]`) look like
    // any two numbers: its scope must say what they are.
    let says_position = scope.split('_').any(|w| POSITION_WORDS.contains(&w));
    if is_inverse_frequencies(t) || (says_position && t.falls_from_one(2)) {
        return inverse_frequencies_name(scope);
    }
    if is_alibi_slopes(t) {
        // Not `alibi_bias_alibi_slopes` under BLOOM's `alibi_bias` scope.
        let words: Vec<&str> = scope.split('_').collect();
        let own = words
            .iter()
            .position(|&w| w == "alibi")
            .map_or(scope.to_string(), |k| words[..k].join("_"));
        return scoped(&own, ROLES[1]);
    }
    if is_centered_coordinates(t) {
        return scoped(scope, "coords");
    }
    if is_paired_temperatures(t) {
        return scoped(scope, ROLES[2]);
    }
    if is_relative_position_index(t) {
        return scoped(scope, ROLES[3]);
    }
    if is_additive_mask(t) {
        return scoped(scope, "mask");
    }
    if let Some(role) = quantized_role(graph, v, t) {
        return scoped(scope, role);
    }
    if let Some(token) = super::token_names::word(graph, v.node) {
        // Not after the op reading it (`tile_class_token` for one at the top level).
        let leaf = |n| identifier(graph.node(n).name.rsplit('/').next().unwrap_or_default());
        let op_named = graph.consumers(v).iter().any(|&(r, _)| leaf(r) == identifier(scope));
        return if op_named { token.to_string() } else { scoped(scope, token) };
    }
    if is_position_ids(graph, v, t) {
        return position_ids_name(scope);
    }
    if let Some(table) = table_made_by(&graph.node(v.node).name).or_else(|| window_of(t)) {
        return table.to_string();
    }
    if let Some((role, reader)) = standardization_role(graph, v, t) {
        // Where the only scope is an op's own name (keras-hub's image converter: `Sub/y` and
        // `Maximum` at the top level), the role alone says it: `mean`, not `sub_mean`.
        let leaf = |n| identifier(graph.node(n).name.rsplit('/').next().unwrap_or_default());
        let scope_id = identifier(scope);
        return if scope.is_empty() || scope_id == leaf(reader) || scope_id == leaf(v.node) {
            role.to_string()
        } else {
            format!("{scope}_{role}")
        };
    }
    format!("{scope}_const")
}

/// What constant `v` (value `t`) is to the standardization `(x - mean) / std` (or
/// `(x - mean) * inv_std`) that reads it, and the op reading it: Keras's `Normalization`
/// and keras-hub's image converters write their statistics so, as two constants of one
/// shape. Both must be there: a constant subtracted alone may be anything (an anchor, a
/// grid).
fn standardization_role(
    graph: &Graph,
    v: ValueRef,
    t: &Tensor,
) -> Option<(&'static str, petgraph::stable_graph::NodeIndex)> {
    if !t.dtype.is_float() || t.rank() == 0 {
        return None;
    }
    let only_reader = |u: ValueRef| match graph.consumers(u)[..] {
        [one] if graph.use_count(u) == 1 => Some(one),
        _ => None,
    };
    let twin = |u: ValueRef| graph.const_value(u).is_some_and(|c| c.shape == t.shape);
    let computed = |u: ValueRef| graph.const_value(u).is_none();
    // The `(x - a)` a scaling reads, and the scaling's other operand.
    let scaled = |n| {
        let inputs = graph.inputs(n);
        let node = graph.node(n);
        let (diff, by) = match (node.op.as_str(), &inputs[..]) {
            ("RealDiv" | "Div", [d, b]) => (*d, *b),
            ("Mul", [a, b]) if graph.node(a.node).op == "Sub" => (*a, *b),
            ("Mul", [a, b]) => (*b, *a),
            _ => return None,
        };
        let sub = graph.node(diff.node);
        let [x, a] = graph.inputs(diff.node)[..] else { return None };
        (sub.op == "Sub" && diff.port == 0 && computed(x) && only_reader(diff).is_some())
            .then_some((a, by))
    };
    let (reader, slot) = only_reader(v)?;
    let op = graph.node(reader).op.as_str();
    if op == "Sub" && slot == 1 {
        let (scaling, _) = only_reader(ValueRef { node: reader, port: 0 })?;
        let (a, by) = scaled(scaling)?;
        return (a == v && twin(by)).then_some(("mean", reader));
    }
    let (a, by) = scaled(reader)?;
    if by != v || !twin(a) {
        return None;
    }
    let role = if op == "Mul" { "inv_std" } else { "std" };
    Some((role, reader))
}

/// TF's functions that compute a constant table in the graph, which people name the tensor
/// after (`window = tf.signal.hann_window(400)`).
const TABLE_MAKERS: &[&str] = &[
    "hann_window",
    "hamming_window",
    "kaiser_window",
    "kaiser_bessel_derived_window",
    "vorbis_window",
    "linear_to_mel_weight_matrix",
];

/// The table-making function whose name scope holds the op node `name` (the last op of a Hann
/// window, `stft/hann_window/sub_2`), or that names the op it returns (TF's mel matrix is
/// `linear_to_mel_weight_matrix`), if any: the buffer is `hann_window`, not
/// `stft_hann_window_const`.
fn table_made_by(name: &str) -> Option<&'static str> {
    name.rsplit('/').find_map(|part| {
        // TF numbers a scope's later uses: `hann_window_1`.
        let base = without_counter(part)?;
        TABLE_MAKERS.iter().copied().find(|&m| m == base)
    })
}

/// Windows longer than this are not looked at (a hostile constant may be huge).
const MAX_WINDOW: usize = 1 << 16;

/// The window function `t` holds, if it is one, by its values: a periodic or symmetric Hann
/// or Hamming window, zero-padded on either side as an STFT pads it to its FFT's length. A
/// window the graph computed and padded is folded into one constant named after the last op
/// (Keras' `MelSpectrogram`: `Pad`), which says nothing of it.
fn window_of(t: &Tensor) -> Option<&'static str> {
    if t.rank() != 1 || !t.dtype.is_float() || !(8..=MAX_WINDOW).contains(&t.numel()) {
        return None;
    }
    let v = t.to_f64()?;
    let n = v.len();
    let lead = v.iter().take_while(|&&x| x == 0.0).count();
    let trail = v.iter().rev().take_while(|&&x| x == 0.0).count();
    if lead + trail >= n {
        return None;
    }
    // The window's own ends may be zeros too (a Hann window's are).
    for start in [lead.saturating_sub(1), lead] {
        for end in [n - trail, (n - trail + 1).min(n)] {
            let core = &v[start..end];
            let len = core.len();
            for (name, a) in [("hann_window", 0.5), ("hamming_window", 0.54)] {
                // Periodic (TF's default) and symmetric.
                for period in [len, len - 1] {
                    let step = 2.0 * std::f64::consts::PI / period as f64;
                    let cosine = |i: usize| a - (1.0 - a) * (step * i as f64).cos();
                    if core.iter().enumerate().all(|(i, &x)| (x - cosine(i)).abs() <= 1e-5) {
                        return Some(name);
                    }
                }
            }
        }
    }
    None
}

/// The name of a rotary or sinusoid embedding's inverse frequencies made in `scope`: from
/// the words that say which embedding on (`rotary_embedding_inv_freq` in keras-hub Llama's
/// `self_attention_llama_rotary_embedding`, as Hugging Face's `rotary_emb.inv_freq`), its
/// counter left out; the whole scope where no word says.
fn inverse_frequencies_name(scope: &str) -> String {
    let words: Vec<&str> = scope.split('_').collect();
    let Some(from) = words.iter().rposition(|w| POSITION_WORDS.contains(w)) else {
        return format!("{scope}_inv_freq");
    };
    let mut kept = &words[from..];
    while let [rest @ .., last] = kept
        && !rest.is_empty()
        && last.bytes().all(|b| b.is_ascii_digit())
    {
        kept = rest;
    }
    format!("{}_inv_freq", kept.join("_"))
}

/// The names of more than one word given to a table for what it is, after its scope: a
/// name is not cut inside one (a composite layer of `position_encoding_dim_t` is
/// `PositionEncoding` holding `dim_t`, not `PositionEncodingDim` holding `t`).
pub(super) const ROLES: &[&str] = &[
    "inv_freq",
    "alibi_slopes",
    "dim_t",
    "relative_position_index",
    "inv_std",
    "hann_window",
    "position_ids",
];

/// Scope words that say an embedding of positions.
const POSITION_WORDS: &[&str] = &["rotary", "rope", "positional", "position", "sinusoid"];

/// `{scope}_{role}`, or the role alone at the top level.
fn scoped(scope: &str, role: &str) -> String {
    if scope.is_empty() { role.to_string() } else { format!("{scope}_{role}") }
}

/// Whether `t` is a rotary or sinusoid embedding's inverse frequencies, `base^(-2i/d)`: a
/// float vector (other axes of size 1) falling from 1 by a constant ratio. Named so
/// (`inv_freq`, as the models' own code names it) rather than `const`.
pub(super) fn is_inverse_frequencies(t: &Tensor) -> bool {
    t.falls_from_one(4)
}

/// Whether `t` is ALiBi's per-head slopes (BLOOM, Falcon, MPT): for `n` heads, a power of
/// two, `r, r², ..., rⁿ` with `r = 2^(-8/n)`. Named `alibi_slopes` rather than `const`.
fn is_alibi_slopes(t: &Tensor) -> bool {
    let Some(v) = t.vector_values(1) else { return false };
    let n = v.len();
    let r = f64::powf(2.0, -8.0 / n as f64);
    n.is_power_of_two() && v.iter().enumerate().all(|(i, &x)| close(x, r.powi(i as i32 + 1)))
}

/// Whether `t` is the centres of `n` equal cells of `[0, 1]`, `(i + 0.5) / n` (DINOv3's
/// rotary embedding places its patches so): a grid's coordinates, `coords`.
fn is_centered_coordinates(t: &Tensor) -> bool {
    let Some(v) = t.vector_values(2) else { return false };
    let n = v.len() as f64;
    v.iter().enumerate().all(|(i, &x)| close(x, (i as f64 + 0.5) / n))
}

/// Whether `t` is a quantized weight: 8-bit integers, a matrix or more of them, more than
/// any table of small codes (Keras' int8 and int4 kernels and embeddings; see
/// `ops::cast`).
pub(super) fn is_quantized(t: &Tensor) -> bool {
    matches!(t.dtype, DType::I8 | DType::U8)
        && t.rank() >= 2
        && t.numel() > crate::ops::QUANTIZED_TABLE_MIN
}

/// The products that read a quantized kernel.
const CONTRACTIONS: &[&str] =
    &["MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "Einsum"];

/// The ops that unpack two int4 codes from each int8 of a packed kernel.
const UNPACKING: &[&str] = &["BitwiseAnd", "RightShift", "LeftShift"];

/// What constant `v` (value `t`) is to a quantized layer, where it is a quantized weight:
/// its `kernel`, which every reader (past a cast) multiplies (Keras' int8 `Dense` and
/// `EinsumDense`) or unpacks by shifts and masks (int4 codes packed in pairs); or its `zero`
/// point, which every reader subtracts from the codes.
pub(super) fn quantized_role(graph: &Graph, v: ValueRef, t: &Tensor) -> Option<&'static str> {
    if !is_quantized(t) {
        return None;
    }
    let mut readers = Vec::new();
    for (r, slot) in graph.consumers(v) {
        if graph.node(r).op == "Cast" {
            readers.extend(graph.consumers(ValueRef { node: r, port: 0 }));
        } else {
            readers.push((r, slot));
        }
    }
    let all = |f: &dyn Fn(&str, usize) -> bool| {
        !readers.is_empty() && readers.iter().all(|&(r, slot)| f(&graph.node(r).op, slot))
    };
    if all(&|op, _| CONTRACTIONS.contains(&op) || UNPACKING.contains(&op)) {
        Some("kernel")
    } else if all(&|op, slot| op == "Sub" && slot == 1) {
        Some("zero")
    } else {
        None
    }
}

/// Whether `t` is consecutive positions `s, s + 1, ...` (other axes of size 1) an embedding
/// looks up, whole or cut to the sequence's length first: Hugging Face's `position_ids`
/// buffer (OPT's start after an offset of 2, BLIP-2's after its query tokens too).
fn is_position_ids(graph: &Graph, v: ValueRef, t: &Tensor) -> bool {
    if !t.dtype.is_int() || t.numel() < 2 || t.shape.iter().filter(|&&d| d != 1).count() != 1 {
        return false;
    }
    let Some(ids) = t.to_i64() else { return false };
    if !ids.windows(2).all(|w| w[1] == w[0] + 1) {
        return false;
    }
    let looks_up = |u: ValueRef| {
        graph.consumers(u).iter().any(|&(n, slot)| {
            let op = graph.node(n).op.as_str();
            slot == 1 && matches!(op, "GatherV2" | "ResourceGather")
        })
    };
    let cut = graph.consumers(v).into_iter().filter(|&(n, slot)| {
        slot == 0 && matches!(graph.node(n).op.as_str(), "StridedSlice" | "Slice")
    });
    looks_up(v) || cut.map(|(n, _)| ValueRef { node: n, port: 0 }).any(looks_up)
}

/// `position_ids` after the scope's words before the one saying position
/// (`embedding_position_ids` under CLIP's `embedding_position_embedding`).
fn position_ids_name(scope: &str) -> String {
    let words: Vec<&str> = scope.split('_').collect();
    let own = words.iter().position(|w| POSITION_WORDS.contains(w)).unwrap_or(words.len());
    scoped(&words[..own].join("_"), "position_ids")
}

/// Whether `t` is Swin's relative position index: for a window of `w`×`w` tokens, an
/// `[w², w²]` integer matrix whose entry `(i, j)` is where in the `(2w - 1)²` bias table the
/// offset from token `j` to token `i` is, `(hᵢ - hⱼ + w - 1)(2w - 1) + wᵢ - wⱼ + w - 1`.
fn is_relative_position_index(t: &Tensor) -> bool {
    let [n, m] = t.shape[..] else { return false };
    let w = n.isqrt();
    if n != m || w < 2 || w * w != n || !t.dtype.is_int() {
        return false;
    }
    let Some(v) = t.to_i64() else { return false };
    let side = 2 * w as i64 - 1;
    let at = |i: usize| ((i / w) as i64, (i % w) as i64);
    v.iter().enumerate().all(|(k, &x)| {
        let ((hi, wi), (hj, wj)) = (at(k / n), at(k % n));
        x == (hi - hj + w as i64 - 1) * side + wi - wj + w as i64 - 1
    })
}

/// Whether `t` is an additive attention mask: zeros where attention may look, one large
/// negative number (`-100.0` in Swin's shifted windows, `-1e9`, `-inf`) elsewhere, both.
fn is_additive_mask(t: &Tensor) -> bool {
    if t.rank() < 2 || !t.dtype.is_float() {
        return false;
    }
    let Some(v) = t.to_f64() else { return false };
    let Some(&blocked) = v.iter().find(|&&x| x != 0.0) else { return false };
    blocked <= -100.0 && v.contains(&0.0) && v.iter().all(|&x| x == 0.0 || x == blocked)
}

/// Whether `t` is DETR's sine position divisors, `temperature^(2⌊i/2⌋/d)`: each power of a
/// constant ratio (from 1, rising) twice, once for the sine and once for the cosine. DETR's
/// code calls it `dim_t`.
fn is_paired_temperatures(t: &Tensor) -> bool {
    let Some(v) = t.vector_values(4) else { return false };
    let ratio = v[2];
    v.len() % 2 == 0
        && v[0] == 1.0
        && ratio > 1.0
        && v.chunks_exact(2)
            .enumerate()
            .all(|(k, p)| p[0] == p[1] && close(p[0], ratio.powi(k as i32)))
}

/// Equal as float32 computes them.
fn close(x: f64, want: f64) -> bool {
    (x - want).abs() <= 1e-6 * want.abs().max(1e-30)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ALiBi's slopes for 2 and 8 heads, the centres of 4 cells, DETR's `dim_t`, Swin's
    /// relative position index and mask, and a small rotary embedding's two frequencies under a scope that
    /// says so, are told by their values.
    #[test]
    fn position_tables_are_named_by_their_values() {
        let slopes = |n: usize| -> Vec<f32> {
            (1..=n).map(|i| 2f32.powf(-8.0 * i as f32 / n as f32)).collect()
        };
        assert!(is_alibi_slopes(&Tensor::from_f32(vec![2, 1], &slopes(2))));
        assert!(is_alibi_slopes(&Tensor::from_f32(vec![8], &slopes(8))));
        // Six heads interleave two series; a vector of halves is no slopes either.
        assert!(!is_alibi_slopes(&Tensor::from_f32(vec![6], &slopes(6))));
        assert!(!is_alibi_slopes(&Tensor::from_f32(vec![2], &[0.5, 0.25])));
        let centres = Tensor::from_f32(vec![4, 1, 1], &[0.125, 0.375, 0.625, 0.875]);
        assert!(is_centered_coordinates(&centres));
        assert!(!is_centered_coordinates(&Tensor::from_f32(vec![4], &[0.0, 0.25, 0.5, 0.75])));
        // Swin's index for a window of 2 x 2 (a 3 x 3 table), and its shifted windows' mask.
        let index = [4, 3, 1, 0, 5, 4, 2, 1, 7, 6, 4, 3, 8, 7, 5, 4];
        assert!(is_relative_position_index(&crate::testing::int_tensor(&[4, 4], &index)));
        assert!(!is_relative_position_index(&crate::testing::int_tensor(&[4, 4], &[4; 16])));
        let mask = Tensor::from_f32(vec![2, 2], &[0.0, -100.0, -100.0, 0.0]);
        assert!(is_additive_mask(&mask));
        assert!(!is_additive_mask(&Tensor::from_f32(vec![2, 2], &[0.0, -1.0, -1.0, 0.0])));
        let dim_t: Vec<f32> = (0..8).map(|i| 100f32.powf((i / 2) as f32 / 4.0)).collect();
        assert!(is_paired_temperatures(&Tensor::from_f32(vec![8], &dim_t)));
        assert!(!is_paired_temperatures(&Tensor::from_f32(vec![4], &[1.0, 1.0, 3.0, 4.0])));
        let two = Tensor::from_f32(vec![2], &[1.0, 0.01]);
        assert!(!is_inverse_frequencies(&two) && two.falls_from_one(2));
    }

    /// OPT's positions start after an offset of 2: stored, cut to the sequence's length and
    /// looked up, they are `position_ids` (as Hugging Face's buffer), not `const`. Indices in
    /// another order are no positions.
    #[test]
    fn consecutive_ids_an_embedding_looks_up_are_position_ids() {
        use crate::testing::*;
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, -1, 8]);
        let table = g.variable("embeddings/position_embedding/embeddings", weights(&[12, 8]));
        let axis = g.constant("embeddings/axis", int_tensor(&[], &[0]));
        let ids: Vec<i64> = (2..12).collect();
        let ids = g.constant("embeddings/ids", int_tensor(&[1, 10], &ids));
        let shape = g.op("embeddings/Shape", "Shape", &[x], &[]);
        let b = vector(&mut g, "embeddings/b", &[1]);
        let e = vector(&mut g, "embeddings/e", &[2]);
        let stride = vector(&mut g, "embeddings/s", &[1]);
        let shrink = [("shrink_axis_mask", int(1))];
        let len = g.op("embeddings/len", "StridedSlice", &[shape, b, e, stride], &shrink);
        let zero = vector(&mut g, "embeddings/zero", &[0, 0]);
        let one = g.constant("embeddings/one", int_tensor(&[], &[1]));
        let size = g.op("embeddings/size", "Pack", &[one, len], &[]);
        let cut = g.op("embeddings/Slice", "Slice", &[ids, zero, size], &[]);
        let rows =
            g.op("embeddings/position_embedding/GatherV2", "GatherV2", &[table, cut, axis], &[]);
        let y = g.op("add", "AddV2", &[x, rows], &[]);
        let odd = g.constant("other/odd", int_tensor(&[2], &[1, 0]));
        let swapped = g.op("other/GatherV2", "GatherV2", &[table, odd, axis], &[]);
        insta::assert_snapshot!(g.lower(&[y, swapped]), @"
        self.position_embedding = nn.Embedding(12, 8)
        self.embeddings_position_ids: [1, 10] int32
        self.other_const: [2] int32
        # embeddings_position_ids: [1, 10]
        # position_embedding.weight: [12, 8]
        # other_const: [2]
        ---
        h = self.embeddings_position_ids[:1, : x.shape[1]]
        h = self.position_embedding(h)
        h = x + h
        other = self.position_embedding(self.other_const)
        return h, other
        ");
    }

    fn vector(g: &mut crate::testing::TestGraph, name: &str, v: &[i64]) -> crate::ir::ValueRef {
        g.constant(name, crate::testing::int_tensor(&[v.len()], v))
    }

    #[test]
    fn inverse_frequencies_are_told_by_their_values() {
        let freq: Vec<f32> = (0..8).map(|i| 10000f32.powf(-(2 * i) as f32 / 16.0)).collect();
        assert!(is_inverse_frequencies(&Tensor::from_f32(vec![8], &freq)));
        assert!(is_inverse_frequencies(&Tensor::from_f32(vec![1, 8, 1], &freq)));
        // Not from 1, not geometric, or not a vector: other constants.
        let halves: Vec<f32> = freq.iter().map(|f| f / 2.0).collect();
        assert!(!is_inverse_frequencies(&Tensor::from_f32(vec![8], &halves)));
        let linear: Vec<f32> = (0..8).map(|i| 1.0 - i as f32 / 8.0).collect();
        assert!(!is_inverse_frequencies(&Tensor::from_f32(vec![8], &linear)));
        assert!(!is_inverse_frequencies(&Tensor::from_f32(vec![2, 4], &freq)));
    }

    #[test]
    fn tables_tf_computes_are_named_after_their_function() {
        use super::table_made_by;
        assert_eq!(table_made_by("stft/hann_window/sub_2"), Some("hann_window"));
        assert_eq!(table_made_by("m/hamming_window_1/Cos"), Some("hamming_window"));
        let mel = "linear_to_mel_weight_matrix/Pad";
        assert_eq!(table_made_by(mel), Some("linear_to_mel_weight_matrix"));
        assert_eq!(
            table_made_by("linear_to_mel_weight_matrix"),
            Some(mel.split('/').next().unwrap())
        );
        // A scope that only begins alike is no such function.
        assert_eq!(table_made_by("hann_window_x/mul"), None);
        assert_eq!(table_made_by("mel_spectrogram/Pad"), None);
    }

    #[test]
    fn inverse_frequencies_are_named_after_their_embedding() {
        use super::inverse_frequencies_name as name;
        assert_eq!(name("self_attention_llama_rotary_embedding"), "rotary_embedding_inv_freq");
        let roformer = "attention_layer_roformr_positional_embedding_2";
        assert_eq!(name(roformer), "positional_embedding_inv_freq");
        assert_eq!(name("rotary_2"), "rotary_inv_freq");
        assert_eq!(name("encoder_sine_table"), "encoder_sine_table_inv_freq");
    }

    /// A Hann or Hamming window is told by its values, padded or not; a ramp or a
    /// constant is none.
    #[test]
    fn windows_are_told_by_their_values() {
        let window = |a: f64, period: usize, len: usize, pad: (usize, usize)| {
            let w = (0..len).map(|i| {
                (a - (1.0 - a) * (2.0 * std::f64::consts::PI * i as f64 / period as f64).cos())
                    as f32
            });
            let v: Vec<f32> = std::iter::repeat_n(0.0, pad.0)
                .chain(w)
                .chain(std::iter::repeat_n(0.0, pad.1))
                .collect();
            window_of(&Tensor::from_f32(vec![v.len()], &v))
        };
        assert_eq!(window(0.5, 16, 16, (0, 0)), Some("hann_window"));
        assert_eq!(window(0.5, 15, 16, (3, 5)), Some("hann_window"));
        assert_eq!(window(0.54, 12, 12, (2, 2)), Some("hamming_window"));
        assert_eq!(window(0.6, 12, 12, (0, 0)), None);
        let ramp: Vec<f32> = (0..16).map(|i| i as f32).collect();
        assert_eq!(window_of(&Tensor::from_f32(vec![16], &ramp)), None);
        assert_eq!(window_of(&Tensor::from_f32(vec![16], &[0.0; 16])), None);
    }

    /// The buffers registered for what `build` computes from an input `x`, by name.
    fn buffer_names(
        build: impl Fn(&mut crate::testing::TestGraph, ValueRef) -> ValueRef,
    ) -> Vec<String> {
        use crate::testing::*;
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 3]);
        let y = build(&mut g, x);
        // A layer after it, so that the common name prefix is the model's alone.
        let y = g.op("m/head/Relu", "Relu", &[y], &[]);
        let (m, _) = crate::lower::lower(&g.finish(&[y]), "M", "test").expect("lower");
        m.buffers.iter().map(|b| b.name.clone()).collect()
    }

    /// Keras's `Normalization` writes `(x - mean) / max(sqrt(variance), eps)` with both
    /// folded to constants: they are the layer's `mean` and `std`; scaled by a product, the
    /// inverse std. Where the op's own name is the only scope, the role alone names them.
    #[test]
    fn standardization_statistics_are_mean_and_std() {
        use crate::testing::*;
        let standardize = |scope: &'static str, scale_op: &'static str| {
            move |g: &mut TestGraph, x| {
                let at = |leaf: &str| format!("{scope}{leaf}");
                let mean = g.constant(&at("Sub/y"), weights(&[3]));
                let d = g.op(&at("Sub"), "Sub", &[x, mean], &[]);
                let std = g.constant(&at("Maximum"), weights(&[3]));
                g.op(&at("truediv"), scale_op, &[d, std], &[])
            }
        };
        let names = buffer_names(standardize("m/normalization/", "RealDiv"));
        assert_eq!(names, ["normalization_mean", "normalization_std"]);
        let names = buffer_names(standardize("m/normalization/", "Mul"));
        assert_eq!(names, ["normalization_mean", "normalization_inv_std"]);
        assert_eq!(buffer_names(standardize("", "RealDiv")), ["mean", "std"]);
    }

    /// A constant subtracted with no scaling after it, or scaled by one of another shape,
    /// may be anything (an anchor, a grid): its scope's `const`.
    #[test]
    fn a_constant_merely_subtracted_is_no_mean() {
        use crate::testing::*;
        let names = buffer_names(|g, x| {
            let a = g.constant("m/anchors/Sub/y", weights(&[3]));
            g.op("m/anchors/Sub", "Sub", &[x, a], &[])
        });
        assert_eq!(names, ["anchors_const"]);
        let names = buffer_names(|g, x| {
            let a = g.constant("m/grid/Sub/y", weights(&[3]));
            let d = g.op("m/grid/Sub", "Sub", &[x, a], &[]);
            let b = g.constant("m/grid/Maximum", weights(&[1, 3]));
            g.op("m/grid/truediv", "RealDiv", &[d, b], &[])
        });
        assert_eq!(names, ["grid_const", "grid_const_2"]);
    }

    /// A frozen Keras int8 layer names its weights only after their reads: the int8 kernel
    /// (cast, then multiplied) is the layer's `kernel`, its float scale `scale`; an int8
    /// zero point subtracted from the codes (an int4 layer's) its `zero`.
    #[test]
    fn a_quantized_layers_weights_are_its_kernel_and_scale() {
        use crate::testing::*;
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 32]);
        let codes: Vec<u8> = (0..32 * 16).map(|i| (i * 7 % 255) as u8).collect();
        let w = Tensor { dtype: DType::I8, shape: vec![32, 16], data: codes.clone().into() };
        let w = g.variable("model/dense/ReadVariableOp/resource", w);
        let to_float = [("SrcT", dtype(DType::I8)), ("DstT", dtype(DType::F32))];
        let w = g.op("model/dense/Cast", "Cast", &[w], &to_float);
        let y = g.op("model/dense/MatMul", "MatMul", &[x, w], &[]);
        let scale = g.variable("model/dense/ReadVariableOp_1/resource", weights(&[16]));
        let y = g.op("model/dense/truediv", "RealDiv", &[y, scale], &[]);
        let zero = Tensor { dtype: DType::I8, shape: vec![16, 32], data: codes.into() };
        let zero = g.variable("model/head/ReadVariableOp/resource", zero);
        let zero = g.op("model/head/Cast", "Cast", &[zero], &to_float);
        let w2 = g.input("w2", &[16, 32]);
        let w2 = g.op("model/head/sub", "Sub", &[w2, zero], &[]);
        let y = g.op("model/head/MatMul", "MatMul", &[y, w2], &[]);
        insta::assert_snapshot!(g.lower(&[y]), @"
        self.dense_kernel: [32, 16] int8
        self.dense_scale: [16] float32
        self.head_zero: [16, 32] int8
        # dense_kernel: [32, 16]
        # dense_scale: [16]
        # head_zero: [16, 32]
        ---
        y = self.dense_kernel.to(torch.float32)
        x = x @ y
        x = x / self.dense_scale
        y = self.head_zero.to(torch.float32)
        y = w2 - y
        x = x @ y
        return x
        ");
    }
}
