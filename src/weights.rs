//! `model.safetensors`: keys exactly the module's `state_dict()` keys, metadata exactly
//! `{"format": "pt"}` (one key, so the header bytes are deterministic). Layout changes are
//! applied while writing, one tensor at a time.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use safetensors::{Dtype, View};

use crate::error::{Error, Result};
use crate::py::Weight;
use crate::tensor::DType;

struct LazyTensor<'a> {
    weight: &'a Weight,
    dtype: Dtype,
    shape: Vec<usize>,
}

impl View for LazyTensor<'_> {
    fn dtype(&self) -> Dtype {
        self.dtype
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        if self.weight.permute.is_none() {
            return Cow::Borrowed(&self.weight.tensor.data);
        }
        // `Vec::from(Bytes)` reuses the buffer permute just built: no second copy.
        Cow::Owned(Vec::from(self.weight.materialize().data))
    }

    fn data_len(&self) -> usize {
        self.weight.tensor.data.len()
    }
}

fn st_dtype(d: DType) -> Option<Dtype> {
    Some(match d {
        DType::F32 => Dtype::F32,
        DType::F64 => Dtype::F64,
        DType::F16 => Dtype::F16,
        DType::BF16 => Dtype::BF16,
        DType::I8 => Dtype::I8,
        DType::I16 => Dtype::I16,
        DType::I32 => Dtype::I32,
        DType::I64 => Dtype::I64,
        DType::U8 => Dtype::U8,
        DType::Bool => Dtype::BOOL,
        _ => return None,
    })
}

/// Writes every weight to `path`.
pub fn write(weights: &[(String, Weight)], path: &Path) -> Result<()> {
    let mut views = Vec::with_capacity(weights.len());
    for (key, w) in weights {
        let dtype = st_dtype(w.tensor.dtype).ok_or_else(|| {
            Error::msg(format!(
                "weight '{key}' has dtype {} (not storable)",
                w.tensor.dtype
            ))
        })?;
        views.push((
            key.clone(),
            LazyTensor {
                weight: w,
                dtype,
                shape: w.shape(),
            },
        ));
    }
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize_to_file(views, Some(meta), path)
        .map_err(|e| Error::msg(format!("{}: writing weights: {e}", path.display())))
}

/// Total bytes of all weights.
pub fn total_bytes(weights: &[(String, Weight)]) -> usize {
    weights.iter().map(|(_, w)| w.tensor.data.len()).sum()
}
