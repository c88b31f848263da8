//! Fourier transforms and complex numbers → `torch.fft` and torch's complex dtypes, which
//! follow TF's definitions: TF's `fft_length` crops or zero-pads the transformed axes as
//! torch's `n` / `s` do, and an inverse real transform reads `fft_length // 2 + 1` entries.

use crate::ir::ValueInfo;
use crate::ops::contract::{Ctx, Layout, Lowered, OpResult};
use crate::ops::sizes::sizes;
use crate::ops::util::{broadcast_infer, same_as_input, torch_attr};
use crate::ops::{OpDef, OpInputs, op};
use crate::py::Expr;
use crate::tensor::DType;

pub const OPS: &[OpDef] = &[
    op("RFFT", |c| real_fft(c, 1, false)).infer(|i| real_fft_infer(i, 1, false)),
    op("RFFT2D", |c| real_fft(c, 2, false)).infer(|i| real_fft_infer(i, 2, false)),
    op("RFFT3D", |c| real_fft(c, 3, false)).infer(|i| real_fft_infer(i, 3, false)),
    op("IRFFT", |c| real_fft(c, 1, true)).infer(|i| real_fft_infer(i, 1, true)),
    op("IRFFT2D", |c| real_fft(c, 2, true)).infer(|i| real_fft_infer(i, 2, true)),
    op("IRFFT3D", |c| real_fft(c, 3, true)).infer(|i| real_fft_infer(i, 3, true)),
    op("FFT", |c| complex_fft(c, "fft", 1)).infer(same_as_input),
    op("FFT2D", |c| complex_fft(c, "fft2", 2)).infer(same_as_input),
    op("FFT3D", |c| complex_fft(c, "fftn", 3)).infer(same_as_input),
    op("IFFT", |c| complex_fft(c, "ifft", 1)).infer(same_as_input),
    op("IFFT2D", |c| complex_fft(c, "ifft2", 2)).infer(same_as_input),
    op("IFFT3D", |c| complex_fft(c, "ifftn", 3)).infer(same_as_input),
    op("ComplexAbs", |c| part(c, |x| x.method("abs", vec![]))).infer(real_infer),
    op("Real", |c| part(c, |x| x.attr("real"))).infer(real_infer),
    op("Imag", |c| part(c, |x| x.attr("imag"))).infer(real_infer),
    op("Angle", |c| part(c, |x| Expr::call("torch.angle", vec![x]))).infer(real_infer),
    // A physical conjugate: torch's lazy one is not readable by numpy.
    op("Conj", |c| part(c, |x| Expr::call("torch.conj_physical", vec![x]))).infer(same_as_input),
    op("Complex", complex).infer(complex_infer),
];

/// The last `axes` axes (`dim=(-3, -2, -1)`), for the n-dimensional functions.
fn last_axes(axes: usize) -> Expr {
    Expr::Tuple((1..=axes).rev().map(|k| Expr::int(-(k as i64))).collect())
}

/// `RFFT*` (`inverse`: `IRFFT*`): `torch.fft.rfft(x, n)`, `rfft2(x, s)`, `rfftn(x, s, dim)`.
fn real_fft(ctx: &mut Ctx, axes: usize, inverse: bool) -> OpResult<Lowered> {
    let lengths = sizes(ctx, 1)?;
    let x = ctx.input_tf(0)?;
    let name = match (axes, inverse) {
        (1, false) => "torch.fft.rfft",
        (2, false) => "torch.fft.rfft2",
        (_, false) => "torch.fft.rfftn",
        (1, true) => "torch.fft.irfft",
        (2, true) => "torch.fft.irfft2",
        (_, true) => "torch.fft.irfftn",
    };
    let mut kwargs = Vec::new();
    if axes == 1 {
        let n = match lengths {
            crate::ops::sizes::Sizes::Items(mut v) if v.len() == 1 => v.remove(0).expr,
            other => other.tuple().index(Expr::int(0)),
        };
        kwargs.push(("n", n));
    } else {
        kwargs.push(("s", lengths.tuple()));
        if axes == 3 {
            kwargs.push(("dim", last_axes(3)));
        }
    }
    let expr = Expr::call_kw(name, vec![x], kwargs);
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

fn real_fft_infer(inp: &OpInputs, axes: usize, inverse: bool) -> Option<Vec<ValueInfo>> {
    let mut shape = inp.infos.first()?.shape.clone()?;
    let lengths = inp.sizes(1).unwrap_or_else(|| vec![None; axes]);
    if shape.len() < axes || lengths.len() != axes {
        return None;
    }
    let first = shape.len() - axes;
    for (k, n) in lengths.iter().enumerate() {
        shape[first + k] = *n;
    }
    // The last axis: n // 2 + 1 complex values one way, n real values the other.
    if !inverse {
        shape[first + axes - 1] = lengths[axes - 1].map(|n| n / 2 + 1);
    }
    let attr = if inverse { "Treal" } else { "Tcomplex" };
    let default = if inverse { DType::F32 } else { DType::C64 };
    let dtype = inp.node.attr_type(attr).unwrap_or(default);
    Some(vec![ValueInfo { dtype: Some(dtype), shape: Some(shape) }])
}

/// `FFT*` / `IFFT*` of a complex tensor over its last axes.
fn complex_fft(ctx: &mut Ctx, func: &str, axes: usize) -> OpResult<Lowered> {
    let x = ctx.input_tf(0)?;
    let kwargs = if axes == 3 { vec![("dim", last_axes(3))] } else { Vec::new() };
    let expr = Expr::call_kw(&format!("torch.fft.{func}"), vec![x], kwargs);
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

/// A real part of a complex tensor (`abs`, `real`, ...).
fn part(ctx: &mut Ctx, f: fn(Expr) -> Expr) -> OpResult<Lowered> {
    let x = ctx.input_tf(0)?;
    Ok(Lowered::Expr { expr: f(x), layout: Layout::Tf })
}

/// Same shape, the real dtype of the complex input (`Tout`).
fn real_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let x = inp.infos.first()?;
    let dtype = inp.node.attr_type("Tout").ok().or(match x.dtype {
        Some(DType::C128) => Some(DType::F64),
        _ => Some(DType::F32),
    });
    Some(vec![ValueInfo { dtype, shape: x.shape.clone() }])
}

/// `Complex(real, imag)` → `torch.complex(real, imag)` (both broadcast, as in TF). A
/// constant scalar part (`mfccs_from_log_mel_spectrograms`' zero real part) is written as a
/// literal, which `torch.complex` does not take: it becomes a tensor like the other part;
/// two are one complex number (a filter's constant gain, `tf.complex(0.5, -0.25)`):
/// `torch.tensor(complex(0.5, -0.25), dtype=torch.complex64)`.
fn complex(ctx: &mut Ctx) -> OpResult<Lowered> {
    let (re, im) = (ctx.input_tf(0)?, ctx.input_tf(1)?);
    let scalar = |i: usize| ctx.is_const(i) && ctx.const_input(i).is_ok_and(|t| t.numel() == 1);
    if scalar(0) && scalar(1) && re.is_literal() && im.is_literal() {
        let dtype = ctx.node().attr_type("Tout").unwrap_or(DType::C64);
        let dtype = dtype.torch_name().ok_or("a complex dtype torch has no name for")?;
        let number = Expr::call("complex", vec![re, im]);
        let expr = Expr::call_kw("torch.tensor", vec![number], vec![("dtype", torch_attr(dtype))]);
        return Ok(Lowered::Expr { expr, layout: Layout::Tf });
    }
    let like = |part: Expr, other: &Expr| Expr::call("torch.full_like", vec![other.clone(), part]);
    let (re, im) = match (scalar(0), scalar(1)) {
        (true, false) => (like(re, &im), im),
        (false, true) => (re.clone(), like(im, &re)),
        _ => (re, im),
    };
    Ok(Lowered::Expr { expr: Expr::call("torch.complex", vec![re, im]), layout: Layout::Tf })
}

fn complex_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let mut v = broadcast_infer(inp)?;
    let dtype = inp.node.attr_type("Tout").unwrap_or(DType::C64);
    v[0].dtype = Some(dtype);
    Some(v)
}
