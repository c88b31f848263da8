//! The geometry of window ops (convolutions, pooling) at any spatial rank: 1 (`[N, W, C]`),
//! 2 (NHWC) or 3 (NDHWC). Attributes are TF's, channels-last and one entry per axis
//! (`strides=[1, s, 1]` in 1-D); padding is TF's SAME, VALID or EXPLICIT rule per spatial axis
//! (tf-formats.md §4.1).

use crate::ir::{Node, Shape};
use crate::ops::contract::{Ctx, OpResult};
use crate::py::Expr;

/// Kernel, strides, dilations and `(before, after)` padding per spatial axis.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    pub kernel: Vec<i64>,
    pub strides: Vec<i64>,
    pub dilations: Vec<i64>,
    /// Per axis `(before, after)`; all zero when [`same_at_run_time`](Self::same_at_run_time).
    pub pads: Vec<(i64, i64)>,
    /// TF's SAME padding on a strided axis whose size is only known at run time: the pads
    /// are computed there (`pad_same`), and the layer itself pads nothing.
    pub same_at_run_time: bool,
}

/// TF's channels-last data formats by spatial rank.
pub fn require_channels_last(node: &Node, spatial: usize) -> OpResult<()> {
    let want = ["NWC", "NHWC", "NDHWC"][spatial.clamp(1, 3) - 1];
    let df = node.attr_str_or("data_format", want)?;
    // Keras' 1-D ops are 2-D ops on a unit axis: their nodes still say NHWC.
    if df == want || (spatial == 1 && df == "NHWC") {
        Ok(())
    } else {
        Err(format!("data_format {df} is not supported").into())
    }
}

/// A per-axis attribute (`strides`, `ksize`, `dilations`): `[1, a, b, 1]` → `[a, b]`, each
/// entry positive and at most i32::MAX (what TF accepts).
pub fn spatial_attr(node: &Node, attr: &str, spatial: usize, default: bool) -> OpResult<Vec<i64>> {
    let v = match default {
        true => node.attr_ints_or(attr, &vec![1; spatial + 2])?,
        false => node.attr_ints(attr)?,
    };
    let ok = v.len() == spatial + 2
        && v[0] == 1
        && v[spatial + 1] == 1
        && v[1..=spatial].iter().all(|&x| (1..=i32::MAX as i64).contains(&x));
    if !ok {
        return Err(
            format!("unsupported {attr} {v:?} (need 1, {spatial} positive sizes, 1)").into()
        );
    }
    Ok(v[1..=spatial].to_vec())
}

/// TF's SAME padding for one spatial dim: `(before, after)`.
pub fn same_pads(n: i64, k: i64, s: i64, d: i64) -> (i64, i64) {
    let k_eff = (k - 1) * d + 1;
    let out = (n + s - 1) / s;
    let total = ((out - 1) * s + k_eff - n).max(0);
    (total / 2, total - total / 2)
}

/// Output size of a VALID window.
pub fn valid_out(n: i64, k: i64, s: i64, d: i64) -> i64 {
    let k_eff = (k - 1) * d + 1;
    ((n - k_eff + 1).max(0) + s - 1) / s
}

impl Window {
    /// The geometry of `node` on an input of `shape` (channels-last), its kernel sizes given.
    pub fn of(node: &Node, shape: &Shape, kernel: Vec<i64>, dilated: bool) -> OpResult<Window> {
        let spatial = kernel.len();
        let dilations = if dilated {
            spatial_attr(node, "dilations", spatial, true)?
        } else {
            vec![1; spatial]
        };
        Window::dilated(node, shape, kernel, dilations)
    }

    /// [`Window::of`] with the dilations given (an op may call them otherwise: `rates`).
    pub fn dilated(
        node: &Node,
        shape: &Shape,
        kernel: Vec<i64>,
        dilations: Vec<i64>,
    ) -> OpResult<Window> {
        let spatial = kernel.len();
        let strides = spatial_attr(node, "strides", spatial, false)?;
        let sizes: Vec<Option<usize>> = match shape {
            Some(s) if s.len() == spatial + 2 => s[1..=spatial].to_vec(),
            _ => vec![None; spatial],
        };
        let padding = node.attr_str("padding")?;
        let mut same_at_run_time = false;
        let pads = match padding.as_str() {
            "VALID" => vec![(0, 0); spatial],
            "SAME" => {
                let pads: Option<Vec<_>> = (0..spatial)
                    .map(|a| match (sizes[a], strides[a]) {
                        // With stride 1 the pads do not depend on the input size.
                        (_, 1) => Some(same_pads(kernel[a], kernel[a], 1, dilations[a])),
                        (Some(n), s) => Some(same_pads(n as i64, kernel[a], s, dilations[a])),
                        (None, _) => None,
                    })
                    .collect();
                same_at_run_time = pads.is_none();
                pads.unwrap_or_else(|| vec![(0, 0); spatial])
            }
            "EXPLICIT" => {
                let p = node.attr_ints("explicit_paddings")?;
                let fits = p.len() == 2 * (spatial + 2)
                    && p[..2] == [0, 0]
                    && p[p.len() - 2..] == [0, 0]
                    && p.iter().all(|&x| (0..=i32::MAX as i64).contains(&x));
                if !fits {
                    return Err(format!("unsupported explicit_paddings {p:?}").into());
                }
                (1..=spatial).map(|a| (p[2 * a], p[2 * a + 1])).collect()
            }
            other => return Err(format!("unknown padding {other:?}").into()),
        };
        Ok(Window { kernel, strides, dilations, pads, same_at_run_time })
    }

    /// Output sizes for input sizes `sizes` (`None` unknown).
    pub fn out_sizes(&self, sizes: &[Option<usize>]) -> Vec<Option<usize>> {
        sizes
            .iter()
            .enumerate()
            .map(|(a, n)| {
                let (b, e) = self.pads[a];
                let n = i64::try_from((*n)?).ok()?;
                if self.same_at_run_time {
                    return usize::try_from((n + self.strides[a] - 1) / self.strides[a]).ok();
                }
                let n = n.checked_add(b)?.checked_add(e)?;
                usize::try_from(valid_out(n, self.kernel[a], self.strides[a], self.dilations[a]))
                    .ok()
            })
            .collect()
    }

    /// The same padding on both sides of every axis: what torch layers take as `padding`.
    pub fn symmetric(&self) -> Option<Vec<i64>> {
        if self.same_at_run_time {
            return None;
        }
        self.pads.iter().map(|&(b, a)| (b == a).then_some(b)).collect()
    }

    /// `x` (channels first) padded as the window needs before a layer that pads nothing:
    /// `F.pad` with the static pads, or `pad_same(...)` (templates/pad_same.py) when they are
    /// computed at run time; `x` itself where they are all zero ('VALID' patches). `value`
    /// fills the border (`-inf` for max pooling).
    pub fn padded(&self, ctx: &mut Ctx, x: Expr, value: Option<Expr>) -> Expr {
        if !self.same_at_run_time {
            if self.pads.iter().all(|&p| p == (0, 0)) {
                return x;
            }
            return f_pad(x, &self.pads, value);
        }
        ctx.require_class("pad_same", include_str!("../../templates/pad_same.py"));
        let mut args = vec![x, per_axis(&self.kernel), per_axis(&self.strides)];
        if self.dilations.iter().any(|&d| d != 1) {
            args.push(per_axis(&self.dilations));
        }
        let kwargs = value.map(|v| vec![("value", v)]).unwrap_or_default();
        Expr::call_kw("pad_same", args, kwargs)
    }
}

/// `3` when every entry is 3, else `(3, 5)`: how torch layers take per-axis sizes.
pub fn dims(v: &[i64]) -> Expr {
    match v {
        [first, rest @ ..] if rest.iter().all(|x| x == first) => Expr::int(*first),
        _ => Expr::ints(v),
    }
}

/// One int per spatial axis, as a tuple even when they are equal (`(1, 1)`): what the helper
/// functions take.
pub fn per_axis(v: &[i64]) -> Expr {
    Expr::Tuple(v.iter().map(|&i| Expr::int(i)).collect())
}

/// `F.pad(x, ...)` for per-axis `(before, after)` pads of a channels-first value (torch lists
/// the last axis first).
pub fn f_pad(x: Expr, pads: &[(i64, i64)], value: Option<Expr>) -> Expr {
    let flat: Vec<i64> = pads.iter().rev().flat_map(|&(b, a)| [b, a]).collect();
    let kwargs = value.map(|v| vec![("value", v)]).unwrap_or_default();
    Expr::call_kw("F.pad", vec![x, Expr::ints(&flat)], kwargs)
}

/// `nn.Conv2d`, `nn.MaxPool1d`, ...: `stem` with the spatial rank.
pub fn layer(stem: &str, spatial: usize) -> String {
    format!("nn.{stem}{spatial}d")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_puts_the_odd_pixel_last() {
        assert_eq!(same_pads(224, 3, 2, 1), (0, 1));
        assert_eq!(same_pads(225, 3, 2, 1), (1, 1));
        assert_eq!(same_pads(10, 3, 1, 2), (2, 2));
    }

    #[test]
    fn per_axis_sizes_print_once_when_equal() {
        let p = |e: Expr| crate::py::printer::flat(&e);
        assert_eq!(p(dims(&[3, 3, 3])), "3");
        assert_eq!(p(dims(&[1, 3])), "(1, 3)");
        assert_eq!(p(f_pad(Expr::name("x"), &[(0, 1), (2, 3)], None)), "F.pad(x, (2, 3, 0, 1))");
    }
}
