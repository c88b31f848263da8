//! TensorFlow's tensor bundle (V2 checkpoint): `<prefix>.index`, a LevelDB-style SSTable of
//! `BundleEntryProto`s, and `<prefix>.data-NNNNN-of-MMMMM` shards holding the raw bytes
//! (tf-formats.md §3). Every block and tensor checksum is verified. Shards are memory-mapped;
//! a tensor is a slice of its shard, not a copy.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use prost::Message;

use crate::error::{Error, Result};
use crate::proto::{BundleEntryProto, BundleHeaderProto};
use crate::tensor::{DType, MAX_TENSOR_BYTES, Tensor, checked_numel, shape_from_proto};

const FOOTER_LEN: usize = 48;
const MAGIC: u64 = 0xdb47_7524_8b80_fb57;
const BLOCK_TRAILER_LEN: usize = 5;

/// The checksum as LevelDB stores it (tf-formats.md §3.2).
pub fn unmask_crc(m: u32) -> u32 {
    let r = m.wrapping_sub(0xa282_ead8);
    r.rotate_left(15)
}

pub fn mask_crc(c: u32) -> u32 {
    c.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Reads protobuf varints from a byte slice, failing instead of reading past its end.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos)?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
}

/// An open bundle: the index decoded, the shards mapped.
pub struct Bundle {
    index_path: PathBuf,
    entries: BTreeMap<String, BundleEntryProto>,
    /// The data of each slice of a partitioned variable, under TF's ordered-code key
    /// (`EncodeTensorNameSlice`), in the table's (byte) order.
    slice_entries: BTreeMap<Vec<u8>, BundleEntryProto>,
    shards: Vec<Bytes>,
}

impl Bundle {
    /// Opens `<prefix>.index` and its data shards.
    pub fn open(prefix: &Path) -> Result<Bundle> {
        let index_path = PathBuf::from(format!("{}.index", prefix.display()));
        let index = std::fs::read(&index_path)
            .map_err(|source| Error::Io { path: index_path.clone(), source })?;
        let bad = |what: String| Error::msg(format!("{}: {what}", index_path.display()));
        let raw = read_table(&index).map_err(|e| bad(e.to_string()))?;
        let mut entries = BTreeMap::new();
        let mut slice_entries = BTreeMap::new();
        let mut header = None;
        for (key, value) in raw {
            if key.is_empty() {
                header = Some(
                    BundleHeaderProto::decode(value.as_slice())
                        .map_err(|e| bad(format!("bad bundle header: {e}")))?,
                );
                continue;
            }
            if key.first() == Some(&0) {
                // The data of one slice of a partitioned variable (an ordered-code key).
                let entry = BundleEntryProto::decode(value.as_slice())
                    .map_err(|e| bad(format!("bad entry for a variable slice: {e}")))?;
                slice_entries.insert(key, entry);
                continue;
            }
            let key = String::from_utf8(key).map_err(|_| bad("a key is not UTF-8".into()))?;
            let entry = BundleEntryProto::decode(value.as_slice())
                .map_err(|e| bad(format!("bad entry for '{key}': {e}")))?;
            entries.insert(key, entry);
        }
        let header = header.ok_or_else(|| bad("no bundle header (empty key)".into()))?;
        if header.endianness != 0 {
            return Err(bad("big-endian checkpoints are not supported".into()));
        }
        let n = usize::try_from(header.num_shards)
            .ok()
            .filter(|&n| (1..=100_000).contains(&n))
            .ok_or_else(|| bad(format!("implausible shard count {}", header.num_shards)))?;
        let mut shards = Vec::with_capacity(n);
        for i in 0..n {
            let path = PathBuf::from(format!("{}.data-{i:05}-of-{n:05}", prefix.display()));
            shards.push(map_file(&path)?);
        }
        Ok(Bundle { index_path, entries, slice_entries, shards })
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// The bytes of `key`, checked against the entry's size and checksum.
    fn raw(&self, key: &str) -> Result<(&BundleEntryProto, Bytes)> {
        let err =
            |what: String| Error::msg(format!("{}: '{key}': {what}", self.index_path.display()));
        let e = self.entries.get(key).ok_or_else(|| err("no such key in the checkpoint".into()))?;
        if !e.slices.is_empty() {
            return Err(err(
                "is a partitioned variable, stored in slices (read one with its slice spec)".into(),
            ));
        }
        self.entry_bytes(key, e)
    }

    /// The bytes an entry points at, checked against its size and checksum.
    fn entry_bytes<'e>(
        &self,
        key: &str,
        e: &'e BundleEntryProto,
    ) -> Result<(&'e BundleEntryProto, Bytes)> {
        let err =
            |what: String| Error::msg(format!("{}: '{key}': {what}", self.index_path.display()));
        let shard = usize::try_from(e.shard_id)
            .ok()
            .and_then(|s| self.shards.get(s))
            .ok_or_else(|| err(format!("shard {} does not exist", e.shard_id)))?;
        let (off, size) = (usize::try_from(e.offset), usize::try_from(e.size));
        let (Ok(off), Ok(size)) = (off, size) else {
            return Err(err("negative offset or size".into()));
        };
        let end = off.checked_add(size).filter(|&end| end <= shard.len());
        let end = end
            .ok_or_else(|| err("data lies beyond the end of its shard (truncated file?)".into()))?;
        let bytes = shard.slice(off..end);
        // String tensors carry a checksum of their own layout (see `scalar_string`).
        if e.dtype != 7 && crc32c::crc32c(&bytes) != unmask_crc(e.crc32c) {
            return Err(err("checksum mismatch (corrupted data file)".into()));
        }
        // Checked; its pages come back from the file when the weight is written, one tensor at
        // a time, instead of every variable staying resident from here on.
        crate::mapped::release(&bytes);
        Ok((e, bytes))
    }

    /// A numeric tensor (a slice of the mapped shard).
    pub fn tensor(&self, key: &str) -> Result<Tensor> {
        let (e, bytes) = self.raw(key)?;
        self.numeric(key, e, bytes)
    }

    /// The part of the partitioned variable `key` that `spec` names (TF's slice spec as its
    /// saver writes it: `"11 6 0,4:0,6"` is rows 0..4 of an 11×6 variable; `-` is a whole
    /// dimension). Each part's data is an entry of its own under an ordered-code key: those of
    /// `key` are the keys starting with its encoded name, and in byte order they follow the
    /// numeric order of their extents, which is how each is matched with its `slices` entry.
    pub fn tensor_slice(&self, key: &str, spec: &str) -> Result<Tensor> {
        let err =
            |what: String| Error::msg(format!("{}: '{key}': {what}", self.index_path.display()));
        let e = self.entries.get(key).ok_or_else(|| err("no such key in the checkpoint".into()))?;
        let full = shape_from_proto(e.shape.as_ref())
            .map_err(|x| err(x.to_string()))?
            .into_iter()
            .map(|d| d.ok_or_else(|| err("unknown dimension".into())))
            .collect::<Result<Vec<usize>>>()?;
        let wanted = parse_slice_spec(spec, &full)
            .ok_or_else(|| err(format!("slice spec {spec:?} does not fit shape {full:?}")))?;
        let normalized = |s: &crate::proto::TensorSliceProto| -> Option<Vec<(i64, i64)>> {
            (s.extent.len() == full.len()).then_some(())?;
            s.extent
                .iter()
                .zip(&full)
                .map(|(x, &n)| {
                    let len = x.length.filter(|&l| l >= 0).unwrap_or(n as i64 - x.start);
                    (x.start >= 0 && len >= 0 && x.start.checked_add(len)? <= n as i64)
                        .then_some((x.start, len))
                })
                .collect()
        };
        // Slices in the order of their data keys: by extents, a missing length as -1.
        let mut slices: Vec<&crate::proto::TensorSliceProto> = e.slices.iter().collect();
        let sort_key = |s: &&crate::proto::TensorSliceProto| -> Vec<(i64, i64)> {
            s.extent.iter().map(|x| (x.start, x.length.unwrap_or(-1))).collect()
        };
        slices.sort_by_key(sort_key);
        let prefix = ordered_code_slice_prefix(key);
        let data: Vec<&BundleEntryProto> = self
            .slice_entries
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(_, v)| v)
            .collect();
        if data.len() != slices.len() {
            return Err(err(format!(
                "{} slices listed but {} stored (corrupted index?)",
                slices.len(),
                data.len()
            )));
        }
        let found = slices.iter().position(|s| normalized(s).as_ref() == Some(&wanted));
        let part =
            found.map(|i| data[i]).ok_or_else(|| err(format!("no stored slice {spec:?}")))?;
        let (part, bytes) = self.entry_bytes(key, part)?;
        let t = self.numeric(key, part, bytes)?;
        let shape: Vec<usize> = wanted.iter().map(|&(_, l)| l as usize).collect();
        if t.shape != shape {
            return Err(err(format!("slice {spec:?} is stored with shape {:?}", t.shape)));
        }
        Ok(t)
    }

    /// An entry's bytes as a numeric tensor of its dtype and shape.
    fn numeric(&self, key: &str, e: &BundleEntryProto, bytes: Bytes) -> Result<Tensor> {
        let err =
            |what: String| Error::msg(format!("{}: '{key}': {what}", self.index_path.display()));
        let dtype =
            DType::from_tf(e.dtype).ok_or_else(|| err(format!("unsupported dtype {}", e.dtype)))?;
        let esize =
            dtype.size().ok_or_else(|| err(format!("{dtype:?} is not a numeric tensor")))?;
        let shape = shape_from_proto(e.shape.as_ref())
            .map_err(|x| err(x.to_string()))?
            .into_iter()
            .map(|d| d.ok_or_else(|| err("unknown dimension".into())))
            .collect::<Result<Vec<usize>>>()?;
        let n = checked_numel(&shape)
            .and_then(|n| n.checked_mul(esize))
            .filter(|&n| n <= MAX_TENSOR_BYTES);
        if n != Some(bytes.len()) {
            return Err(err(format!(
                "{} bytes stored for shape {shape:?} of {dtype}",
                bytes.len()
            )));
        }
        Ok(Tensor { dtype, shape, data: bytes })
    }

    /// The single string of a scalar DT_STRING entry (e.g. `_CHECKPOINTABLE_OBJECT_GRAPH`).
    pub fn scalar_string(&self, key: &str) -> Result<Bytes> {
        let (e, bytes) = self.raw(key)?;
        let err =
            |what: &str| Error::msg(format!("{}: '{key}': {what}", self.index_path.display()));
        if e.dtype != 7 {
            return Err(err("not a string tensor"));
        }
        let mut c = Cursor { buf: &bytes, pos: 0 };
        let len = c.varint().ok_or_else(|| err("truncated string length"))?;
        let len_crc = c.take(4).ok_or_else(|| err("truncated string checksum"))?.to_vec();
        let start = c.pos;
        let n = usize::try_from(len).map_err(|_| err("string too long"))?;
        let payload = c.take(n).ok_or_else(|| err("truncated string"))?;
        // The entry's checksum covers the length (as u32, or u64 when larger), the length
        // checksum's 4 bytes, then the string bytes (tf-formats.md §3.6).
        let mut crc = match u32::try_from(len) {
            Ok(l) => crc32c::crc32c(&l.to_le_bytes()),
            Err(_) => crc32c::crc32c(&len.to_le_bytes()),
        };
        crc = crc32c::crc32c_append(crc, &len_crc);
        crc = crc32c::crc32c_append(crc, payload);
        if crc != unmask_crc(e.crc32c) {
            return Err(err("checksum mismatch (corrupted data file)"));
        }
        Ok(bytes.slice(start..start + n))
    }
}

/// TF's slice spec `"d0 d1 ... s0:s1:..."` (each `start,length` or `-`) as (start, length)
/// per dimension of `full`, checked to lie inside it.
fn parse_slice_spec(spec: &str, full: &[usize]) -> Option<Vec<(i64, i64)>> {
    let mut words = spec.split_whitespace();
    let dims: Vec<usize> =
        (0..full.len()).map(|_| words.next()?.parse().ok()).collect::<Option<_>>()?;
    let extents = words.next()?;
    if dims != full || words.next().is_some() {
        return None;
    }
    let parts: Vec<&str> = extents.split(':').collect();
    if parts.len() != full.len() {
        return None;
    }
    parts
        .iter()
        .zip(full)
        .map(|(p, &n)| {
            let n = i64::try_from(n).ok()?;
            if *p == "-" {
                return Some((0, n));
            }
            let (s, l) = p.split_once(',')?;
            let (s, l): (i64, i64) = (s.parse().ok()?, l.parse().ok()?);
            (s >= 0 && l >= 0 && s.checked_add(l)? <= n).then_some((s, l))
        })
        .collect()
}

/// The start of every data key of a partitioned variable's slices: TF's
/// `EncodeTensorNameSlice` writes ordered code, a 0 (`WriteNumIncreasing(0)`), then the name
/// with 0x00 as 0x00 0xFF and 0xFF as 0xFF 0x00, ended by 0x00 0x01 (`WriteString`), then the
/// extents.
fn ordered_code_slice_prefix(name: &str) -> Vec<u8> {
    let mut key = vec![0u8];
    for &b in name.as_bytes() {
        match b {
            0x00 => key.extend([0x00, 0xff]),
            0xff => key.extend([0xff, 0x00]),
            b => key.push(b),
        }
    }
    key.extend([0x00, 0x01]);
    key
}

fn map_file(path: &Path) -> Result<Bytes> {
    crate::mapped::map(path)
}

/// What is wrong with a table file (the caller adds which file).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TableError(String);

impl From<&str> for TableError {
    fn from(s: &str) -> Self {
        TableError(s.to_string())
    }
}

impl From<std::num::TryFromIntError> for TableError {
    fn from(e: std::num::TryFromIntError) -> Self {
        TableError(format!("an offset or size does not fit in memory: {e}"))
    }
}

/// A table entry: (key, value).
pub type Entry = (Vec<u8>, Vec<u8>);

/// Every (key, value) of an SSTable, in key order.
pub fn read_table(file: &[u8]) -> std::result::Result<Vec<Entry>, TableError> {
    if file.len() < FOOTER_LEN {
        return Err(TableError(format!(
            "{} bytes is too short for a table footer (truncated?)",
            file.len()
        )));
    }
    let footer = &file[file.len() - FOOTER_LEN..];
    let magic = u64::from_le_bytes(footer[40..48].try_into().expect("8 bytes"));
    if magic != MAGIC {
        return Err("bad table magic (not a checkpoint index, or truncated)".into());
    }
    let mut c = Cursor { buf: &footer[..40], pos: 0 };
    let _metaindex = (c.varint(), c.varint());
    let (Some(off), Some(size)) = (c.varint(), c.varint()) else {
        return Err("bad index block handle in the footer".into());
    };
    let index = read_block(file, off, size)?;
    let mut out = Vec::new();
    for (_, handle) in block_entries(&index)? {
        let mut h = Cursor { buf: &handle, pos: 0 };
        let (Some(off), Some(size)) = (h.varint(), h.varint()) else {
            return Err("bad data block handle".into());
        };
        let block = read_block(file, off, size)?;
        out.extend(block_entries(&block)?);
    }
    Ok(out)
}

/// A block's contents after checking its trailer (type byte + masked crc32c).
fn read_block(file: &[u8], off: u64, size: u64) -> std::result::Result<Vec<u8>, TableError> {
    let (off, size) = (
        usize::try_from(off).map_err(TableError::from)?,
        usize::try_from(size).map_err(TableError::from)?,
    );
    let end = off
        .checked_add(size)
        .and_then(|e| e.checked_add(BLOCK_TRAILER_LEN))
        .filter(|&e| e <= file.len())
        .ok_or("a block lies beyond the end of the file (truncated?)")?;
    let data = &file[off..off + size];
    let kind = file[off + size];
    let stored = u32::from_le_bytes(file[off + size + 1..end].try_into().expect("4 bytes"));
    let mut crc = crc32c::crc32c(data);
    crc = crc32c::crc32c_append(crc, &[kind]);
    if crc != unmask_crc(stored) {
        return Err(TableError(format!(
            "block at offset {off}: checksum mismatch (corrupted index)"
        )));
    }
    match kind {
        0 => Ok(data.to_vec()),
        1 => snap::raw::Decoder::new()
            .decompress_vec(data)
            .map_err(|e| TableError(format!("block at offset {off}: bad snappy data: {e}"))),
        k => Err(TableError(format!("block at offset {off}: unknown compression type {k}"))),
    }
}

/// The (key, value) entries of a block: prefix-compressed keys, restart array at the end.
fn block_entries(block: &[u8]) -> std::result::Result<Vec<Entry>, TableError> {
    if block.len() < 4 {
        return Err("block too short".into());
    }
    let n_restarts =
        u32::from_le_bytes(block[block.len() - 4..].try_into().expect("4 bytes")) as usize;
    let restarts_len =
        n_restarts.checked_mul(4).and_then(|r| r.checked_add(4)).filter(|&r| r <= block.len());
    let data_end = block.len() - restarts_len.ok_or("bad restart count")?;
    let mut c = Cursor { buf: &block[..data_end], pos: 0 };
    let mut out: Vec<Entry> = Vec::new();
    let mut key: Vec<u8> = Vec::new();
    while c.pos < data_end {
        let (Some(shared), Some(non_shared), Some(vlen)) = (c.varint(), c.varint(), c.varint())
        else {
            return Err("truncated block entry".into());
        };
        let shared = usize::try_from(shared).map_err(TableError::from)?;
        if shared > key.len() {
            return Err("block entry shares more key than exists".into());
        }
        key.truncate(shared);
        let delta = c
            .take(usize::try_from(non_shared).map_err(TableError::from)?)
            .ok_or("truncated key")?;
        key.extend_from_slice(delta);
        let value =
            c.take(usize::try_from(vlen).map_err(TableError::from)?).ok_or("truncated value")?;
        out.push((key.clone(), value.to_vec()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_specs_as_savers_write_them() {
        assert_eq!(parse_slice_spec("11 6 0,4:0,6", &[11, 6]), Some(vec![(0, 4), (0, 6)]));
        assert_eq!(parse_slice_spec("11 6 8,3:-", &[11, 6]), Some(vec![(8, 3), (0, 6)]));
        assert_eq!(parse_slice_spec("11 6 8,4:-", &[11, 6]), None, "past the end");
        assert_eq!(parse_slice_spec("11 6 0,4:0,6", &[12, 6]), None, "another shape");
        assert_eq!(parse_slice_spec("11 6 0,4", &[11, 6]), None, "an extent short");
        assert_eq!(parse_slice_spec("11 6 -1,4:-", &[11, 6]), None);
    }

    #[test]
    fn slice_keys_escape_the_name_as_ordered_code() {
        assert_eq!(ordered_code_slice_prefix("w"), b"\x00w\x00\x01");
        assert_eq!(ordered_code_slice_prefix("a\u{0}"), b"\x00a\x00\xff\x00\x01");
    }

    #[test]
    fn crc_masking_round_trips() {
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        for c in [0u32, 1, 0xdead_beef, u32::MAX] {
            assert_eq!(unmask_crc(mask_crc(c)), c);
        }
    }

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    /// A block of (key, value) entries, every entry a restart point.
    fn block(entries: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut b = Vec::new();
        let mut restarts = Vec::new();
        for (k, v) in entries {
            restarts.push(b.len() as u32);
            varint(0, &mut b);
            varint(k.len() as u64, &mut b);
            varint(v.len() as u64, &mut b);
            b.extend_from_slice(k);
            b.extend_from_slice(v);
        }
        for r in &restarts {
            b.extend_from_slice(&r.to_le_bytes());
        }
        b.extend_from_slice(&(restarts.len() as u32).to_le_bytes());
        b
    }

    /// Appends `contents` as a block with its trailer; returns its handle.
    fn append(file: &mut Vec<u8>, contents: &[u8], snappy: bool) -> Vec<u8> {
        let (stored, kind) = if snappy {
            (snap::raw::Encoder::new().compress_vec(contents).unwrap(), 1u8)
        } else {
            (contents.to_vec(), 0u8)
        };
        let mut handle = Vec::new();
        varint(file.len() as u64, &mut handle);
        varint(stored.len() as u64, &mut handle);
        file.extend_from_slice(&stored);
        file.push(kind);
        let crc = crc32c::crc32c_append(crc32c::crc32c(&stored), &[kind]);
        file.extend_from_slice(&mask_crc(crc).to_le_bytes());
        handle
    }

    fn table(snappy: bool) -> Vec<u8> {
        let mut file = Vec::new();
        let d1 = append(&mut file, &block(&[(b"a", b"1"), (b"ab", b"22")]), snappy);
        let d2 = append(&mut file, &block(&[(b"b", b"333")]), snappy);
        let meta = append(&mut file, &block(&[]), false);
        let index = append(&mut file, &block(&[(b"ab", &d1), (b"c", &d2)]), snappy);
        let mut footer = meta;
        footer.extend_from_slice(&index);
        footer.resize(40, 0);
        footer.extend_from_slice(&(MAGIC as u32).to_le_bytes());
        footer.extend_from_slice(&((MAGIC >> 32) as u32).to_le_bytes());
        file.extend_from_slice(&footer);
        file
    }

    #[test]
    fn reads_plain_and_snappy_tables() {
        for snappy in [false, true] {
            let entries = read_table(&table(snappy)).unwrap();
            let got: Vec<(&[u8], &[u8])> =
                entries.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
            let want: Vec<(&[u8], &[u8])> = vec![(b"a", b"1"), (b"ab", b"22"), (b"b", b"333")];
            assert_eq!(got, want, "snappy={snappy}");
        }
    }

    #[test]
    fn a_corrupted_block_is_reported() {
        let mut t = table(true);
        t[3] ^= 0xff;
        assert!(read_table(&t).unwrap_err().to_string().contains("checksum"));
    }

    #[test]
    fn short_or_foreign_files_are_rejected() {
        assert!(read_table(b"tiny").unwrap_err().to_string().contains("too short"));
        assert!(read_table(&[0u8; 100]).unwrap_err().to_string().contains("magic"));
    }
}
