//! What lowering produces: the `nn.Module` as parts (layers, buffers, `forward`'s statements,
//! block classes, loop methods, stubs, weights), and the syntax trees of its classes.

use std::collections::BTreeSet;

use crate::py::{Assign, ClassDef, Expr, FunctionDef, Lit, Param, Stmt};
use crate::weights::Weight;

/// Block classes inside block classes, levels at most (see [`Module::instance_paths`]).
const MAX_CLASS_NESTING: usize = 16;

/// `self.<name> = <ctor>` in `__init__`.
#[derive(Clone, Debug)]
pub struct Layer {
    pub name: String,
    pub ctor: Expr,
}

/// A constant tensor `forward` reads: `name`, torch dtype, and shape (entries may be
/// constructor parameters in a block class). A buffer, or an `nn.Parameter` where the model
/// trained it (a TF variable: ConvNeXt's layer scale).
#[derive(Clone, Debug)]
pub struct Buffer {
    pub name: String,
    pub torch_dtype: &'static str,
    pub shape: Vec<Expr>,
    pub trainable: bool,
}

impl Buffer {
    /// The static sizes, for a buffer of the model class itself.
    pub fn dims(&self) -> Vec<Option<i64>> {
        self.shape.iter().map(Expr::as_int).collect()
    }
}

/// A block that repeats under sibling scopes, written once as an `nn.Module` class.
#[derive(Clone, Debug)]
pub struct BlockClass {
    pub name: String,
    /// `__init__` parameters (constructor arguments that differ between instances), those
    /// with defaults last.
    pub params: Vec<Param>,
    pub layers: Vec<Layer>,
    pub buffers: Vec<Buffer>,
    pub body: Vec<Assign>,
    /// What only some instances run, after `body`, in order.
    pub optional: Vec<OptionalPart>,
    /// Parameters `forward` reads, kept as `self.<name>` (`self.pad`).
    pub attributes: Vec<String>,
    pub inputs: Vec<String>,
    pub output: String,
    /// What it returns after `output` (see `blocks::Member::extra_outputs`).
    pub extra_outputs: Vec<String>,
    /// Which of `inputs`, and whether the output, every instance passes a tensor (not a
    /// size held as a Python int): those get `torch.Tensor` hints.
    pub tensor_inputs: Vec<bool>,
    pub tensor_output: bool,
    /// Which of `inputs` every instance passes a size read from a shape (`seq_len`): those
    /// get `int` hints.
    pub size_inputs: Vec<bool>,
    /// Locals whose names say less than their layers' did (`py::names::Scope::temporaries`).
    pub temporaries: BTreeSet<String>,
    /// Those of `temporaries` named after the class's own scope: values it computes
    /// outside any layer of its own (`double_stream_block_8`), whose names say nothing in it.
    pub own_values: BTreeSet<String>,
    /// A unit (see `blocks::units`): its instances keep their names, never a list.
    pub unit: bool,
}

/// A part of the model that holds blocks, called once (see `lower::towers`): its statements
/// as `forward` had them, loops included.
#[derive(Clone, Debug)]
pub struct Tower {
    pub name: String,
    pub layers: Vec<Layer>,
    pub buffers: Vec<Buffer>,
    pub body: Vec<Stmt>,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    /// Which of `inputs`, and whether every output, always holds a tensor.
    pub tensor_inputs: Vec<bool>,
    pub tensor_output: bool,
}

impl Tower {
    pub fn class_def(&self) -> ClassDef {
        let mut body = self.body.clone();
        let outputs: Vec<Expr> = self.outputs.iter().map(Expr::name).collect();
        let n = outputs.len();
        body.push(Stmt::return_values(outputs));
        let mut forward = FunctionDef::method("forward", &self.inputs, body);
        let tensor = Expr::path("torch.Tensor");
        for (p, _) in forward.params[1..].iter_mut().zip(&self.tensor_inputs).filter(|(_, t)| **t) {
            p.annotation = Some(tensor.clone());
        }
        forward.returns = self.tensor_output.then(|| match n {
            1 => tensor.clone(),
            _ => Expr::name("tuple").index(Expr::Tuple(vec![tensor.clone(); n])),
        });
        module_class(&self.name, vec![init(&[], &self.layers, &self.buffers), forward])
    }
}

/// The part of a block class only some instances have: torchvision's `downsample`, Keras'
/// `conv_shortcut`, the padding of a strided convolution.
#[derive(Clone, Debug)]
pub struct OptionalPart {
    /// The `__init__` parameter saying whether the instance has it (kept as `self.<param>`).
    pub param: String,
    /// Whether it does, in terms of the parameter: `conv_shortcut`, `pad is not None`.
    pub test: Expr,
    /// Layers built only with it.
    pub layers: Vec<String>,
    /// What `forward` runs only with it.
    pub body: Vec<Assign>,
    /// What it runs after that, with or without.
    pub after: Vec<Assign>,
}

/// One function of `custom_ops.py`.
#[derive(Clone, Debug)]
pub struct Stub {
    pub function: String,
    /// The TF op it stands for.
    pub op: String,
    /// Documented, raising `NotImplementedError`.
    pub def: FunctionDef,
}

#[derive(Clone, Debug, Default)]
pub struct Module {
    pub class_name: String,
    /// File name of the source model (no directories: output must not depend on paths).
    pub source_name: String,
    pub layers: Vec<Layer>,
    pub buffers: Vec<Buffer>,
    /// `forward`'s parameters.
    pub params: Vec<String>,
    /// Inputs whose TF name could not be their parameter's (a keyword, or a name `forward`
    /// itself uses, such as `torch`): (TF name, parameter), said in `forward`'s docstring.
    pub renamed_inputs: Vec<(String, String)>,
    pub body: Vec<Stmt>,
    /// What `forward` returns, in TF's output order.
    pub outputs: Vec<Expr>,
    /// TF's dtype and shape of each input and output (`float32 [None, 224, 224, 3]`), for
    /// `forward`'s docstring.
    pub input_types: Vec<String>,
    pub output_types: Vec<String>,
    pub stubs: Vec<Stub>,
    /// Fixed helper classes the model uses (name, source), defined before everything else.
    pub support: Vec<(&'static str, &'static str)>,
    /// Methods after `forward` (loops).
    pub methods: Vec<FunctionDef>,
    /// Functions before the classes: loops reading none of the model's layers, shared by
    /// the layers that run them.
    pub functions: Vec<FunctionDef>,
    /// Classes for repeated blocks, defined before the model class.
    pub classes: Vec<BlockClass>,
    /// Classes for parts that hold blocks, after the block classes.
    pub towers: Vec<Tower>,
    /// `state_dict` key → weight, in module order.
    pub weights: Vec<(String, Weight)>,
    /// The TF model computes channels first (Keras' `channels_first`: NCHW ops), so its
    /// inputs and outputs are channels first too.
    pub tf_channels_first: bool,
}

/// `self.register_buffer("name", torch.empty(shape, dtype=torch.<dtype>))`, or
/// `self.name = nn.Parameter(torch.empty(...))` for a trained one.
fn register_buffer(b: &Buffer) -> Stmt {
    let empty = Expr::call_kw(
        "torch.empty",
        vec![Expr::Tuple(b.shape.clone())],
        vec![("dtype", Expr::path("torch").attr(b.torch_dtype))],
    );
    if b.trainable {
        return Stmt::assign(Expr::self_attr(&b.name), Expr::call("nn.Parameter", vec![empty]));
    }
    Stmt::Expr(Expr::call("self.register_buffer", vec![Expr::str_lit(&b.name), empty]))
}

/// `def __init__(self, params): super().__init__(); layers; buffers`, each trained
/// parameter beside the layers of its scope (see [`beside`]).
fn init(params: &[Param], layers: &[Layer], buffers: &[Buffer]) -> FunctionDef {
    let mut body = vec![Stmt::Expr(Expr::call("super", vec![]).method("__init__", vec![]))];
    let mut after: Vec<Vec<&Buffer>> = vec![Vec::new(); layers.len()];
    let mut last: Vec<&Buffer> = Vec::new();
    for b in buffers {
        match beside(&b.name, layers).filter(|_| b.trainable) {
            Some(k) => after[k].push(b),
            None => last.push(b),
        }
    }
    for (layer, params) in layers.iter().zip(&after) {
        body.push(Stmt::assign(Expr::self_attr(&layer.name), layer.ctor.clone()));
        body.extend(params.iter().copied().map(register_buffer));
    }
    body.extend(last.into_iter().map(register_buffer));
    let mut all = vec![Param::new("self")];
    all.extend(params.iter().cloned());
    FunctionDef::new("__init__", all, body)
}

/// The last of `layers` that shares the most leading words with parameter `name`, all but
/// its last two (`lab_scale`) at least: HGNetV2's `agg_squeeze_lab_scale` after
/// `agg_squeeze_bn`, where its `forward` reads it, not after every layer of the class.
fn beside(name: &str, layers: &[Layer]) -> Option<usize> {
    let words: Vec<&str> = name.split('_').collect();
    let shared =
        |layer: &str| words.iter().zip(layer.split('_')).take_while(|(a, b)| **a == *b).count();
    let (k, n) = layers
        .iter()
        .enumerate()
        .map(|(k, l)| (k, shared(&l.name)))
        .filter(|&(_, n)| n > 0)
        .max_by_key(|&(k, n)| (n, k))?;
    (n + 2 >= words.len()).then_some(k)
}

fn module_class(name: &str, methods: Vec<FunctionDef>) -> ClassDef {
    ClassDef {
        name: name.to_string(),
        bases: vec![Expr::path("nn.Module")],
        docstring: Vec::new(),
        body: methods.into_iter().map(Stmt::FunctionDef).collect(),
    }
}

impl BlockClass {
    pub fn class_def(&self) -> ClassDef {
        let assigns = |b: &[Assign]| b.iter().cloned().map(Stmt::Assign).collect::<Vec<_>>();
        let mut body = assigns(&self.body);
        let mut init = init(&self.params, &self.layers, &self.buffers);
        let kept = self.attributes.iter().map(|a| Stmt::assign(Expr::self_attr(a), Expr::name(a)));
        let kept: Vec<Stmt> = kept.collect();
        for part in &self.optional {
            // `forward` tests the kept parameter as `__init__` tests the argument.
            let on_self = |r: crate::py::Ref<'_>| match r {
                crate::py::Ref::Var(v) if v == part.param => Some(Expr::self_attr(v)),
                _ => None,
            };
            let test = part.test.renamed(&on_self);
            body.push(Stmt::If { test, body: assigns(&part.body), orelse: vec![] });
            body.extend(assigns(&part.after));
            // The optional layers under `if <test>:` where the first of them was.
            let is_optional = |s: &Stmt| match s {
                Stmt::Assign(a) => {
                    a.target.as_self_attr().is_some_and(|n| part.layers.iter().any(|l| l == n))
                }
                _ => false,
            };
            let at = init.body.iter().position(is_optional);
            let (optional, mut rest): (Vec<Stmt>, Vec<Stmt>) =
                init.body.into_iter().partition(is_optional);
            if let Some(at) = at {
                rest.insert(
                    at,
                    Stmt::If { test: part.test.clone(), body: optional, orelse: vec![] },
                );
            }
            init.body = rest;
        }
        init.body.splice(1..1, kept);
        let outputs: Vec<Expr> =
            std::iter::once(&self.output).chain(&self.extra_outputs).map(Expr::name).collect();
        let n = outputs.len();
        body.push(Stmt::return_values(outputs));
        let mut forward = FunctionDef::method("forward", &self.inputs, body);
        let tensor = Expr::path("torch.Tensor");
        for (p, _) in forward.params[1..].iter_mut().zip(&self.tensor_inputs).filter(|(_, t)| **t) {
            p.annotation = Some(tensor.clone());
        }
        for (p, _) in forward.params[1..].iter_mut().zip(&self.size_inputs).filter(|(_, s)| **s) {
            p.annotation = Some(Expr::name("int"));
        }
        forward.returns = self.tensor_output.then(|| match n {
            1 => tensor.clone(),
            _ => Expr::name("tuple").index(Expr::Tuple(vec![tensor.clone(); n])),
        });
        module_class(&self.name, vec![init, forward])
    }
}

impl Module {
    /// The model class: `__init__`, `forward`, then the loop methods.
    pub fn class_def(&self) -> ClassDef {
        let mut body = self.body.clone();
        body.push(Stmt::return_values(self.outputs.clone()));
        let mut forward = FunctionDef::method("forward", &self.params, body);
        let tensor = Expr::path("torch.Tensor");
        for p in &mut forward.params[1..] {
            p.annotation = Some(tensor.clone());
        }
        forward.returns = Some(match self.outputs.len() {
            1 => tensor.clone(),
            n @ 2..=3 => Expr::name("tuple").index(Expr::Tuple(vec![tensor.clone(); n])),
            _ => Expr::name("tuple").index(Expr::Tuple(vec![tensor, Expr::Lit(Lit::Ellipsis)])),
        });
        forward.docstring = self.forward_docstring();
        if !self.renamed_inputs.is_empty() {
            forward.docstring.push(String::new());
            forward.docstring.push("Inputs named otherwise in TensorFlow:".to_string());
            forward.docstring.push(String::new());
            for (tf, param) in &self.renamed_inputs {
                forward.docstring.push(format!("- `{tf}` is `{param}`"));
            }
        }
        let mut methods = vec![init(&[], &self.layers, &self.buffers), forward];
        methods.extend(self.methods.iter().cloned());
        module_class(&self.class_name, methods)
    }

    /// `Args:` and `Returns:` with TF's dtypes and shapes (channels last, as TF has them).
    fn forward_docstring(&self) -> Vec<String> {
        let mut doc = vec![
            if self.tf_channels_first {
                "Runs the model on TF's inputs, with their dtypes and shapes (channels first)."
            } else {
                "Runs the model on TF's inputs, with their dtypes and shapes (channels last)."
            }
            .to_string(),
            String::new(),
        ];
        if !self.params.is_empty() {
            doc.push("Args:".to_string());
            for (name, t) in self.params.iter().zip(&self.input_types) {
                doc.push(format!("    {name}: {t}"));
            }
            doc.push(String::new());
        }
        doc.push("Returns:".to_string());
        match self.output_types.as_slice() {
            [one] => doc.push(format!("    {one}")),
            many => {
                for (i, t) in many.iter().enumerate() {
                    doc.push(format!("    {i}: {t}"));
                }
            }
        }
        doc
    }

    /// Whether a layer of the model or of a block class is built by a callable whose name
    /// starts with `prefix` (`nn.BatchNorm`).
    pub fn uses_layer(&self, prefix: &str) -> bool {
        let layers = self.layers.iter().chain(self.classes.iter().flat_map(|c| &c.layers));
        let layers = layers.chain(self.towers.iter().flat_map(|t| &t.layers));
        layers.map(|l| crate::py::printer::flat(&l.ctor)).any(|c| c.starts_with(prefix))
    }

    /// Moves each weight whose key's first part (a layer or buffer of the model's) `new_head`
    /// renames: `conv2_block2.conv1.weight` → `conv2_blocks.0.conv1.weight`.
    pub fn rename_weight_heads(&mut self, new_head: impl Fn(&str) -> Option<String>) {
        for (key, _) in self.weights.iter_mut() {
            let (head, rest) =
                key.split_once('.').map_or((key.as_str(), None), |(h, r)| (h, Some(r)));
            if let Some(new) = new_head(head) {
                *key = match rest {
                    Some(rest) => format!("{new}.{rest}"),
                    None => new,
                };
            }
        }
    }

    /// Where the instances of block class `class` are in the state dict, each with a trailing
    /// `.`: model layers (`conv2_block1.`), and layers of the classes holding one, under
    /// each of their instances (`hybrid_encoder_fpn_block_1.csp_rep1.`).
    pub fn instance_paths(&self, class: &str) -> Vec<String> {
        self.paths_within(class, 0)
    }

    fn paths_within(&self, class: &str, depth: usize) -> Vec<String> {
        let calls =
            |l: &&Layer| matches!(&l.ctor, Expr::Call(c) if c.func.as_name() == Some(class));
        let mut paths: Vec<String> =
            self.layers.iter().filter(calls).map(|l| format!("{}.", l.name)).collect();
        // Classes hold classes made before them, so this ends; bounded all the same.
        if depth >= MAX_CLASS_NESTING {
            return paths;
        }
        for holder in self.classes.iter().filter(|h| h.name != class) {
            for l in holder.layers.iter().filter(calls) {
                for outer in self.paths_within(&holder.name, depth + 1) {
                    paths.push(format!("{outer}{}.", l.name));
                }
            }
        }
        paths
    }

    /// How many lines `forward` has before its `return`, as printed.
    pub fn forward_lines(&self) -> usize {
        crate::py::printer::block(&self.body, 8).len()
    }

    /// Every class `model.py` defines, in file order: block classes, towers, then the model.
    pub fn class_defs(&self) -> Vec<Stmt> {
        let mut out: Vec<Stmt> = self.functions.iter().cloned().map(Stmt::FunctionDef).collect();
        out.extend(self.classes.iter().map(|c| Stmt::ClassDef(c.class_def())));
        out.extend(self.towers.iter().map(|t| Stmt::ClassDef(t.class_def())));
        out.push(Stmt::ClassDef(self.class_def()));
        for class in &mut out {
            if let Stmt::ClassDef(c) = class {
                super::devices::on_inputs_device(c);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::{Layer, beside};
    use crate::py::Expr;

    #[test]
    fn a_trained_parameter_sits_beside_the_layers_of_its_scope() {
        let layers: Vec<Layer> = ["agg_squeeze_conv", "agg_squeeze_bn", "agg_excite_conv"]
            .iter()
            .map(|n| Layer { name: n.to_string(), ctor: Expr::name("nn.Identity") })
            .collect();
        assert_eq!(beside("agg_squeeze_lab_scale", &layers), Some(1));
        assert_eq!(beside("agg_excite_lab_bias", &layers), Some(2));
        // ConvNeXt's layer scale shares no scope with a layer: after them all.
        assert_eq!(beside("layer_scale", &layers), None);
        // Nor does one that only begins alike (`agg` of four words).
        assert_eq!(beside("agg_gamma_scale_bias", &layers), None);
    }
}
