//! Printing the lowered module into files, and writing the output folder atomically. The
//! templates hold only each file's fixed skeleton; everything generated comes from the
//! printer.

use std::collections::BTreeSet;

use askama::Template;

use crate::error::{Error, Result};
use crate::lower::Module;
use crate::py::printer;
use crate::py::user_code::UserModule;
use crate::py::{Stmt, ast};

#[derive(Template)]
#[template(path = "model.py", escape = "none")]
struct ModelTemplate<'a> {
    class_name: &'a str,
    /// The source file name, escaped for the module docstring.
    source_doc: String,
    has_stubs: bool,
    /// Module aliases the generated code refers to (`F`), so that only those are imported.
    uses: BTreeSet<String>,
    /// Fixed helper classes (templates of their own).
    support: Vec<&'a str>,
    /// The block classes and the model class, printed.
    classes: String,
    /// The weights are shards listed in `model.safetensors.index.json`.
    sharded: bool,
    /// The model has batch norms, which `load_model` can fold into the convs before them.
    batch_norms: bool,
    /// 2-D convolutions: `load_model(channels_last=True)` is offered.
    convs: bool,
    /// The TF model is channels first: so are its inputs and outputs.
    tf_channels_first: bool,
}

#[derive(Template)]
#[template(path = "custom_ops.py", escape = "none")]
struct CustomOpsTemplate {
    stubs: Vec<String>,
}

/// Every name the statements read or bind, nested statements included.
fn names_used(stmts: &[Stmt]) -> BTreeSet<String> {
    stmts.iter().flat_map(Stmt::all_names).map(String::from).collect()
}

/// The text of `model.py`; `sharded`: its weights are shards (see `weights::write_all`).
pub fn render_model(module: &Module, sharded: bool) -> Result<String> {
    let classes = module.class_defs();
    let t = ModelTemplate {
        class_name: &module.class_name,
        source_doc: printer::escape(&module.source_name),
        has_stubs: !module.stubs.is_empty(),
        uses: names_used(&classes),
        support: module.support.iter().map(|(_, source)| source.trim()).collect(),
        classes: printer::block(&classes, 0).join("\n"),
        sharded,
        batch_norms: module.uses_layer("nn.BatchNorm"),
        convs: module.uses_layer("nn.Conv2d"),
        tf_channels_first: module.tf_channels_first,
    };
    let mut s = t.render().map_err(|e| Error::msg(format!("rendering model.py: {e}")))?;
    s.push('\n');
    Ok(s)
}

/// A stub as `custom_ops.py` holds it (no trailing newline).
fn stub_text(def: &ast::FunctionDef) -> String {
    printer::block(&[Stmt::FunctionDef(def.clone())], 0).join("\n")
}

/// The new text of `custom_ops.py`: the existing file (with what it binds) kept byte for
/// byte, with the stubs for ops it has no function for appended. `None` when nothing needs to
/// change.
pub fn render_custom_ops(
    module: &Module,
    existing: Option<(&str, &UserModule)>,
) -> Result<Option<String>> {
    match existing {
        None if module.stubs.is_empty() => Ok(None),
        None => {
            let t = CustomOpsTemplate {
                stubs: module.stubs.iter().map(|s| stub_text(&s.def)).collect(),
            };
            let mut s =
                t.render().map_err(|e| Error::msg(format!("rendering custom_ops.py: {e}")))?;
            s.push('\n');
            Ok(Some(s))
        }
        Some((text, user)) => {
            // Lowering bound every op the file implements to its function (see
            // `UserModule::function_for`); any other name is free, so its stub is missing.
            let missing: Vec<String> = module
                .stubs
                .iter()
                .filter(|s| !user.names.contains(&s.function))
                .map(|s| stub_text(&s.def))
                .collect();
            if missing.is_empty() {
                return Ok(None);
            }
            let mut s = text.to_string();
            if !s.ends_with('\n') {
                s.push('\n');
            }
            for m in missing {
                s.push_str("\n\n");
                s.push_str(&m);
                s.push('\n');
            }
            Ok(Some(s))
        }
    }
}

/// Functions of the existing `custom_ops.py` that implement an op (their docstring says which)
/// this model no longer needs.
pub fn unneeded_stubs(module: &Module, user: &UserModule) -> Vec<String> {
    let needed: BTreeSet<&str> = module.stubs.iter().map(|s| s.function.as_str()).collect();
    let functions: BTreeSet<&String> = user.ops.values().collect();
    functions.into_iter().filter(|f| !needed.contains(f.as_str())).cloned().collect()
}
