//! Rendering `py::Module` into files, and writing the output folder atomically.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use askama::Template;

use crate::error::{Error, Result};
use crate::py::{Module, PyExpr, format};

#[derive(Template)]
#[template(path = "model.py", escape = "none")]
struct ModelTemplate<'a> {
    module: &'a Module,
    classes: Vec<String>,
    uses_functional: bool,
    source_literal: String,
    init_lines: Vec<String>,
    forward_params: String,
    /// Methods after `forward` (loops), each one text block.
    methods: Vec<String>,
}

#[derive(Template)]
#[template(path = "custom_ops.py", escape = "none")]
struct CustomOpsTemplate {
    stubs: Vec<String>,
}

/// One block class as text (no trailing newline).
fn render_class(c: &crate::py::BlockClass) -> String {
    let mut lines = vec![format!("class {}(nn.Module):", c.name)];
    let mut params = vec![PyExpr::name("self")];
    params.extend(c.params.iter().map(|p| PyExpr::name(p.clone())));
    let sig =
        PyExpr::Call { func: Box::new(PyExpr::name("def __init__")), args: params, kwargs: vec![] };
    let mut def = format::statement(4, "", &sig);
    if let Some(last) = def.last_mut() {
        last.push(':');
    }
    lines.extend(def);
    lines.push("        super().__init__()".into());
    for l in &c.layers {
        lines.extend(format::assignment(8, &format!("self.{}", l.name), &l.ctor));
    }
    for (name, dtype, shape) in &c.buffers {
        let empty = PyExpr::call_kw(
            "torch.empty",
            vec![PyExpr::Tuple(shape.clone())],
            vec![("dtype", PyExpr::name(format!("torch.{dtype}")))],
        );
        let call = PyExpr::call("self.register_buffer", vec![PyExpr::str_lit(name), empty]);
        lines.extend(format::statement(8, "", &call));
    }
    lines.push(String::new());
    let mut fwd = vec![PyExpr::name("self")];
    fwd.extend(c.inputs.iter().map(|i| PyExpr::name(i.clone())));
    let sig =
        PyExpr::Call { func: Box::new(PyExpr::name("def forward")), args: fwd, kwargs: vec![] };
    let mut def = format::statement(4, "", &sig);
    if let Some(last) = def.last_mut() {
        last.push(':');
    }
    lines.extend(def);
    for s in &c.body {
        lines.extend(format::assignment(8, &s.target, &s.expr));
    }
    lines.push(format!("        return {}", c.output));
    lines.join("\n")
}

/// The text of `model.py`.
pub fn render_model(module: &Module) -> Result<String> {
    let classes: Vec<String> = module.classes.iter().map(render_class).collect();
    let uses_functional = module
        .body
        .iter()
        .chain(&classes)
        .chain(module.methods.iter().flatten())
        .any(|l| l.contains("F."));
    let mut init_lines = Vec::new();
    for l in &module.layers {
        init_lines.extend(format::assignment(8, &format!("self.{}", l.name), &l.ctor));
    }
    for b in &module.buffers {
        let call = PyExpr::call_kw(
            "self.register_buffer",
            vec![
                PyExpr::str_lit(&b.name),
                PyExpr::call_kw(
                    "torch.empty",
                    vec![PyExpr::ints(&b.shape.iter().map(|&d| d as i64).collect::<Vec<_>>())],
                    vec![("dtype", PyExpr::name(format!("torch.{}", b.torch_dtype)))],
                ),
            ],
            vec![],
        );
        init_lines.extend(format::statement(8, "", &call));
    }
    let mut params = vec!["self".to_string()];
    params.extend(module.params.iter().cloned());
    let t = ModelTemplate {
        module,
        classes,
        uses_functional,
        source_literal: crate::py::expr::str_literal(&module.source_name)
            .trim_matches('"')
            .to_string(),
        init_lines,
        forward_params: params.join(", "),
        methods: module.methods.iter().map(|m| m.join("\n")).collect(),
    };
    let mut s = t.render().map_err(|e| Error::msg(format!("rendering model.py: {e}")))?;
    s.push('\n');
    Ok(s)
}

/// Names of the functions a `custom_ops.py` defines at top level.
fn defined_functions(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("def "))
        .filter_map(|l| l.split(|c: char| c == '(' || c.is_whitespace()).next())
        .map(String::from)
        .collect()
}

/// The new text of `custom_ops.py`: the existing file kept byte for byte, with the missing
/// stubs appended. `None` when nothing needs to change.
pub fn render_custom_ops(module: &Module, existing: Option<&str>) -> Result<Option<String>> {
    match existing {
        None if module.stubs.is_empty() => Ok(None),
        None => {
            let t = CustomOpsTemplate {
                stubs: module.stubs.iter().map(|s| s.source.clone()).collect(),
            };
            let mut s =
                t.render().map_err(|e| Error::msg(format!("rendering custom_ops.py: {e}")))?;
            s.push('\n');
            Ok(Some(s))
        }
        Some(text) => {
            let have = defined_functions(text);
            let missing: Vec<&str> = module
                .stubs
                .iter()
                .filter(|s| !have.contains(&s.function))
                .map(|s| s.source.as_str())
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
                s.push_str(m);
                s.push('\n');
            }
            Ok(Some(s))
        }
    }
}

/// Stub functions the existing `custom_ops.py` has that this model no longer needs.
pub fn unneeded_stubs(module: &Module, existing: &str) -> Vec<String> {
    let needed: BTreeSet<&str> = module.stubs.iter().map(|s| s.function.as_str()).collect();
    defined_functions(existing).into_iter().filter(|f| !needed.contains(f.as_str())).collect()
}

/// Writes files into `out` so that a failure leaves nothing half-written: everything goes to
/// a temporary folder beside `out` first, then each file is renamed into place.
pub struct OutputDir {
    out: PathBuf,
    tmp: tempfile::TempDir,
}

impl OutputDir {
    pub fn new(out: &Path) -> Result<OutputDir> {
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if out.exists() && !out.is_dir() {
            return Err(Error::msg(format!("{}: exists and is not a directory", out.display())));
        }
        fs::create_dir_all(&parent).map_err(|source| Error::Io { path: parent.clone(), source })?;
        let tmp = tempfile::Builder::new()
            .prefix(".tf2torch-")
            .tempdir_in(&parent)
            .map_err(|source| Error::Io { path: parent.clone(), source })?;
        Ok(OutputDir { out: out.to_path_buf(), tmp })
    }

    pub fn staging(&self) -> &Path {
        self.tmp.path()
    }

    pub fn write(&self, name: &str, contents: &[u8]) -> Result<()> {
        let p = self.tmp.path().join(name);
        fs::write(&p, contents).map_err(|source| Error::Io { path: p, source })
    }

    /// Moves the staged files into `out` (created if needed).
    pub fn commit(self) -> Result<()> {
        if !self.out.exists() {
            let tmp = self.tmp.keep();
            return fs::rename(&tmp, &self.out)
                .map_err(|source| Error::Io { path: self.out.clone(), source });
        }
        let entries = fs::read_dir(self.tmp.path())
            .map_err(|source| Error::Io { path: self.tmp.path().into(), source })?;
        let mut names: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
        names.sort();
        for name in names {
            let from = self.tmp.path().join(&name);
            let to = self.out.join(&name);
            fs::rename(&from, &to).map_err(|source| Error::Io { path: to, source })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_defined_functions() {
        let f =
            defined_functions("import torch\n\ndef a(x):\n    pass\n\n\ndef b_c(\n    x,\n):\n");
        assert_eq!(f.into_iter().collect::<Vec<_>>(), vec!["a", "b_c"]);
    }
}
