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

/// Gives back the pages under `bytes` if they belong to a map made by [`map`] (anything else,
/// such as a tensor computed in memory, is left alone). The bytes stay readable.
pub fn release(bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    let (start, end) = (bytes.as_ptr() as usize, bytes.as_ptr() as usize + bytes.len());
    let maps = MAPS.lock().unwrap_or_else(|e| e.into_inner());
    for map in maps.iter().filter_map(Weak::upgrade) {
        let base = map.as_ptr() as usize;
        if start >= base && end <= base + map.len() {
            #[cfg(unix)]
            // SAFETY: a private read-only file map: dropped pages read back from the file.
            let _ = unsafe {
                map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    start - base,
                    bytes.len(),
                )
            };
            return;
        }
    }
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
