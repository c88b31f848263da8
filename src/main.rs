//! The `tf2torch` command line.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};

mod progress;
use tf2torch::terminal::printable;

/// Turn a TensorFlow model into PyTorch source code a person can maintain.
///
/// Reads a frozen GraphDef (.pb, or text .pbtxt), a SavedModel directory (TF2 or TF1) or a TF1
/// checkpoint (model.ckpt: .meta + .index + .data) and writes a folder with model.py (one readable nn.Module and
/// load_model()), model.safetensors, and, when some op cannot be translated, custom_ops.py with
/// a documented stub per op. TensorFlow is not needed.
#[derive(Parser)]
#[command(name = "tf2torch", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Convert a model into a folder with model.py, model.safetensors (and custom_ops.py).
    #[command(
        after_help = "Example:\n  tf2torch convert mobilenet_v2.pb -o out/\n  python -c \"import sys; sys.path.insert(0, 'out'); import model; print(model.load_model())\""
    )]
    Convert {
        /// Frozen GraphDef (.pb/.pbtxt), SavedModel directory, or TF1 checkpoint (its prefix
        /// model.ckpt, any of its files, or its directory).
        input: PathBuf,
        /// Output folder (created; an existing custom_ops.py in it is kept).
        #[arg(short, long, value_name = "DIR")]
        out: PathBuf,
        /// Model inputs, in forward() order (default: every Placeholder, in file order).
        #[arg(long, value_delimiter = ',', value_name = "NAME:0,...")]
        inputs: Vec<String>,
        /// Model outputs, in return order (default: the signature's, or every value nothing
        /// consumes; a TF1 checkpoint without a signature needs them unless `inspect` finds
        /// exactly one candidate).
        #[arg(long, value_delimiter = ',', value_name = "NAME:0,...")]
        outputs: Vec<String>,
        /// Name of the generated nn.Module class (default: from the file name).
        #[arg(long)]
        class_name: Option<String>,
        /// Fail (exit 2) instead of writing stubs for ops that cannot be translated.
        #[arg(long)]
        strict: bool,
        /// Weights larger than this are split into model-0000k-of-0000n.safetensors shards
        /// plus model.safetensors.index.json, as Hugging Face does (units B, KB, MB, GB, TB
        /// or KiB, MiB, GiB, TiB).
        #[arg(long, default_value = "5GB", value_name = "SIZE", value_parser = parse_size)]
        max_shard_size: u64,
        /// Print nothing but errors: no progress bar (shown on a terminal for conversions
        /// longer than a second), no summary.
        #[arg(short, long)]
        quiet: bool,
        #[command(flatten)]
        saved_model: SavedModelArgs,
    },
    /// For maintainers: look inside a conversion.
    Debug {
        #[command(subcommand)]
        what: DebugCommand,
    },
    /// Print a model's inputs, outputs, ops and what would translate.
    Inspect {
        /// Frozen GraphDef (.pb/.pbtxt), SavedModel directory, or TF1 checkpoint.
        input: PathBuf,
        #[arg(long, value_delimiter = ',', value_name = "NAME:0,...")]
        inputs: Vec<String>,
        #[arg(long, value_delimiter = ',', value_name = "NAME:0,...")]
        outputs: Vec<String>,
        #[command(flatten)]
        saved_model: SavedModelArgs,
    },
}

#[derive(Subcommand)]
enum DebugCommand {
    /// Print the graph after each pass (nodes in topological order, with their shapes and
    /// attributes): where a fusion did, or did not, happen.
    #[command(
        after_help = "Example:\n  tf2torch debug passes model.pb --node conv1 --pass fuse_bias"
    )]
    Passes {
        /// Frozen GraphDef (.pb) or SavedModel directory.
        input: PathBuf,
        /// Only nodes whose name contains this.
        #[arg(long, value_name = "TEXT")]
        node: Option<String>,
        /// Only after passes of this name (`load` is the graph before any pass).
        #[arg(long, value_name = "NAME")]
        pass: Option<String>,
        #[arg(long, value_delimiter = ',', value_name = "NAME:0,...")]
        inputs: Vec<String>,
        #[arg(long, value_delimiter = ',', value_name = "NAME:0,...")]
        outputs: Vec<String>,
        #[command(flatten)]
        saved_model: SavedModelArgs,
    },
}

/// Options that apply to SavedModel input.
#[derive(clap::Args)]
struct SavedModelArgs {
    /// SavedModel (TF1 ones may hold several MetaGraphs): tags of the MetaGraph to read.
    #[arg(long, value_delimiter = ',', default_value = "serve", value_name = "TAG,...")]
    tags: Vec<String>,
    /// SavedModel: the signature to convert (`inspect` lists them).
    #[arg(long, default_value = "serving_default", value_name = "NAME")]
    signature: String,
}

impl SavedModelArgs {
    fn selection(self) -> tf2torch::load::saved_model::Selection {
        tf2torch::load::saved_model::Selection { tags: self.tags, signature: self.signature }
    }
}

/// Writes to stdout; a closed pipe (`| head`) is not an error worth more than silence.
fn say(text: &str) {
    let _ = std::io::stdout().write_all(text.as_bytes());
}

fn human_bytes(n: usize) -> String {
    let mb = n as f64 / (1024.0 * 1024.0);
    if mb >= 1.0 { format!("{mb:.1} MiB") } else { format!("{:.1} KiB", n as f64 / 1024.0) }
}

/// `5GB`, `500MB`, `2GiB`, `1000` (bytes): decimal units as Hugging Face's `max_shard_size`,
/// binary ones with an `i`.
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("{s:?} is not a size such as 5GB"))?;
    let scale: f64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1.0,
        "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        "KIB" => 1024.0,
        "MIB" => 1024f64.powi(2),
        "GIB" => 1024f64.powi(3),
        "TIB" => 1024f64.powi(4),
        other => {
            return Err(format!("unknown size unit {other:?} (use B, KB, MB, GB, TB, KiB, ...)"));
        }
    };
    let bytes = (value * scale).round();
    if !(1.0..=u64::MAX as f64).contains(&bytes) {
        return Err(format!("{s:?}: the size must be at least one byte"));
    }
    Ok(bytes as u64)
}

/// What a conversion did, for stdout.
fn summary(opts: &tf2torch::Options, r: &tf2torch::Report, seconds: f64) -> String {
    let mut out = String::new();
    let translated: usize = r.summary.translated.values().sum();
    let _ = writeln!(
        out,
        "converted {} -> {}/ in {:.2}s",
        printable(&opts.input.display().to_string()),
        printable(&opts.out_dir.display().to_string()),
        seconds
    );
    let _ = writeln!(
        out,
        "  class {}: {} layers, {} forward lines, {} parameters ({})",
        r.class_name,
        r.layers,
        r.forward_lines,
        r.parameters,
        human_bytes(r.weight_bytes)
    );
    if r.weight_files.len() > 1 {
        let _ = writeln!(
            out,
            "  weights in {} shards, listed in {}",
            r.weight_files.len() - 1,
            r.weight_files.last().map_or("", String::as_str)
        );
    }
    let _ =
        writeln!(out, "  {translated} ops translated, {} op types stubbed", r.summary.stubs.len());
    for s in &r.summary.stubs {
        let _ = writeln!(
            out,
            "  stub: {} -> custom_ops.{}() for {} node(s): {}",
            printable(&s.op),
            s.function,
            s.nodes.len(),
            printable(&s.reason)
        );
    }
    if !r.summary.stubs.is_empty() {
        let _ = writeln!(
            out,
            "  fill in the stubs in {}/custom_ops.py before running the model",
            printable(&opts.out_dir.display().to_string())
        );
    }
    for n in &r.notes {
        let _ = writeln!(out, "  note: {}", printable(n));
    }
    for f in &r.unneeded_stubs {
        let _ = writeln!(
            out,
            "  note: custom_ops.{}() is no longer used by this model (kept)",
            printable(f)
        );
    }
    out
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Convert {
            input,
            out,
            inputs,
            outputs,
            class_name,
            strict,
            max_shard_size,
            quiet,
            saved_model,
        } => {
            let start = Instant::now();
            let opts = tf2torch::Options {
                input,
                out_dir: out,
                inputs,
                outputs,
                class_name,
                strict,
                selection: saved_model.selection(),
                max_shard_bytes: Some(max_shard_size),
            };
            let bar = progress::Bar::new(quiet);
            let result = tf2torch::convert_observed(&opts, &|p| bar.update(p));
            bar.finish();
            match result {
                Ok(r) => {
                    if !quiet {
                        say(&summary(&opts, &r, start.elapsed().as_secs_f64()));
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {}", printable(&e.to_string()));
                    if matches!(e, tf2torch::Error::Untranslated(_)) {
                        ExitCode::from(2)
                    } else {
                        ExitCode::FAILURE
                    }
                }
            }
        }
        Command::Debug {
            what: DebugCommand::Passes { input, node, pass, inputs, outputs, saved_model },
        } => {
            // Each pass's graph, or a note that it did not change what is shown.
            let mut last: Option<String> = None;
            let mut after = |name: &str, g: &tf2torch::ir::Graph| {
                if pass.as_deref().is_some_and(|p| p != name) {
                    return;
                }
                let text = tf2torch::ir::dump(g, node.as_deref());
                if last.as_ref() == Some(&text) {
                    say(&format!("== after {name}: unchanged ==\n"));
                } else {
                    let shown = if text.is_empty() { "(no node matches)\n" } else { &text };
                    say(&format!("== after {name} ==\n{shown}"));
                    last = Some(text);
                }
            };
            let sel = saved_model.selection();
            match tf2torch::load_graph_observed(&input, &inputs, &outputs, &sel, &mut after) {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {}", printable(&e.to_string()));
                    ExitCode::FAILURE
                }
            }
        }
        Command::Inspect { input, inputs, outputs, saved_model } => {
            match tf2torch::inspect::inspect(&input, &inputs, &outputs, &saved_model.selection()) {
                Ok(s) => {
                    say(&s);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {}", printable(&e.to_string()));
                    ExitCode::FAILURE
                }
            }
        }
    }
}
