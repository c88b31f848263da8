//! Prints the keys of a checkpoint index (`.index`) and the size of each value: a debugging
//! aid for the tensor-bundle reader. `cargo run --example dump_index -- PATH.index`
fn main() -> anyhow::Result<()> {
    let path = std::env::args().nth(1).ok_or(anyhow::anyhow!("usage: dump_index PATH.index"))?;
    let bytes = std::fs::read(&path).map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
    for (k, v) in tf2torch::load::bundle::read_table(&bytes)? {
        println!("{:?} {}", String::from_utf8_lossy(&k), v.len());
    }
    Ok(())
}
