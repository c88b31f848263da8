//! `model.safetensors`: keys exactly the module's `state_dict()` keys, metadata exactly
//! `{"format": "pt"}` (one key, so the header bytes are deterministic). Layout changes are
//! applied while writing, one tensor at a time.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use safetensors::Dtype;
use safetensors::tensor::{Metadata, TensorInfo};

use crate::error::{Error, Result};
use crate::permute::Permutation;
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

    /// The layout change in its simplest form, as merged source sizes and their order:
    /// size-1 axes dropped, and axes that stay neighbours, in order, merged. `[32, 2, 16]`
    /// permuted `[1, 2, 0]` is `[32, 32]` permuted `[1, 0]`; an unpermuted tensor is one run
    /// of its elements. The same bytes laid out with the same simplest form and final shape
    /// are the same values in the same order, however a graph spelled the relayout.
    pub fn simplest_layout(&self) -> (Vec<usize>, Vec<usize>) {
        let shape = &self.tensor.shape;
        let order: Vec<usize> = match &self.permute {
            Some(p) => p.clone(),
            None => (0..shape.len()).collect(),
        };
        let kept: Vec<usize> = (0..shape.len()).filter(|&a| shape[a] != 1).collect();
        let rank_of = |a: usize| kept.iter().position(|&k| k == a);
        // Runs of source ranks, in output order, each run ascending by one.
        let mut runs: Vec<Vec<usize>> = Vec::new();
        for r in order.iter().filter_map(|&a| rank_of(a)) {
            match runs.last_mut() {
                Some(run) if r > 0 && run.last() == Some(&(r - 1)) => run.push(r),
                _ => runs.push(vec![r]),
            }
        }
        let mut by_source: Vec<usize> = (0..runs.len()).collect();
        by_source.sort_by_key(|&i| runs[i][0]);
        let sizes = by_source.iter().map(|&i| runs[i].iter().map(|&r| shape[kept[r]]).product());
        let position = |i: usize| by_source.iter().position(|&j| j == i).unwrap_or(i);
        (sizes.collect(), (0..runs.len()).map(position).collect())
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

/// Pieces are about this size: a large tensor is laid out and written in bands of rows.
const BAND_BYTES: usize = 8 << 20;

/// A weight this large whose layout changes is started only once the pieces before it are
/// written (see `write`).
const WAIT_MIN_BYTES: usize = 64 << 20;

/// Tensors smaller than this keep their source pages until the model file is closed.
const RELEASE_MIN_BYTES: usize = 1 << 20;

/// One piece of the data section: output rows `rows` of weight `weight` (for a weight written
/// as it is, rows are bytes), at byte `at` of the file.
struct Piece {
    weight: usize,
    rows: std::ops::Range<usize>,
    at: u64,
}

/// Writes every weight to `path` in the safetensors format: the header is the `safetensors`
/// crate's own (its `Metadata`, so the bytes are the ones `serialize` would write), the data
/// written piece by piece at each tensor's place in the file by [`WRITERS`] threads taking
/// pieces in turn. A weight that keeps its layout is written straight from the model file's
/// map; one whose layout changes is laid out band by band into a buffer each thread reuses.
/// Memory stays at a band per thread plus the source tensors in flight, whatever the model's
/// size. (Measured against a dedicated writer fed by one or by two layout threads: both
/// slower, 2.1x `cp` on ResNet50 against 1.6x; threads that do both keep both cores busy.)
pub fn write(weights: &[(String, Weight)], path: &Path, on_bytes: &dyn Fn(u64)) -> Result<()> {
    let io = |source| Error::Io { path: path.into(), source };
    let mut dtypes = Vec::with_capacity(weights.len());
    for (key, w) in weights {
        dtypes.push(st_dtype(w.tensor.dtype).ok_or_else(|| {
            Error::msg(format!("weight '{key}' has dtype {} (not storable)", w.tensor.dtype))
        })?);
    }
    // safetensors' order: dtype (descending), then name.
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| dtypes[b].cmp(&dtypes[a]).then(weights[a].0.cmp(&weights[b].0)));
    let layouts: Vec<Permutation> = weights
        .iter()
        .map(|(_, w)| {
            let elem = w.tensor.dtype.size().unwrap_or(1);
            let identity: Vec<usize> = (0..w.tensor.shape.len()).collect();
            Permutation::new(&w.tensor.shape, w.permute.as_deref().unwrap_or(&identity), elem)
        })
        .collect();
    for ((key, w), layout) in weights.iter().zip(&layouts) {
        if w.tensor.data.len() != layout.bytes() {
            let (len, shape) = (w.tensor.data.len(), &w.tensor.shape);
            return Err(Error::msg(format!(
                "weight '{key}': {len} bytes of data for shape {shape:?}"
            )));
        }
    }
    let header = header(weights, &dtypes, &order)?;
    let mut at = header.len() as u64;
    let mut pieces = Vec::new();
    for &i in &order {
        let layout = &layouts[i];
        // Rows per piece: a band of about BAND_BYTES, whole rows (bytes when written as is).
        let (rows, row_bytes) = if layout.is_identity() {
            (layout.bytes(), 1)
        } else {
            (layout.rows(), layout.row_bytes())
        };
        let band = (BAND_BYTES / row_bytes.max(1)).max(1);
        for r0 in (0..rows).step_by(band) {
            let r1 = (r0 + band).min(rows);
            pieces.push(Piece { weight: i, rows: r0..r1, at: at + (r0 * row_bytes) as u64 });
        }
        at += layout.bytes() as u64;
    }
    let file = std::fs::File::create(path).map_err(io)?;
    reserve(&file, at).map_err(io)?;
    write_at(&file, &header, 0).map_err(io)?;
    // Pieces left per weight: the thread done with a weight's last piece gives its pages back.
    let left: Vec<AtomicUsize> = weights.iter().map(|_| AtomicUsize::new(0)).collect();
    for p in &pieces {
        left[p.weight].fetch_add(1, Ordering::Relaxed);
    }
    let next = AtomicUsize::new(0);
    // Pieces written, and their bytes.
    let written = AtomicUsize::new(0);
    let done = AtomicU64::new(0);
    let failed: Mutex<Option<std::io::Error>> = Mutex::new(None);
    // The largest band laid out: each thread's buffer holds it.
    let band_bytes = pieces
        .iter()
        .filter(|p| !layouts[p.weight].is_identity())
        .map(|p| p.rows.len() * layouts[p.weight].row_bytes())
        .max()
        .unwrap_or(0);
    let work = |report: &dyn Fn()| {
        // Made when first needed; each band overwrites the part it uses.
        let mut buffer: Option<memmap2::MmapMut> = None;
        loop {
            let k = next.fetch_add(1, Ordering::Relaxed);
            let Some(piece) = pieces.get(k) else { return };
            let stopped = || failed.lock().unwrap_or_else(|e| e.into_inner()).is_some();
            if stopped() {
                return;
            }
            let (source, layout) = (&weights[piece.weight].1.tensor.data, &layouts[piece.weight]);
            let bytes = if layout.is_identity() {
                &source[piece.rows.clone()]
            } else {
                // Every band reads all of the source: mapped in one go, by the first band,
                // once the pieces before are written, so that two large sources are never
                // resident at once (the other thread is finishing one band at most).
                if piece.rows.start == 0 {
                    if source.len() >= WAIT_MIN_BYTES {
                        while written.load(Ordering::Acquire) < k {
                            if stopped() {
                                return;
                            }
                            std::thread::yield_now();
                        }
                    }
                    crate::mapped::prefetch(source);
                }
                let len = piece.rows.len() * layout.row_bytes();
                let buffer = match &mut buffer {
                    Some(b) => b,
                    None => match band_buffer(band_bytes) {
                        Ok(b) => buffer.insert(b),
                        Err(e) => {
                            failed.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(e);
                            return;
                        }
                    },
                };
                // Sizes were checked when the pieces were cut: this lays the rows out.
                let laid_out = layout.write_rows(source, piece.rows.clone(), &mut buffer[..len]);
                debug_assert!(laid_out);
                &buffer[..len]
            };
            if layout.is_identity() {
                crate::mapped::prefetch(bytes);
            }
            if let Err(e) = write_at(&file, bytes, piece.at) {
                failed.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(e);
                return;
            }
            done.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            if layout.is_identity() {
                // Pieces of a weight kept as it is read only their own pages.
                release(bytes);
            } else if left[piece.weight].fetch_sub(1, Ordering::AcqRel) == 1 {
                release(source);
            }
            written.fetch_add(1, Ordering::Release);
            report();
        }
    };
    // Only this thread reports progress (the callback need not be shared across threads).
    let reported = std::cell::Cell::new(0u64);
    let report = || {
        let now = done.load(Ordering::Relaxed);
        on_bytes(now - reported.replace(now));
    };
    std::thread::scope(|s| {
        for _ in 1..WRITERS {
            s.spawn(|| work(&|| {}));
        }
        work(&report);
    });
    report();
    match failed.into_inner().unwrap_or_else(|e| e.into_inner()) {
        Some(e) => Err(io(e)),
        None => Ok(()),
    }
}

/// Threads laying out and writing pieces. Two: while one writes (the kernel copying into the
/// page cache, one writer at a time per file), the other lays out its next band.
const WRITERS: usize = 2;

/// A buffer for bands of up to `len` bytes: anonymous memory in huge pages where the system
/// gives them (Linux with transparent huge pages on request). Its pages are touched for the
/// first time by the first bands laid out; in 4 KiB pages that costs one fault each and was
/// 10% of ResNet50's conversion (measured: 64 ms -> 58 ms with huge pages).
fn band_buffer(len: usize) -> std::io::Result<memmap2::MmapMut> {
    let buffer = memmap2::MmapMut::map_anon(len.max(1))?;
    #[cfg(target_os = "linux")]
    let _ = buffer.advise(memmap2::Advice::HugePage);
    Ok(buffer)
}

/// Gives back the pages of a weight's source once it is read, unless it is small: giving
/// pages back costs a TLB flush on every core the process runs on, which small tensors do
/// not repay.
fn release(source: &[u8]) {
    if source.len() >= RELEASE_MIN_BYTES {
        crate::mapped::release(source);
    }
}

/// The 8-byte header length and the header, padded with spaces to a multiple of 8, as the
/// `safetensors` crate lays them out (built with its own types, so the bytes are its bytes).
fn header(weights: &[(String, Weight)], dtypes: &[Dtype], order: &[usize]) -> Result<Vec<u8>> {
    let mut offset = 0;
    let mut infos = Vec::with_capacity(order.len());
    for &i in order {
        let n = weights[i].1.tensor.data.len();
        let info = TensorInfo {
            dtype: dtypes[i],
            shape: weights[i].1.shape(),
            data_offsets: (offset, offset + n),
        };
        infos.push((weights[i].0.clone(), info));
        offset += n;
    }
    // Two tensors of one name would be one key (the `safetensors` crate panics on it).
    let mut seen = std::collections::BTreeSet::new();
    if let Some((name, _)) = infos.iter().find(|(name, _)| !seen.insert(name.as_str())) {
        return Err(Error::msg(format!("two weights have the key '{name}'")));
    }
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    let bad = |e: String| Error::msg(format!("writing the weights' header: {e}"));
    let metadata = Metadata::new(Some(meta), infos).map_err(|e| bad(e.to_string()))?;
    let mut json = serde_json::to_vec(&metadata).map_err(|e| bad(e.to_string()))?;
    json.resize(json.len().next_multiple_of(8), b' ');
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend(json);
    Ok(out)
}

/// Makes `file` `len` bytes long. On Linux its blocks are allocated up front where the file
/// system can (`fallocate`): writes into them are faster (measured: 97 MB in 22 ms instead of
/// 25 on ext4), and a full disk is an error here rather than halfway through.
fn reserve(file: &std::fs::File, len: u64) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, len) {
        Ok(()) => return Ok(()),
        Err(e) if e == rustix::io::Errno::NOSPC => return Err(e.into()),
        // Not supported here (some file systems): a sparse file does.
        Err(_) => {}
    }
    file.set_len(len)
}

/// All of `bytes` at `offset` of `file`.
fn write_at(file: &std::fs::File, bytes: &[u8], offset: u64) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        file.write_all_at(bytes, offset)
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::FileExt;
        let mut done = 0;
        while done < bytes.len() {
            match file.seek_write(&bytes[done..], offset + done as u64)? {
                0 => return Err(std::io::ErrorKind::WriteZero.into()),
                n => done += n,
            }
        }
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::borrow::Cow;

    /// A tensor as the `safetensors` crate's own `serialize` takes it.
    struct Plain(Dtype, Vec<usize>, Vec<u8>);

    impl safetensors::View for Plain {
        fn dtype(&self) -> Dtype {
            self.0
        }
        fn shape(&self) -> &[usize] {
            &self.1
        }
        fn data(&self) -> Cow<'_, [u8]> {
            Cow::Borrowed(&self.2)
        }
        fn data_len(&self) -> usize {
            self.2.len()
        }
    }

    /// One relayout spelled two ways has one simplest form; another relayout has another.
    #[test]
    fn a_relayout_has_one_simplest_form() {
        let kernel = Weight {
            tensor: tensor(DType::F32, &[4, 2, 3]),
            permute: Some(vec![1, 2, 0]),
            reshape: Some(vec![6, 4]),
        };
        let flat = Weight {
            tensor: tensor(DType::F32, &[4, 6]),
            permute: Some(vec![1, 0]),
            reshape: None,
        };
        assert_eq!(kernel.simplest_layout(), (vec![4, 6], vec![1, 0]));
        assert_eq!(flat.simplest_layout(), kernel.simplest_layout());
        let bias = Weight::plain(tensor(DType::F32, &[1, 2, 3]));
        assert_eq!(bias.simplest_layout(), (vec![6], vec![0]));
        let turned = Weight { permute: Some(vec![0, 2, 1]), ..bias.clone() };
        assert_eq!(turned.simplest_layout(), (vec![2, 3], vec![1, 0]));
        let kept = Weight { permute: Some(vec![1, 0, 2]), ..bias };
        assert_eq!(kept.simplest_layout(), (vec![6], vec![0]));
    }

    /// Bytes that differ per element, so a misplaced element shows.
    fn tensor(dtype: DType, shape: &[usize]) -> Tensor {
        let n = shape.iter().product::<usize>() * dtype.size().unwrap();
        let data: Vec<u8> = (0..n).map(|i| (i * 7 % 253) as u8).collect();
        Tensor { dtype, shape: shape.to_vec(), data: Bytes::from(data) }
    }

    /// Two weights of one key are an error, not a panic in the `safetensors` crate.
    #[test]
    fn two_weights_of_one_key_are_an_error() {
        let weights = vec![
            ("block.weight".to_string(), Weight::plain(tensor(DType::F32, &[2]))),
            ("block.weight".to_string(), Weight::plain(tensor(DType::F32, &[3]))),
        ];
        let path = std::env::temp_dir().join(format!("dup_keys_{}.st", std::process::id()));
        let err = write(&weights, &path, &|_| {}).unwrap_err();
        assert!(err.to_string().contains("two weights have the key 'block.weight'"), "{err}");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn the_file_is_what_safetensors_itself_writes() {
        let mut conv = Weight::plain(tensor(DType::F32, &[3, 3, 4, 5]));
        conv.permute = Some(vec![3, 2, 0, 1]);
        let mut dense = Weight::plain(tensor(DType::F32, &[700, 3000]));
        dense.permute = Some(vec![1, 0]);
        dense.reshape = Some(vec![3000, 7, 100]);
        let weights = vec![
            ("conv.weight".to_string(), conv),
            ("dense.weight".to_string(), dense),
            ("bias".to_string(), Weight::plain(tensor(DType::F32, &[5]))),
            ("steps".to_string(), Weight::plain(tensor(DType::I64, &[2, 3]))),
            ("mask".to_string(), Weight::plain(tensor(DType::Bool, &[4]))),
            ("half".to_string(), Weight::plain(tensor(DType::F16, &[3000, 1500]))),
        ];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        let reported = std::cell::Cell::new(0u64);
        write(&weights, &path, &|n| reported.set(reported.get() + n)).unwrap();
        let views = weights.iter().map(|(k, w)| {
            let t = match &w.permute {
                Some(p) => w.tensor.permute(p),
                None => w.tensor.clone(),
            };
            let dtype = st_dtype(t.dtype).unwrap();
            (k.clone(), Plain(dtype, w.shape(), t.data.to_vec()))
        });
        let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
        let want = safetensors::serialize(views, Some(meta)).unwrap();
        assert!(std::fs::read(&path).unwrap() == want, "bytes differ from safetensors'");
        assert_eq!(reported.get(), total_bytes(&weights) as u64);
    }

    #[test]
    fn a_weight_whose_bytes_do_not_match_its_shape_is_an_error() {
        let mut w = Weight::plain(tensor(DType::F32, &[2, 3]));
        w.tensor.shape = vec![3, 3];
        let dir = tempfile::tempdir().unwrap();
        let err = write(&[("w".into(), w)], &dir.path().join("m.safetensors"), &|_| {});
        assert!(err.unwrap_err().to_string().contains("'w'"));
    }
}
