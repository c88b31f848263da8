//! Folding elementwise math on constants, in the tensor's own precision (f32 constants in
//! f32, as TF computes them), with numpy broadcasting.

use super::{Bin, Un};
use crate::ops::util::broadcast;
use crate::ops::{Folded, OpInputs};
use crate::py::BinOp;
use crate::tensor::{DType, Tensor, Values};

pub(super) fn fold_compare(inp: &OpInputs, op: BinOp) -> Option<Folded> {
    let a = inp.consts.first().copied().flatten()?;
    let b = inp.consts.get(1).copied().flatten()?;
    let (x, y) = (a.to_f64()?, b.to_f64()?);
    let (shape, v) = broadcast_apply(&a.shape, &x, &b.shape, &y, |p, q| {
        let r = match op {
            BinOp::Lt => p < q,
            BinOp::LtE => p <= q,
            BinOp::Gt => p > q,
            BinOp::GtE => p >= q,
            BinOp::Eq => p == q,
            BinOp::NotEq => p != q,
            BinOp::BitAnd => p != 0.0 && q != 0.0,
            _ => p != 0.0 || q != 0.0,
        };
        i64::from(r)
    })?;
    Tensor::with_values_like(crate::tensor::DType::Bool, shape, &Values::I(v)).map(Folded::Tensor)
}

/// Numpy broadcasting of `a` and `b` element by element.
fn broadcast_apply<A: Copy, B: Copy, R>(
    sa: &[usize],
    a: &[A],
    sb: &[usize],
    b: &[B],
    f: impl Fn(A, B) -> R,
) -> Option<(Vec<usize>, Vec<R>)> {
    let to_opt = |s: &[usize]| Some(s.iter().map(|&d| Some(d)).collect::<Vec<_>>());
    let out: Vec<usize> =
        broadcast(&to_opt(sa), &to_opt(sb))?.into_iter().collect::<Option<_>>()?;
    let n = out.len();
    let strides = |s: &[usize]| -> Vec<usize> {
        let mut st = vec![0; n];
        let mut acc = 1;
        for i in (0..s.len()).rev() {
            let o = n - s.len() + i;
            st[o] = if s[i] == 1 { 0 } else { acc };
            acc *= s[i];
        }
        st
    };
    // Sizes come from the file: checked before anything is allocated (two constants of
    // `[n, 1]` and `[1, n]` broadcast to `n²` values).
    if !crate::tensor::computed_fits(&out) {
        return None;
    }
    let total: usize = out.iter().product();
    // The common cases (equal shapes, one side a single value) without index arithmetic.
    if a.len() == total && b.len() == total {
        return Some((out, a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect()));
    }
    if let ([y], true) = (b, a.len() == total) {
        return Some((out, a.iter().map(|&x| f(x, *y)).collect()));
    }
    if let ([x], true) = (a, b.len() == total) {
        return Some((out, b.iter().map(|&y| f(*x, y)).collect()));
    }
    let (st_a, st_b) = (strides(sa), strides(sb));
    let mut res = Vec::with_capacity(total);
    let mut idx = vec![0usize; n];
    for _ in 0..total {
        let ia: usize = idx.iter().zip(&st_a).map(|(i, s)| i * s).sum();
        let ib: usize = idx.iter().zip(&st_b).map(|(i, s)| i * s).sum();
        res.push(f(a[ia], b[ib]));
        for ax in (0..n).rev() {
            idx[ax] += 1;
            if idx[ax] < out[ax] {
                break;
            }
            idx[ax] = 0;
        }
    }
    Some((out, res))
}

/// The float operations folding needs, so one generic function computes in f32 or f64.
trait Float:
    Copy
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::Neg<Output = Self>
{
    const ONE: Self;
    fn powf(self, o: Self) -> Self;
    fn floor(self) -> Self;
    fn max(self, o: Self) -> Self;
    fn min(self, o: Self) -> Self;
    fn sqrt(self) -> Self;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn abs(self) -> Self;
}

macro_rules! float_impl {
    ($t:ty) => {
        impl Float for $t {
            const ONE: Self = 1.0;
            fn powf(self, o: Self) -> Self {
                <$t>::powf(self, o)
            }
            fn floor(self) -> Self {
                <$t>::floor(self)
            }
            fn max(self, o: Self) -> Self {
                <$t>::max(self, o)
            }
            fn min(self, o: Self) -> Self {
                <$t>::min(self, o)
            }
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
        }
    };
}
float_impl!(f32);
float_impl!(f64);

fn bin<F: Float>(op: Bin, p: F, q: F) -> F {
    match op {
        Bin::Pow => p.powf(q),
        Bin::FloorDiv => (p / q).floor(),
        Bin::FloorMod => p - (p / q).floor() * q,
        Bin::Add => p + q,
        Bin::Sub => p - q,
        Bin::Mul => p * q,
        Bin::Div => p / q,
        Bin::Max => p.max(q),
        Bin::Min => p.min(q),
        Bin::SqDiff => (p - q) * (p - q),
    }
}

fn un<F: Float>(op: Un, p: F) -> F {
    match op {
        Un::Rsqrt => F::ONE / p.sqrt(),
        Un::Sqrt => p.sqrt(),
        Un::Square => p * p,
        Un::Exp => p.exp(),
        Un::Log => p.ln(),
        Un::Neg => -p,
        Un::Abs => p.abs(),
        Un::Recip => F::ONE / p,
    }
}

/// Integer division rounding toward negative infinity; 0 for division by zero (folding must
/// not trap on a hostile constant).
fn floor_div(p: i64, q: i64) -> i64 {
    match p.checked_div(q) {
        Some(d) if p % q != 0 && ((p < 0) != (q < 0)) => d - 1,
        Some(d) => d,
        None => 0,
    }
}

/// A constant's values to fold, and whether TF computes on them in f32: f32 constants, and
/// 16-bit float ones, whose kernels compute in f32 and round the result to the type once
/// (Eigen's `bfloat16(logf(float(a)))`), as folding then does.
fn math_values(t: &Tensor) -> Option<(Values, bool)> {
    match t.dtype {
        DType::F16 | DType::BF16 => Some((Values::F(t.to_f64()?), true)),
        d => Some((t.values()?, d == DType::F32)),
    }
}

/// Folds in the tensor's own precision, as TF computes (f32 constants in f32).
pub(super) fn fold_binary(inp: &OpInputs, op: Bin) -> Option<Folded> {
    let a = inp.consts.first().copied().flatten()?;
    let b = inp.consts.get(1).copied().flatten()?;
    if a.dtype != b.dtype {
        return None;
    }
    let ((x, f32_math), (y, _)) = (math_values(a)?, math_values(b)?);
    let (shape, values) = match (x, y) {
        (Values::F(x), Values::F(y)) => {
            let (shape, v) = broadcast_apply(&a.shape, &x, &b.shape, &y, |p, q| {
                if f32_math { f64::from(bin(op, p as f32, q as f32)) } else { bin(op, p, q) }
            })?;
            (shape, Values::F(v))
        }
        (Values::I(x), Values::I(y)) => {
            let (shape, v) = broadcast_apply(&a.shape, &x, &b.shape, &y, |p, q| match op {
                Bin::Add => p.wrapping_add(q),
                Bin::Sub => p.wrapping_sub(q),
                Bin::Mul => p.wrapping_mul(q),
                // Integer division truncates; division by zero folds to 0 rather than trapping.
                Bin::Div => p.checked_div(q).unwrap_or(0),
                Bin::Max => p.max(q),
                Bin::Min => p.min(q),
                Bin::SqDiff => (p - q).wrapping_mul(p - q),
                Bin::Pow => u32::try_from(q).map_or(0, |e| p.wrapping_pow(e)),
                Bin::FloorDiv => floor_div(p, q),
                Bin::FloorMod => p.wrapping_sub(floor_div(p, q).wrapping_mul(q)),
            })?;
            (shape, Values::I(v))
        }
        _ => return None,
    };
    Tensor::with_values_like(a.dtype, shape, &values).map(Folded::Tensor)
}

pub(super) fn fold_unary(inp: &OpInputs, op: Un) -> Option<Folded> {
    let a = inp.consts.first().copied().flatten()?;
    // A value trained in log space (CLIP's `exp(logit_scale)`, a policy's `exp(log_std)`)
    // or negated (Keras' PReLU, `-alpha * relu(-x)`): the parameter is what trains, so what
    // reads it computes from it. Other functions of a variable fold: such a variable is as
    // often a non-trainable setting (D-FINE's `up`).
    if matches!(op, Un::Exp | Un::Neg) && inp.reads_variable() {
        return None;
    }
    let (values, f32_math) = math_values(a)?;
    let v = match values {
        Values::F(x) => Values::F(
            x.into_iter()
                .map(|p| if f32_math { f64::from(un(op, p as f32)) } else { un(op, p) })
                .collect(),
        ),
        Values::I(x) => {
            let f = match op {
                Un::Neg => i64::wrapping_neg,
                Un::Abs => i64::wrapping_abs,
                Un::Square => |p: i64| p.wrapping_mul(p),
                _ => return None,
            };
            Values::I(x.into_iter().map(f).collect())
        }
    };
    Tensor::with_values_like(a.dtype, a.shape.clone(), &v).map(Folded::Tensor)
}

/// `Floor`, `Ceil`, `Round` of a constant (a size TF computes as `ceil(n / 512) * 512`):
/// exact in f64 for any f32 value; an integer is its own rounding.
pub(super) fn fold_rounding(inp: &OpInputs, round: fn(f64) -> f64) -> Option<Folded> {
    let a = inp.consts.first().copied().flatten()?;
    let v = match a.values()? {
        Values::F(x) => Values::F(x.into_iter().map(round).collect()),
        ints @ Values::I(_) => ints,
    };
    Tensor::with_values_like(a.dtype, a.shape.clone(), &v).map(Folded::Tensor)
}

/// `Sin`, `Cos` of a float constant (the Hann window `tf.signal.stft` builds from a range):
/// computed in f64 and rounded once to the constant's type, within an ulp of what TF's f32
/// kernel computes.
pub(super) fn fold_float_fn(inp: &OpInputs, f: fn(f64) -> f64) -> Option<Folded> {
    if inp.reads_variable() {
        return None;
    }
    let a = inp.consts.first().copied().flatten()?;
    let Values::F(x) = a.values()? else { return None };
    let v = Values::F(x.into_iter().map(f).collect());
    Tensor::with_values_like(a.dtype, a.shape.clone(), &v).map(Folded::Tensor)
}

/// `Select`/`SelectV2` of constants (a size or axis chosen by a constant condition, as
/// `tf.signal.linear_to_mel_weight_matrix` computes its own; Swin's attention mask, `-100`
/// where windows differ): one condition for both values, one per element, or (`SelectV2`)
/// condition and values broadcast as numpy does.
pub(super) fn fold_select(inp: &OpInputs) -> Option<Folded> {
    let c = inp.consts.first().copied().flatten()?;
    let cond = c.to_i64()?;
    let t = inp.consts.get(1).copied().flatten()?;
    let e = inp.consts.get(2).copied().flatten()?;
    if t.dtype != e.dtype {
        return None;
    }
    if let ([c], true) = (cond.as_slice(), t.shape == e.shape) {
        return Some(Folded::Tensor(if *c != 0 { t.clone() } else { e.clone() }));
    }
    // `Select` (v1) picks whole rows by a vector condition: only the elementwise case here.
    let elementwise = c.shape == t.shape && t.shape == e.shape;
    if inp.node.op != "SelectV2" && !elementwise {
        return None;
    }
    fn pick<T: Copy>(
        sc: &[usize],
        c: &[i64],
        st: &[usize],
        a: &[T],
        se: &[usize],
        b: &[T],
    ) -> Option<(Vec<usize>, Vec<T>)> {
        let (shape, pairs) = broadcast_apply(st, a, se, b, |x, y| (x, y))?;
        broadcast_apply(sc, c, &shape, &pairs, |c, (x, y)| if c != 0 { x } else { y })
    }
    let (shape, v) = match (t.values()?, e.values()?) {
        (Values::F(a), Values::F(b)) => {
            let (shape, v) = pick(&c.shape, &cond, &t.shape, &a, &e.shape, &b)?;
            (shape, Values::F(v))
        }
        (Values::I(a), Values::I(b)) => {
            let (shape, v) = pick(&c.shape, &cond, &t.shape, &a, &e.shape, &b)?;
            (shape, Values::I(v))
        }
        _ => return None,
    };
    Tensor::with_values_like(t.dtype, shape, &v).map(Folded::Tensor)
}
