//! `model.safetensors`: keys exactly the module's `state_dict()` keys, metadata exactly
//! `{"format": "pt"}` (one key, so the header bytes are deterministic). Layout changes are
//! applied while writing, one tensor at a time.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, sync_channel};

use safetensors::{Dtype, View};

use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor};

/// A weight as stored in the model, plus the layout change applied when it is written.
/// The change is applied lazily, one tensor at a time, so conversion never holds two copies
/// of all weights.
#[derive(Clone, Debug)]
pub struct Weight {
    pub tensor: Tensor,
    /// Axis permutation applied first.
    pub permute: Option<Vec<usize>>,
    /// Final shape (same element count).
    pub reshape: Option<Vec<usize>>,
}

impl Weight {
    pub fn plain(tensor: Tensor) -> Weight {
        Weight { tensor, permute: None, reshape: None }
    }

    pub fn shape(&self) -> Vec<usize> {
        if let Some(r) = &self.reshape {
            return r.clone();
        }
        match &self.permute {
            Some(p) => p.iter().map(|&i| self.tensor.shape[i]).collect(),
            None => self.tensor.shape.clone(),
        }
    }

    /// The tensor in its final layout.
    pub fn materialize(&self) -> Tensor {
        let t = match &self.permute {
            Some(p) => self.tensor.permute(p),
            None => self.tensor.clone(),
        };
        match &self.reshape {
            Some(s) => t.reshaped(s.clone()),
            None => t,
        }
    }
}

/// Layout changes computed ahead on a second thread, in the order the writer asks for them.
/// Each item carries the weight's index; a view that receives another index (the writer
/// asked in an unexpected order) stops the pipeline and computes its own data, so the output
/// never depends on the order guess.
type Ahead = Mutex<Option<Receiver<(usize, Vec<u8>)>>>;

struct LazyTensor<'a> {
    index: usize,
    weight: &'a Weight,
    dtype: Dtype,
    shape: Vec<usize>,
    ahead: &'a Ahead,
    /// The source bytes last handed to the writer as they are: written by the time the writer
    /// asks for the next tensor, when their pages go back to the system.
    written: &'a Mutex<Option<&'a [u8]>>,
    /// Told the size of each tensor handed to the writer (a progress display).
    on_bytes: &'a dyn Fn(u64),
}

impl<'a> View for LazyTensor<'a> {
    fn dtype(&self) -> Dtype {
        self.dtype
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        let source: &'a [u8] = &self.weight.tensor.data;
        (self.on_bytes)(source.len() as u64);
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(done) = written.take() {
            crate::mapped::release(done);
        }
        if self.weight.permute.is_none() {
            crate::mapped::prefetch(source);
            *written = Some(source);
            return Cow::Borrowed(source);
        }
        drop(written);
        let mut guard = self.ahead.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(rx) = guard.as_ref().filter(|_| !computed_on_demand(self.weight)) {
            match rx.recv() {
                Ok((i, bytes)) if i == self.index => return Cow::Owned(bytes),
                _ => *guard = None,
            }
        }
        // `Vec::from(Bytes)` reuses the buffer permute just built: no second copy.
        let permuted = Vec::from(self.weight.materialize().data);
        crate::mapped::release(source);
        Cow::Owned(permuted)
    }

    fn data_len(&self) -> usize {
        self.weight.tensor.data.len()
    }
}

/// Tensors above this size are laid out when the writer asks for them, not ahead on the
/// second thread: computed ahead, two or three of them would be in memory at once.
const AHEAD_MAX_BYTES: usize = 64 << 20;

/// Whether `w` is laid out by the writer itself (see [`AHEAD_MAX_BYTES`]); its source is then
/// transposed band by band, each band given back as it is done.
fn computed_on_demand(w: &Weight) -> bool {
    w.tensor.data.len() > AHEAD_MAX_BYTES
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
        DType::C64 => Dtype::C64,
        _ => return None,
    })
}

/// Writes every weight to `path`. Permuted weights are computed one or two ahead on a second
/// thread while the writer writes the previous ones; memory stays at a few tensors.
pub fn write(weights: &[(String, Weight)], path: &Path, on_bytes: &dyn Fn(u64)) -> Result<()> {
    let mut dtypes = Vec::with_capacity(weights.len());
    for (key, w) in weights {
        dtypes.push(st_dtype(w.tensor.dtype).ok_or_else(|| {
            Error::msg(format!("weight '{key}' has dtype {} (not storable)", w.tensor.dtype))
        })?);
    }
    // The order safetensors writes in: dtype (descending), then name.
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| dtypes[b].cmp(&dtypes[a]).then(weights[a].0.cmp(&weights[b].0)));
    let (tx, rx) = sync_channel::<(usize, Vec<u8>)>(1);
    let ahead: Ahead = Mutex::new(Some(rx));
    let written: Mutex<Option<&[u8]>> = Mutex::new(None);
    std::thread::scope(|s| {
        s.spawn(move || {
            for &i in &order {
                if weights[i].1.permute.is_none() || computed_on_demand(&weights[i].1) {
                    continue;
                }
                crate::mapped::prefetch(&weights[i].1.tensor.data);
                let permuted = Vec::from(weights[i].1.materialize().data);
                // The source is read; it comes back from the file if the writer needs it.
                crate::mapped::release(&weights[i].1.tensor.data);
                if tx.send((i, permuted)).is_err() {
                    return;
                }
            }
        });
        let views: Vec<_> = weights
            .iter()
            .enumerate()
            .map(|(index, (key, w))| {
                let view = LazyTensor {
                    index,
                    weight: w,
                    dtype: dtypes[index],
                    shape: w.shape(),
                    ahead: &ahead,
                    written: &written,
                    on_bytes,
                };
                (key.clone(), view)
            })
            .collect();
        let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
        let result = safetensors::serialize_to_file(views, Some(meta), path)
            .map_err(|e| Error::msg(format!("{}: writing weights: {e}", path.display())));
        // Stop the producer if the writer stopped early.
        *ahead.lock().unwrap_or_else(|e| e.into_inner()) = None;
        if let Some(done) = written.lock().unwrap_or_else(|e| e.into_inner()).take() {
            crate::mapped::release(done);
        }
        result
    })
}

/// Hugging Face's default `max_shard_size`: above it the weights are split into shards.
pub const DEFAULT_MAX_SHARD_BYTES: u64 = 5_000_000_000;

/// The index Hugging Face writes beside shards (`model.safetensors.index.json`).
pub const SHARD_INDEX: &str = "model.safetensors.index.json";

/// Writes the weights into `dir`: `model.safetensors`, or, when they exceed `max_shard_bytes`,
/// `model-00001-of-0000N.safetensors` shards (in module order, each filled up to the limit; a
/// tensor larger than the limit is a shard of its own) and [`SHARD_INDEX`] mapping each key to
/// its shard, as Hugging Face's `save_pretrained` lays them out. Returns the files written.
pub fn write_all(
    weights: &[(String, Weight)],
    dir: &Path,
    max_shard_bytes: u64,
    on_bytes: &dyn Fn(u64),
) -> Result<Vec<String>> {
    let total = total_bytes(weights) as u64;
    if !is_sharded(weights, max_shard_bytes) {
        write(weights, &dir.join("model.safetensors"), on_bytes)?;
        return Ok(vec!["model.safetensors".into()]);
    }
    let mut shards: Vec<Vec<(String, Weight)>> = vec![Vec::new()];
    let mut size = 0u64;
    for (key, w) in weights {
        let bytes = w.tensor.data.len() as u64;
        let current = shards.last().expect("one shard at least");
        if !current.is_empty() && size.saturating_add(bytes) > max_shard_bytes {
            shards.push(Vec::new());
            size = 0;
        }
        size = size.saturating_add(bytes);
        shards.last_mut().expect("one shard at least").push((key.clone(), w.clone()));
    }
    let n = shards.len();
    let mut files = Vec::with_capacity(n + 1);
    let mut weight_map = std::collections::BTreeMap::new();
    for (k, shard) in shards.iter().enumerate() {
        let name = format!("model-{:05}-of-{n:05}.safetensors", k + 1);
        write(shard, &dir.join(&name), on_bytes)?;
        for (key, _) in shard {
            weight_map.insert(key.clone(), name.clone());
        }
        files.push(name);
    }
    let index = serde_json::json!({"metadata": {"total_size": total}, "weight_map": weight_map});
    let mut text = serde_json::to_string_pretty(&index)
        .map_err(|e| Error::msg(format!("writing {SHARD_INDEX}: {e}")))?;
    text.push('\n');
    let path = dir.join(SHARD_INDEX);
    std::fs::write(&path, text).map_err(|source| Error::Io { path, source })?;
    files.push(SHARD_INDEX.into());
    Ok(files)
}

/// Whether [`write_all`] writes `weights` as shards.
pub fn is_sharded(weights: &[(String, Weight)], max_shard_bytes: u64) -> bool {
    total_bytes(weights) as u64 > max_shard_bytes
}

/// Total bytes of all weights.
pub fn total_bytes(weights: &[(String, Weight)]) -> usize {
    weights.iter().map(|(_, w)| w.tensor.data.len()).sum()
}
