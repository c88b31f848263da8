//! Constant tensors: dtype, shape and little-endian row-major bytes.
//!
//! Data is held in `bytes::Bytes` so that large weights decoded from a memory-mapped file are
//! slices of that file, not copies. Typed views (`to_f32`, `to_i64`, ...) copy and are meant for
//! the small tensors that constant folding works on.

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::proto::{TensorProto, TensorShapeProto};

/// Largest tensor we agree to hold (bytes).
pub const MAX_TENSOR_BYTES: usize = 1 << 32;

/// Largest tensor we expand from a proto's typed values (bytes). TF repeats the last value
/// to fill the shape, so a few bytes of file can declare gigabytes; a one-value constant
/// larger than this stays a fill (see [`Tensor::splat_of`]), anything else is refused.
pub const MAX_EXPANDED_BYTES: usize = 1 << 20;

/// Largest tensor the converter computes itself (interpolation matrices, pooling counts,
/// gather indices), in elements of 4 bytes: sizes come from the file, so they are checked
/// before anything is allocated.
pub const MAX_COMPUTED_ELEMENTS: usize = 1 << 24;

/// Whether a computed tensor of these dimensions stays under [`MAX_COMPUTED_ELEMENTS`].
pub fn computed_fits(dims: &[usize]) -> bool {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .is_some_and(|n| n <= MAX_COMPUTED_ELEMENTS)
}

/// TensorFlow element types we know how to carry (`types.proto`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DType {
    F32,
    F64,
    F16,
    BF16,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    Bool,
    /// Complex numbers: float32 (float64) real and imaginary parts, interleaved.
    C64,
    C128,
    String,
    Resource,
    Variant,
}

impl DType {
    /// Maps a TF `DataType` number (reference types included) to a dtype.
    pub fn from_tf(code: i32) -> Option<DType> {
        let code = if code > 100 { code - 100 } else { code };
        Some(match code {
            1 => DType::F32,
            2 => DType::F64,
            3 => DType::I32,
            4 => DType::U8,
            5 => DType::I16,
            6 => DType::I8,
            7 => DType::String,
            8 => DType::C64,
            18 => DType::C128,
            9 => DType::I64,
            10 => DType::Bool,
            14 => DType::BF16,
            17 => DType::U16,
            19 => DType::F16,
            20 => DType::Resource,
            21 => DType::Variant,
            22 => DType::U32,
            23 => DType::U64,
            _ => return None,
        })
    }

    /// The TF `DataType` number of this dtype (the inverse of [`DType::from_tf`]).
    pub fn to_tf(self) -> i32 {
        match self {
            DType::F32 => 1,
            DType::F64 => 2,
            DType::I32 => 3,
            DType::U8 => 4,
            DType::I16 => 5,
            DType::I8 => 6,
            DType::String => 7,
            DType::C64 => 8,
            DType::I64 => 9,
            DType::Bool => 10,
            DType::BF16 => 14,
            DType::U16 => 17,
            DType::C128 => 18,
            DType::F16 => 19,
            DType::Resource => 20,
            DType::Variant => 21,
            DType::U32 => 22,
            DType::U64 => 23,
        }
    }

    /// Bytes per element; `None` for types without a fixed size.
    pub fn size(self) -> Option<usize> {
        Some(match self {
            DType::C128 => 16,
            DType::F64 | DType::I64 | DType::U64 | DType::C64 => 8,
            DType::F32 | DType::I32 | DType::U32 => 4,
            DType::F16 | DType::BF16 | DType::I16 | DType::U16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
            DType::String | DType::Resource | DType::Variant => return None,
        })
    }

    /// The `torch.<dtype>` attribute name.
    pub fn torch_name(self) -> Option<&'static str> {
        Some(match self {
            DType::F32 => "float32",
            DType::F64 => "float64",
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::I8 => "int8",
            DType::I16 => "int16",
            DType::I32 => "int32",
            DType::I64 => "int64",
            DType::U8 => "uint8",
            DType::U16 => "uint16",
            DType::U32 => "uint32",
            DType::U64 => "uint64",
            DType::Bool => "bool",
            DType::C64 => "complex64",
            DType::C128 => "complex128",
            _ => return None,
        })
    }

    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64 | DType::F16 | DType::BF16)
    }

    pub fn is_complex(self) -> bool {
        matches!(self, DType::C64 | DType::C128)
    }

    pub fn is_int(self) -> bool {
        matches!(
            self,
            DType::I8
                | DType::I16
                | DType::I32
                | DType::I64
                | DType::U8
                | DType::U16
                | DType::U32
                | DType::U64
        )
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.torch_name() {
            Some(n) => f.write_str(n),
            None => write!(f, "{self:?}").map(|_| ()),
        }
    }
}

/// A dense constant tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub dtype: DType,
    pub shape: Vec<usize>,
    /// Little-endian, row-major; `numel * dtype.size()` bytes.
    pub data: Bytes,
}

/// Number of elements of `shape`, or `None` on overflow.
pub fn checked_numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

impl Tensor {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// Builds a tensor from typed values; panics never: lengths are the caller's invariant and
    /// are checked in debug builds.
    pub fn from_f32(shape: Vec<usize>, v: &[f32]) -> Tensor {
        debug_assert_eq!(checked_numel(&shape), Some(v.len()));
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        Tensor { dtype: DType::F32, shape, data: Bytes::from(bytes) }
    }

    pub fn from_f64(shape: Vec<usize>, v: &[f64]) -> Tensor {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        Tensor { dtype: DType::F64, shape, data: Bytes::from(bytes) }
    }

    /// A 16-bit float tensor (`F16` or `BF16`) from its values' bytes.
    fn from_halves(dtype: DType, shape: Vec<usize>, v: impl Iterator<Item = [u8; 2]>) -> Tensor {
        Tensor { dtype, shape, data: Bytes::from(v.flatten().collect::<Vec<u8>>()) }
    }

    pub fn from_i32(shape: Vec<usize>, v: &[i32]) -> Tensor {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        Tensor { dtype: DType::I32, shape, data: Bytes::from(bytes) }
    }

    pub fn from_i64(shape: Vec<usize>, v: &[i64]) -> Tensor {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        Tensor { dtype: DType::I64, shape, data: Bytes::from(bytes) }
    }

    pub fn from_bool(shape: Vec<usize>, v: &[bool]) -> Tensor {
        let bytes: Vec<u8> = v.iter().map(|&b| b as u8).collect();
        Tensor { dtype: DType::Bool, shape, data: Bytes::from(bytes) }
    }

    /// Integer values of an integer tensor, widened to i64.
    pub fn to_i64(&self) -> Option<Vec<i64>> {
        let d = &self.data;
        Some(match self.dtype {
            DType::I32 => d
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as i64)
                .collect(),
            DType::I64 => {
                d.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect()
            }
            DType::I16 => d
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes(c.try_into().unwrap()) as i64)
                .collect(),
            DType::U16 => d
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes(c.try_into().unwrap()) as i64)
                .collect(),
            DType::U32 => d
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes(c.try_into().unwrap()) as i64)
                .collect(),
            DType::I8 => d.iter().map(|&b| b as i8 as i64).collect(),
            DType::U8 | DType::Bool => d.iter().map(|&b| b as i64).collect(),
            _ => return None,
        })
    }

    /// Values of a float tensor as f64 (exact for f32/f16/bf16).
    pub fn to_f64(&self) -> Option<Vec<f64>> {
        let d = &self.data;
        Some(match self.dtype {
            DType::F32 => d
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
                .collect(),
            DType::F64 => {
                d.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect()
            }
            // Mixed-precision models keep their constants (Gelu's, a norm's epsilon) in these.
            DType::F16 => {
                d.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f64()).collect()
            }
            DType::BF16 => d
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f64())
                .collect(),
            _ => {
                return self.to_i64().map(|v| v.into_iter().map(|x| x as f64).collect());
            }
        })
    }

    pub fn to_f32(&self) -> Option<Vec<f32>> {
        match self.dtype {
            DType::F32 => Some(
                self.data
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
            ),
            _ => self.to_f64().map(|v| v.into_iter().map(|x| x as f32).collect()),
        }
    }

    /// A tensor of `dims` holding this tensor's first value everywhere (a constant fill),
    /// if it takes at most [`MAX_EXPANDED_BYTES`]: a larger one stays `torch.full`.
    pub fn filled(&self, dims: Vec<usize>) -> Option<Tensor> {
        let n = checked_numel(&dims).filter(|&n| {
            n.saturating_mul(self.dtype.size().unwrap_or(usize::MAX)) <= MAX_EXPANDED_BYTES
        })?;
        let values = match self.values()? {
            Values::F(f) => Values::F(vec![*f.first()?; n]),
            Values::I(i) => Values::I(vec![*i.first()?; n]),
        };
        Tensor::with_values_like(self.dtype, dims, &values)
    }

    /// The values of a float vector (other axes of size 1) of at least `min` elements.
    pub fn vector_values(&self, min: usize) -> Option<Vec<f64>> {
        if !self.dtype.is_float() || self.shape.iter().filter(|&&d| d != 1).count() != 1 {
            return None;
        }
        self.to_f64().filter(|v| v.len() >= min)
    }

    /// Whether this is a float vector (other axes of size 1) of at least `min` elements
    /// falling from 1 by a constant ratio, as a rotary or sinusoid embedding's inverse
    /// frequencies `base^(-2i/d)` do.
    pub fn falls_from_one(&self, min: usize) -> bool {
        let Some(v) = self.vector_values(min) else { return false };
        if v[0] != 1.0 {
            return false;
        }
        let ratio = v[1];
        (0.0..1.0).contains(&ratio)
            && ratio > 0.0
            && v.iter().enumerate().all(|(i, &x)| {
                let want = ratio.powi(i as i32);
                (x - want).abs() <= 1e-5 * want.max(1e-30) + 1e-12
            })
    }

    /// The one value every element of a non-empty tensor of rank one or more holds, as a
    /// scalar of its dtype: what `torch.full(shape, value)` makes. Compared bit for bit, so
    /// `-0.0` and `0.0` (or two NaNs of different payloads) are not one value.
    pub fn splat_value(&self) -> Option<Tensor> {
        let size = self.dtype.size().filter(|&s| s > 0)?;
        if self.rank() == 0
            || self.numel() == 0
            || self.data.len() != self.numel().checked_mul(size)?
        {
            return None;
        }
        let mut elements = self.data.chunks_exact(size);
        let first = elements.next()?;
        elements.all(|e| e == first).then(|| Tensor {
            dtype: self.dtype,
            shape: vec![],
            data: Bytes::copy_from_slice(first),
        })
    }

    /// A tensor of the same dtype holding `values` (given as f64/i64 by the caller's dtype).
    pub fn with_values_like(dtype: DType, shape: Vec<usize>, values: &Values) -> Option<Tensor> {
        Some(match (dtype, values) {
            (DType::F32, Values::F(v)) => {
                Tensor::from_f32(shape, &v.iter().map(|&x| x as f32).collect::<Vec<_>>())
            }
            (DType::F64, Values::F(v)) => Tensor::from_f64(shape, v),
            // Rounded to nearest even, as TF casts.
            (DType::F16, Values::F(v)) => Tensor::from_halves(
                DType::F16,
                shape,
                v.iter().map(|&x| half::f16::from_f64(x).to_le_bytes()),
            ),
            (DType::BF16, Values::F(v)) => Tensor::from_halves(
                DType::BF16,
                shape,
                v.iter().map(|&x| half::bf16::from_f64(x).to_le_bytes()),
            ),
            (DType::I32, Values::I(v)) => {
                Tensor::from_i32(shape, &v.iter().map(|&x| x as i32).collect::<Vec<_>>())
            }
            (DType::I64, Values::I(v)) => Tensor::from_i64(shape, v),
            // Narrowed as TF casts integers: modulo the type's range (two's complement).
            (DType::I8 | DType::U8, Values::I(v)) => Tensor {
                dtype,
                shape,
                data: Bytes::from(v.iter().map(|&x| x as u8).collect::<Vec<u8>>()),
            },
            (DType::I16 | DType::U16, Values::I(v)) => {
                let bytes: Vec<u8> = v.iter().flat_map(|&x| (x as u16).to_le_bytes()).collect();
                Tensor { dtype, shape, data: Bytes::from(bytes) }
            }
            (DType::U32, Values::I(v)) => {
                let bytes: Vec<u8> = v.iter().flat_map(|&x| (x as u32).to_le_bytes()).collect();
                Tensor { dtype, shape, data: Bytes::from(bytes) }
            }
            (DType::Bool, Values::I(v)) => {
                Tensor::from_bool(shape, &v.iter().map(|&x| x != 0).collect::<Vec<_>>())
            }
            _ => return None,
        })
    }

    /// Values as the folding engine sees them.
    pub fn values(&self) -> Option<Values> {
        if self.dtype.is_float() {
            if matches!(self.dtype, DType::F16 | DType::BF16) {
                return None;
            }
            self.to_f64().map(Values::F)
        } else {
            self.to_i64().map(Values::I)
        }
    }

    /// Reorders axes: output axis `i` is input axis `perm[i]`.
    pub fn permute(&self, perm: &[usize]) -> Tensor {
        debug_assert_eq!(perm.len(), self.rank());
        let new_shape: Vec<usize> = perm.iter().map(|&p| self.shape[p]).collect();
        let p = crate::permute::Permutation::new(&self.shape, perm, self.dtype.size().unwrap_or(1));
        let mut data = vec![0u8; p.bytes()];
        // A tensor's bytes always match its shape; a mismatch would leave zeros, not panic.
        let _ = p.write_rows(&self.data, 0..p.rows(), &mut data);
        Tensor { dtype: self.dtype, shape: new_shape, data: Bytes::from(data) }
    }

    /// Same data, another shape of equal element count.
    pub fn reshaped(&self, shape: Vec<usize>) -> Tensor {
        debug_assert_eq!(checked_numel(&shape), Some(self.numel()));
        Tensor { dtype: self.dtype, shape, data: self.data.clone() }
    }

    /// Elements `start..start + len` along `axis` (same rank).
    pub fn slice_axis(&self, axis: usize, start: usize, len: usize) -> Option<Tensor> {
        let dim = *self.shape.get(axis)?;
        if start.checked_add(len)? > dim {
            return None;
        }
        let outer: usize = self.shape[..axis].iter().product();
        let inner: usize = self.shape[axis + 1..].iter().product();
        fn pick<T: Copy>(
            v: &[T],
            outer: usize,
            dim: usize,
            start: usize,
            len: usize,
            inner: usize,
        ) -> Vec<T> {
            (0..outer)
                .flat_map(|o| {
                    let base = (o * dim + start) * inner;
                    v[base..base + len * inner].iter().copied()
                })
                .collect()
        }
        let values = match self.values()? {
            Values::F(f) => Values::F(pick(&f, outer, dim, start, len, inner)),
            Values::I(i) => Values::I(pick(&i, outer, dim, start, len, inner)),
        };
        let mut shape = self.shape.clone();
        shape[axis] = len;
        Tensor::with_values_like(self.dtype, shape, &values)
    }

    /// The single value of a one-element tensor, as f64.
    pub fn scalar_f64(&self) -> Option<f64> {
        if self.numel() != 1 {
            return None;
        }
        self.to_f64().and_then(|v| v.first().copied())
    }

    /// A proto that declares one value (or none: zeros) for a larger shape, TF's way of writing
    /// a fill: `(shape, the value as a scalar)`. Such constants are kept as `Fill`s rather than
    /// expanded, whatever their size.
    pub fn splat_of(p: &TensorProto) -> Result<Option<(Vec<usize>, Tensor)>> {
        let Some(dtype) = DType::from_tf(p.dtype) else { return Ok(None) };
        if !p.tensor_content.is_empty() || dtype.size().is_none() || typed_len(p, dtype) > 1 {
            return Ok(None);
        }
        let shape = shape_from_proto(p.tensor_shape.as_ref())?
            .into_iter()
            .map(|d| d.ok_or_else(|| Error::msg("constant tensor with an unknown dimension")))
            .collect::<Result<Vec<usize>>>()?;
        let numel = checked_numel(&shape).ok_or_else(|| Error::msg("tensor shape overflows"))?;
        if numel <= 1 {
            return Ok(None);
        }
        let mut one = p.clone();
        one.tensor_shape = None;
        Ok(Some((shape, Tensor::from_proto(&one)?)))
    }

    /// Decodes a `TensorProto` with TF's rules (tf-formats.md §1): `tensor_content` when present,
    /// otherwise the typed field, with the last value repeated to fill the shape.
    pub fn from_proto(p: &TensorProto) -> Result<Tensor> {
        let dtype = DType::from_tf(p.dtype)
            .ok_or_else(|| Error::msg(format!("unsupported tensor dtype {}", p.dtype)))?;
        let shape = shape_from_proto(p.tensor_shape.as_ref())?
            .into_iter()
            .map(|d| d.ok_or_else(|| Error::msg("constant tensor with an unknown dimension")))
            .collect::<Result<Vec<usize>>>()?;
        let numel = checked_numel(&shape).ok_or_else(|| Error::msg("tensor shape overflows"))?;
        let Some(esize) = dtype.size() else {
            // Strings and handles are kept as an empty payload: they never become weights.
            return Ok(Tensor { dtype, shape, data: Bytes::new() });
        };
        let nbytes = numel
            .checked_mul(esize)
            .filter(|&n| n <= MAX_TENSOR_BYTES)
            .ok_or_else(|| Error::msg(format!("tensor of shape {shape:?} is too large")))?;
        if !p.tensor_content.is_empty() {
            if p.tensor_content.len() != nbytes {
                return Err(Error::msg(format!(
                    "tensor_content has {} bytes, shape {:?} of {} needs {}",
                    p.tensor_content.len(),
                    shape,
                    dtype,
                    nbytes
                )));
            }
            return Ok(Tensor { dtype, shape, data: p.tensor_content.clone() });
        }
        if typed_len(p, dtype) < numel && nbytes > MAX_EXPANDED_BYTES {
            return Err(Error::msg(format!(
                "tensor of shape {shape:?} from {} value(s) would expand to {nbytes} bytes",
                typed_len(p, dtype)
            )));
        }
        let bytes: Vec<u8> = match dtype {
            DType::F32 => splat(&p.float_val, numel, |x| x.to_le_bytes().to_vec()),
            DType::F64 => splat(&p.double_val, numel, |x| x.to_le_bytes().to_vec()),
            DType::I32 => splat(&p.int_val, numel, |x| x.to_le_bytes().to_vec()),
            DType::I16 | DType::U16 => {
                splat(&p.int_val, numel, |x| (x as u16).to_le_bytes().to_vec())
            }
            DType::I8 | DType::U8 => splat(&p.int_val, numel, |x| vec![x as u8]),
            DType::I64 => splat(&p.int64_val, numel, |x| x.to_le_bytes().to_vec()),
            DType::Bool => splat(&p.bool_val, numel, |x| vec![x as u8]),
            DType::F16 | DType::BF16 => {
                splat(&p.half_val, numel, |x| (x as u16).to_le_bytes().to_vec())
            }
            DType::U32 => splat(&p.uint32_val, numel, |x| x.to_le_bytes().to_vec()),
            DType::U64 => splat(&p.uint64_val, numel, |x| x.to_le_bytes().to_vec()),
            // (real, imaginary) pairs.
            DType::C64 => splat(&pairs(&p.scomplex_val), numel, |(re, im): (f32, f32)| {
                [re.to_le_bytes(), im.to_le_bytes()].concat()
            }),
            DType::C128 => splat(&pairs(&p.dcomplex_val), numel, |(re, im): (f64, f64)| {
                [re.to_le_bytes(), im.to_le_bytes()].concat()
            }),
            DType::String | DType::Resource | DType::Variant => Vec::new(),
        };
        Ok(Tensor { dtype, shape, data: Bytes::from(bytes) })
    }
}

/// Values widened for the folding engine.
#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    F(Vec<f64>),
    I(Vec<i64>),
}

/// TF's fill rule for typed fields: none → zeros, fewer → repeat the last value.
fn splat<T: Copy + Default>(vals: &[T], numel: usize, enc: impl Fn(T) -> Vec<u8>) -> Vec<u8> {
    let mut out = Vec::new();
    for v in vals.iter().take(numel) {
        out.extend(enc(*v));
    }
    let last = enc(vals.last().copied().unwrap_or_default());
    for _ in vals.len().min(numel)..numel {
        out.extend_from_slice(&last);
    }
    out
}

/// How many typed values a proto of `dtype` holds.
fn typed_len(p: &TensorProto, dtype: DType) -> usize {
    match dtype {
        DType::F32 => p.float_val.len(),
        DType::F64 => p.double_val.len(),
        DType::I32 | DType::I16 | DType::U16 | DType::I8 | DType::U8 => p.int_val.len(),
        DType::I64 => p.int64_val.len(),
        DType::Bool => p.bool_val.len(),
        DType::F16 | DType::BF16 => p.half_val.len(),
        DType::U32 => p.uint32_val.len(),
        DType::U64 => p.uint64_val.len(),
        DType::C64 => p.scomplex_val.len() / 2,
        DType::C128 => p.dcomplex_val.len() / 2,
        DType::String | DType::Resource | DType::Variant => 0,
    }
}

/// Consecutive (real, imaginary) pairs.
fn pairs<T: Copy>(v: &[T]) -> Vec<(T, T)> {
    v.chunks_exact(2).map(|c| (c[0], c[1])).collect()
}

/// A TF shape: `None` per unknown dim. `Ok(None)` never: unknown rank is reported by callers
/// through `Option<Vec<..>>` where they need it.
pub fn shape_from_proto(p: Option<&TensorShapeProto>) -> Result<Vec<Option<usize>>> {
    let Some(p) = p else { return Ok(Vec::new()) };
    p.dim
        .iter()
        .map(|d| match d.size {
            -1 => Ok(None),
            s if s >= 0 => Ok(Some(s as usize)),
            s => Err(Error::msg(format!("invalid dimension size {s}"))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proto_f32(vals: &[f32], shape: &[i64]) -> TensorProto {
        TensorProto {
            dtype: 1,
            tensor_shape: Some(TensorShapeProto {
                dim: shape
                    .iter()
                    .map(|&s| crate::proto::tensor_shape_proto::Dim { size: s })
                    .collect(),
                unknown_rank: false,
            }),
            float_val: vals.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn splat_repeats_last_value() {
        let t = Tensor::from_proto(&proto_f32(&[1.0, 2.0], &[5])).unwrap();
        assert_eq!(t.to_f32().unwrap(), vec![1.0, 2.0, 2.0, 2.0, 2.0]);
    }

    #[test]
    fn empty_typed_field_is_zeros() {
        let t = Tensor::from_proto(&proto_f32(&[], &[3])).unwrap();
        assert_eq!(t.to_f32().unwrap(), vec![0.0; 3]);
    }

    #[test]
    fn extra_values_are_ignored() {
        let t = Tensor::from_proto(&proto_f32(&[1.0, 2.0, 3.0, 4.0], &[2])).unwrap();
        assert_eq!(t.to_f32().unwrap(), vec![1.0, 2.0]);
    }

    #[test]
    fn huge_splat_is_refused_before_allocating() {
        let err = Tensor::from_proto(&proto_f32(&[1.0], &[1 << 20, 1 << 20])).unwrap_err();
        assert!(err.to_string().contains("too large"), "{err}");
        let err = Tensor::from_proto(&proto_f32(&[1.0, 2.0], &[1 << 28])).unwrap_err();
        assert!(err.to_string().contains("would expand"), "{err}");
    }

    #[test]
    fn one_value_for_a_larger_shape_is_a_splat() {
        let (shape, v) = Tensor::splat_of(&proto_f32(&[2.5], &[1 << 28])).unwrap().unwrap();
        assert_eq!((shape, v.shape.clone(), v.to_f32()), (vec![1 << 28], vec![], Some(vec![2.5])));
        assert!(Tensor::splat_of(&proto_f32(&[1.0, 2.0], &[4])).unwrap().is_none());
        assert!(Tensor::splat_of(&proto_f32(&[1.0], &[1])).unwrap().is_none());
    }

    #[test]
    fn short_tensor_content_is_an_error() {
        let mut p = proto_f32(&[], &[4]);
        p.tensor_content = Bytes::from(vec![0u8; 8]);
        assert!(Tensor::from_proto(&p).is_err());
    }

    #[test]
    fn permute_matches_a_naive_gather() {
        let shape = vec![3, 2, 5, 40];
        let n: usize = shape.iter().product();
        let vals: Vec<i32> = (0..n as i32).collect();
        let t = Tensor::from_i32(shape.clone(), &vals);
        for perm in [[3, 2, 0, 1], [0, 3, 1, 2], [2, 3, 0, 1], [1, 0, 3, 2], [0, 1, 2, 3]] {
            let p = t.permute(&perm).to_i64().unwrap();
            let ns: Vec<usize> = perm.iter().map(|&i| shape[i]).collect();
            let mut k = 0;
            for a in 0..ns[0] {
                for b in 0..ns[1] {
                    for c in 0..ns[2] {
                        for d in 0..ns[3] {
                            let mut src = [0; 4];
                            for (ax, v) in [a, b, c, d].into_iter().enumerate() {
                                src[perm[ax]] = v;
                            }
                            let off = ((src[0] * shape[1] + src[1]) * shape[2] + src[2]) * shape[3]
                                + src[3];
                            assert_eq!(p[k], off as i64, "perm {perm:?}");
                            k += 1;
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn permute_hwio_to_oihw() {
        // shape [1, 2, 3] -> perm [2, 0, 1] -> [3, 1, 2]
        let t = Tensor::from_i32(vec![1, 2, 3], &[0, 1, 2, 3, 4, 5]);
        let p = t.permute(&[2, 0, 1]);
        assert_eq!(p.shape, vec![3, 1, 2]);
        assert_eq!(p.to_i64().unwrap(), vec![0, 3, 1, 4, 2, 5]);
    }
}
