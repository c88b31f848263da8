//! The tensor-bundle reader on a checkpoint TensorFlow wrote with 6000 variables (an index
//! of several data blocks), and on corrupted copies of it. The fixture is made by
//! `tests/fixtures/make_fixtures.py many_variables build/fixtures` (scripts/test.sh does it).

mod common;

use std::path::PathBuf;

use tf2torch::load::bundle::{Bundle, read_table};

/// The TensorFlow-made checkpoint (`None`: the test is skipped, see `common`).
fn fixture() -> Option<PathBuf> {
    let dir = common::generated_fixture("many_variables", "many_variables")?;
    dir.join("ckpt.index").exists().then_some(dir)
}

/// Copies the checkpoint into a temp dir, letting `edit` change the index or data bytes.
fn corrupted(edit: impl Fn(&mut Vec<u8>, &mut Vec<u8>)) -> Option<(tempfile::TempDir, PathBuf)> {
    let src = fixture()?;
    let tmp = tempfile::tempdir().unwrap();
    let mut index = std::fs::read(src.join("ckpt.index")).unwrap();
    let mut data = std::fs::read(src.join("ckpt.data-00000-of-00001")).unwrap();
    edit(&mut index, &mut data);
    std::fs::write(tmp.path().join("ckpt.index"), index).unwrap();
    std::fs::write(tmp.path().join("ckpt.data-00000-of-00001"), data).unwrap();
    let prefix = tmp.path().join("ckpt");
    Some((tmp, prefix))
}

#[test]
fn reads_every_entry_across_data_blocks() {
    let Some(dir) = fixture() else { return };
    let index = std::fs::read(dir.join("ckpt.index")).unwrap();
    assert!(index.len() > 262_144, "fixture should span several 256 KiB data blocks");
    let entries = read_table(&index).unwrap();
    let keys: Vec<&[u8]> = entries.iter().map(|(k, _)| k.as_slice()).collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "keys must come out strictly increasing");
    let bundle = Bundle::open(&dir.join("ckpt")).unwrap();
    let vars = bundle.keys().filter(|k| k.ends_with("/.ATTRIBUTES/VARIABLE_VALUE")).count();
    assert_eq!(vars, 6000);
    // Shapes follow the script: (i % 5 + 1, 3) float32.
    for i in [0usize, 1, 1234, 4999, 5999] {
        let key = format!("layer_{i:04}_with_a_long_descriptive_name/.ATTRIBUTES/VARIABLE_VALUE");
        let t = bundle.tensor(&key).unwrap();
        assert_eq!(t.shape, vec![i % 5 + 1, 3], "{key}");
    }
    assert!(!bundle.scalar_string("_CHECKPOINTABLE_OBJECT_GRAPH").unwrap().is_empty());
}

#[test]
fn a_flipped_data_byte_is_a_checksum_error() {
    let Some((_tmp, prefix)) = corrupted(|_, data| data[100] ^= 0x01) else { return };
    let bundle = Bundle::open(&prefix).unwrap();
    let errors: Vec<String> = bundle
        .keys()
        .map(String::from)
        .collect::<Vec<_>>()
        .iter()
        .filter_map(|k| bundle.tensor(k).err().map(|e| e.to_string()))
        .filter(|e| e.contains("checksum"))
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("ckpt.index") && errors[0].contains("layer_"), "{}", errors[0]);
}

#[test]
fn a_flipped_index_byte_is_a_checksum_error() {
    let Some((_tmp, prefix)) = corrupted(|index, _| index[1000] ^= 0x40) else { return };
    let err = Bundle::open(&prefix).err().expect("must fail").to_string();
    assert!(err.contains("checksum") && err.contains("ckpt.index"), "{err}");
}

#[test]
fn a_truncated_footer_is_a_clear_error() {
    let Some((_tmp, prefix)) = corrupted(|index, _| index.truncate(index.len() - 10)) else {
        return;
    };
    let err = Bundle::open(&prefix).err().expect("must fail").to_string();
    assert!(err.contains("magic") || err.contains("truncated"), "{err}");
}

#[test]
fn a_truncated_data_file_is_a_clear_error() {
    let Some((_tmp, prefix)) = corrupted(|_, data| data.truncate(data.len() / 20)) else { return };
    let bundle = Bundle::open(&prefix).unwrap();
    let keys: Vec<String> = bundle.keys().map(String::from).collect();
    let errors: Vec<String> =
        keys.iter().filter_map(|k| bundle.tensor(k).err().map(|e| e.to_string())).collect();
    assert!(errors.len() > 100, "most tensors lie past the cut: {}", errors.len());
    assert!(errors.iter().all(|e| e.contains("truncated") || e.contains("checksum")), "{errors:?}");
}
