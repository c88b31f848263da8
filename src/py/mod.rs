//! The Python program as data: every name and expression final, ready for the templates.

pub mod expr;
pub mod format;
pub mod names;

pub use expr::PyExpr;

use crate::tensor::Tensor;

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

/// `self.<name> = <ctor>` in `__init__`.
#[derive(Clone, Debug)]
pub struct Layer {
    pub name: String,
    pub ctor: PyExpr,
}

/// A constant tensor the forward pass reads, registered as a buffer.
#[derive(Clone, Debug)]
pub struct Buffer {
    pub name: String,
    pub shape: Vec<usize>,
    pub torch_dtype: &'static str,
}

/// A block that repeats under sibling scopes, emitted once as an `nn.Module` class.
#[derive(Clone, Debug)]
pub struct BlockClass {
    pub name: String,
    /// `__init__` parameters (constructor arguments that differ between instances).
    pub params: Vec<String>,
    pub layers: Vec<Layer>,
    /// Buffers: name, torch dtype, shape (entries may be parameters).
    pub buffers: Vec<(String, &'static str, Vec<PyExpr>)>,
    pub body: Vec<crate::lower::Stmt>,
    pub inputs: Vec<String>,
    pub output: String,
}

/// One function of `custom_ops.py`.
#[derive(Clone, Debug)]
pub struct Stub {
    pub function: String,
    /// The complete `def ...` text, documented, raising NotImplementedError.
    pub source: String,
}

#[derive(Clone, Debug, Default)]
pub struct Module {
    pub class_name: String,
    /// File name of the source model (no directories: output must not depend on paths).
    pub source_name: String,
    pub layers: Vec<Layer>,
    pub buffers: Vec<Buffer>,
    pub params: Vec<String>,
    /// `forward` body lines, formatted and indented.
    pub body: Vec<String>,
    /// The `return` statement, formatted and indented.
    pub return_lines: Vec<String>,
    pub stubs: Vec<Stub>,
    /// Fixed helper classes the model uses (name, source), defined before everything else.
    pub support: Vec<(String, String)>,
    /// Methods after `forward` (loops), each as formatted lines.
    pub methods: Vec<Vec<String>>,
    /// Classes for repeated blocks, defined before the model class.
    pub classes: Vec<BlockClass>,
    /// `state_dict` key → weight, in module order.
    pub weights: Vec<(String, Weight)>,
}
