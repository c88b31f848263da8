//! Model files, memory-mapped, and their pages given back once the weights in them are written
//! out. Weights stay slices of the map from decoding to writing (no copy), and a tensor's
//! pages leave the process's memory right after the tensor has been written: peak memory is
//! the tensors in flight, not the model.
//!
//! Giving pages back (`MADV_DONTNEED`) is always safe for these maps: they are private,
//! read-only and file-backed, so a page read again is read from the file again.

use std::fs::File;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use memmap2::{Mmap, MmapOptions};

use crate::error::{Error, Result};

/// The owner `Bytes` keeps alive: the map, shared with [`MAPS`] weakly.
struct Shared(Arc<Mmap>);

impl AsRef<[u8]> for Shared {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Every live map, so that [`release`] can tell whether bytes lie in one (and which).
static MAPS: Mutex<Vec<Weak<Mmap>>> = Mutex::new(Vec::new());

/// `path`, memory-mapped read-only (an empty file is empty bytes).
pub fn map(path: &Path) -> Result<Bytes> {
    let io = |source| Error::Io { path: path.into(), source };
    let file = File::open(path).map_err(io)?;
    if file.metadata().map_err(io)?.len() == 0 {
        return Ok(Bytes::new());
    }
    // SAFETY: the map is read-only and private to this process; a concurrent truncation of the
    // file by another process is the one way this can fault, as with any mmap-based reader.
    let map = unsafe { MmapOptions::new().map(&file) }.map_err(io)?;
    #[cfg(unix)]
    let _ = map.advise(memmap2::Advice::Sequential);
    let map = Arc::new(map);
    let mut maps = MAPS.lock().unwrap_or_else(|e| e.into_inner());
    maps.retain(|m| m.strong_count() > 0);
    maps.push(Arc::downgrade(&map));
    Ok(Bytes::from_owner(Shared(map)))
}

/// Calls `f(map, offset)` with the map `bytes` lie in and their offset in it, if they lie in
/// one made by [`map`] (anything else, such as a tensor computed in memory, is left alone).
fn in_map(bytes: &[u8], f: impl FnOnce(&Mmap, usize)) {
    if bytes.is_empty() {
        return;
    }
    let (start, end) = (bytes.as_ptr() as usize, bytes.as_ptr() as usize + bytes.len());
    let maps = MAPS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(map) = maps.iter().filter_map(Weak::upgrade).find(|m| {
        let base = m.as_ptr() as usize;
        start >= base && end <= base + m.len()
    }) {
        f(&map, start - map.as_ptr() as usize);
    }
}

/// Maps the pages under `bytes` in one go, before they are read (one call instead of a page
/// fault per page; faster than faulting, and unlike populating the whole file up front it
/// keeps only the tensors in flight resident).
pub fn prefetch(bytes: &[u8]) {
    #[cfg(target_os = "linux")]
    in_map(bytes, |map, offset| {
        let _ = map.advise_range(memmap2::Advice::PopulateRead, offset, bytes.len());
    });
}

/// Gives back the pages under `bytes` if they belong to a map made by [`map`]. The bytes stay
/// readable.
pub fn release(bytes: &[u8]) {
    #[cfg(unix)]
    in_map(bytes, |map, offset| {
        // SAFETY: a private read-only file map: dropped pages read back from the file.
        let _ = unsafe {
            map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, offset, bytes.len())
        };
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn released_bytes_read_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.bin");
        let data: Vec<u8> = (0..3 * 4096 + 17).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let bytes = map(&path).unwrap();
        let slice = bytes.slice(100..9000);
        release(&slice);
        assert_eq!(&bytes[..], &data[..]);
        // Memory that is not a map is untouched.
        let heap = vec![7u8; 10_000];
        release(&heap);
        assert!(heap.iter().all(|&b| b == 7));
    }
}
