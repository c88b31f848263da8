//! Test helper: build a small graph by hand, run the passes and lowering, and print what the
//! generated module would contain, for inline snapshots of each translation branch and pass.

use crate::ir::{Graph, Node, ValueInfo, ValueRef};
use crate::proto::attr_value::Value;
use crate::proto::{AttrValue, ListValue};
use crate::py::Stmt;
use crate::py::printer::{self, flat};
use crate::tensor::{DType, Tensor};

pub fn int(i: i64) -> AttrValue {
    AttrValue { value: Some(Value::I(i)) }
}

pub fn ints(v: &[i64]) -> AttrValue {
    AttrValue {
        value: Some(Value::List(Box::new(ListValue { i: v.to_vec(), ..Default::default() }))),
    }
}

pub fn float(f: f32) -> AttrValue {
    AttrValue { value: Some(Value::F(f)) }
}

pub fn boolean(b: bool) -> AttrValue {
    AttrValue { value: Some(Value::B(b)) }
}

pub fn string(s: &str) -> AttrValue {
    AttrValue { value: Some(Value::S(s.as_bytes().to_vec())) }
}

pub fn dtype(d: DType) -> AttrValue {
    AttrValue { value: Some(Value::Type(d.to_tf())) }
}

/// A float32 tensor of `shape` with small distinct values.
pub fn weights(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|i| (i % 7) as f32 * 0.1 + 0.5).collect();
    Tensor::from_f32(shape.to_vec(), &v)
}

/// Three letters for `i` (below 26³), no digit: a name Keras would take for an author's,
/// for graphs of thousands of distinct scopes (`aaa`, `baa`, ...).
pub fn letters(mut i: usize) -> String {
    let mut s = String::new();
    for _ in 0..3 {
        s.push((b'a' + (i % 26) as u8) as char);
        i /= 26;
    }
    s
}

pub fn int_tensor(shape: &[usize], v: &[i64]) -> Tensor {
    Tensor::from_i32(shape.to_vec(), &v.iter().map(|&x| x as i32).collect::<Vec<_>>())
}

#[derive(Default)]
pub struct TestGraph {
    g: Graph,
    next: usize,
}

impl TestGraph {
    pub fn new() -> TestGraph {
        TestGraph::default()
    }

    fn ordinal(&mut self) -> usize {
        self.next += 1;
        self.next
    }

    /// A float32 model input; `-1` is an unknown dim.
    pub fn input(&mut self, name: &str, shape: &[i64]) -> ValueRef {
        self.typed_input(name, shape, DType::F32)
    }

    pub fn typed_input(&mut self, name: &str, shape: &[i64], dtype: DType) -> ValueRef {
        let ord = self.ordinal();
        let mut n = Node::new(name, "Placeholder", ord);
        let shape = shape.iter().map(|&d| (d >= 0).then_some(d as usize)).collect();
        n.outputs = vec![ValueInfo { dtype: Some(dtype), shape: Some(shape) }];
        let v = ValueRef { node: self.g.add_node(n), port: 0 };
        self.g.inputs.push(v);
        v
    }

    pub fn constant(&mut self, name: &str, t: Tensor) -> ValueRef {
        let ord = self.ordinal();
        ValueRef { node: self.g.add_node(Node::constant(name, t, ord)), port: 0 }
    }

    /// A constant that was a trained variable (as `ir::build` marks those read so).
    pub fn variable(&mut self, name: &str, t: Tensor) -> ValueRef {
        let v = self.constant(name, t);
        self.g.node_mut(v.node).variable = true;
        v
    }

    /// A `k`x`k` convolution of four channels to four, `SAME` padded, under `m/<scope>`.
    pub fn conv4(&mut self, scope: &str, x: ValueRef, k: usize) -> ValueRef {
        let w = self.constant(&format!("w/{scope}"), weights(&[k, k, 4, 4]));
        let attrs = [("strides", ints(&[1, 1, 1, 1])), ("padding", string("SAME"))];
        self.op(&format!("m/{scope}/Conv2D"), "Conv2D", &[x, w], &attrs)
    }

    pub fn op(
        &mut self,
        name: &str,
        op: &str,
        inputs: &[ValueRef],
        attrs: &[(&str, AttrValue)],
    ) -> ValueRef {
        let ord = self.ordinal();
        let mut n = Node::new(name, op, ord);
        for (k, v) in attrs {
            n.attrs.insert(k.to_string(), v.clone());
        }
        let id = self.g.add_node(n);
        for (slot, &i) in inputs.iter().enumerate() {
            self.g.connect(i, id, slot);
        }
        ValueRef { node: id, port: 0 }
    }

    /// A node of a synthetic op (as a pass would create it).
    pub fn fused(
        &mut self,
        name: &str,
        op: crate::ir::fused::Fused,
        inputs: &[ValueRef],
    ) -> ValueRef {
        let ord = self.ordinal();
        let id = self.g.add_node(Node::fused(name, op, ord));
        for (slot, &i) in inputs.iter().enumerate() {
            self.g.connect(i, id, slot);
        }
        ValueRef { node: id, port: 0 }
    }

    /// Declares output 0 of `v`'s node a float32 of `shape` (what shape inference would know).
    pub fn set_shape(&mut self, v: ValueRef, shape: &[i64]) {
        let shape = shape.iter().map(|&d| (d >= 0).then_some(d as usize)).collect();
        self.g.node_mut(v.node).outputs =
            vec![ValueInfo { dtype: Some(DType::F32), shape: Some(shape) }];
    }

    /// `tf.shape(x)[k]`, a run-time size (scope `name`).
    pub fn size_of(&mut self, name: &str, x: ValueRef, k: i64) -> ValueRef {
        let shape = self.op(&format!("{name}/Shape"), "Shape", &[x], &[]);
        let begin = self.constant(&format!("{name}/begin"), int_tensor(&[1], &[k]));
        let end = self.constant(&format!("{name}/end"), int_tensor(&[1], &[k + 1]));
        let step = self.constant(&format!("{name}/step"), int_tensor(&[1], &[1]));
        let shrink = [("shrink_axis_mask", int(1))];
        self.op(
            &format!("{name}/strided_slice"),
            "StridedSlice",
            &[shape, begin, end, step],
            &shrink,
        )
    }

    /// A float32 model input of unknown rank.
    pub fn unranked_input(&mut self, name: &str) -> ValueRef {
        let v = self.input(name, &[]);
        self.g.node_mut(v.node).outputs = vec![ValueInfo { dtype: Some(DType::F32), shape: None }];
        v
    }

    /// An extra edge, for cycles (a loop's `NextIteration` back into its `Merge`).
    pub fn connect(&mut self, src: ValueRef, dst: ValueRef, slot: usize) {
        self.g.connect(src, dst.node, slot);
    }

    /// Output `port` of the node producing `v`.
    pub fn port(v: ValueRef, port: usize) -> ValueRef {
        ValueRef { node: v.node, port }
    }

    /// The graph as built, before any pass (for testing one pass).
    pub fn build(mut self, outputs: &[ValueRef]) -> Graph {
        self.g.outputs = outputs.to_vec();
        self.g
    }

    /// The graph after `passes` (in order), pruned to `outputs`, as `ir::dump` prints it:
    /// what one pass does, seen on its own.
    pub fn after_passes(
        mut self,
        outputs: &[ValueRef],
        passes: &[fn(&mut Graph) -> crate::error::Result<()>],
    ) -> String {
        self.g.outputs = outputs.to_vec();
        for pass in passes {
            pass(&mut self.g).expect("pass");
        }
        crate::passes::prune(&mut self.g).expect("prune");
        crate::ir::dump(&self.g, None)
    }

    /// The graph after the passes.
    pub fn finish(mut self, outputs: &[ValueRef]) -> Graph {
        self.g.outputs = outputs.to_vec();
        crate::passes::run_all(&mut self.g).expect("passes");
        self.g
    }

    /// Runs the passes and lowering with `outputs`; returns `__init__` and `forward` as text.
    pub fn lower(mut self, outputs: &[ValueRef]) -> String {
        self.g.outputs = outputs.to_vec();
        crate::passes::run_all(&mut self.g).expect("passes");
        let (m, _) = crate::lower::lower(&self.g, "M", "test").expect("lower");
        let mut s = String::new();
        for c in &m.classes {
            let params: Vec<String> = c
                .params
                .iter()
                .map(|p| match &p.default {
                    Some(d) => format!("{}={}", p.name, flat(d)),
                    None => p.name.clone(),
                })
                .collect();
            s.push_str(&format!("class {}({}):\n", c.name, params.join(", ")));
            for a in &c.attributes {
                s.push_str(&format!("  self.{a} = {a}\n"));
            }
            for l in &c.layers {
                s.push_str(&format!("  self.{} = {}\n", l.name, flat(&l.ctor)));
            }
            let line = |st: &crate::py::Assign, indent: &str| {
                let target = printer::target_text(&st.target);
                format!("{indent}{target} = {}\n", flat(&st.value))
            };
            c.body.iter().for_each(|st| s.push_str(&line(st, "  ")));
            for part in &c.optional {
                let test = flat(&part.test);
                s.push_str(&format!("  if {test} ({}):\n", part.layers.join(", ")));
                part.body.iter().for_each(|st| s.push_str(&line(st, "    ")));
                part.after.iter().for_each(|st| s.push_str(&line(st, "  ")));
            }
            let returned: Vec<&str> =
                std::iter::once(&c.output).chain(&c.extra_outputs).map(String::as_str).collect();
            s.push_str(&format!(
                "  return {} (from {})\n",
                returned.join(", "),
                c.inputs.join(", ")
            ));
        }
        for l in &m.layers {
            s.push_str(&format!("self.{} = {}\n", l.name, flat(&l.ctor)));
        }
        for b in &m.buffers {
            let dims: Vec<i64> = b.dims().into_iter().map(|d| d.unwrap_or(-1)).collect();
            s.push_str(&format!("self.{}: {:?} {}\n", b.name, dims, b.torch_dtype));
        }
        for (k, w) in &m.weights {
            s.push_str(&format!("# {k}: {:?}\n", w.shape()));
        }
        s.push_str("---\n");
        let mut forward: Vec<Stmt> = m.body.clone();
        forward.push(Stmt::return_values(m.outputs.clone()));
        for l in printer::block(&forward, 8) {
            s.push_str(l.get(8..).unwrap_or_default());
            s.push('\n');
        }
        for function in &m.functions {
            for l in printer::statement(&Stmt::FunctionDef(function.clone()), 0) {
                s.push_str(&l);
                s.push('\n');
            }
        }
        for method in &m.methods {
            for l in printer::statement(&Stmt::FunctionDef(method.clone()), 4) {
                s.push_str(l.get(4..).unwrap_or_default());
                s.push('\n');
            }
        }
        for st in &m.stubs {
            s.push_str(&format!("stub {}\n", st.function));
        }
        s
    }
}

/// Dense layers at `scopes` (full scope paths), one after another: the generated code.
pub fn dense_chain(scopes: &[&str]) -> String {
    let mut g = TestGraph::new();
    let mut y = g.input("x", &[-1, 8]);
    for scope in scopes {
        let w = g.variable(&format!("{scope}/kernel"), weights(&[8, 8]));
        y = g.op(&format!("{scope}/MatMul"), "MatMul", &[y, w], &[]);
    }
    g.lower(&[y])
}

/// `forward` of `image → 1×1 Conv2D (NCHW inside) → f(...)`: how an op treats an NCHW input.
pub fn after_conv(f: impl FnOnce(&mut TestGraph, ValueRef) -> ValueRef) -> String {
    let mut g = TestGraph::new();
    let x = g.input("image", &[-1, 4, 5, 3]);
    let w = g.constant("w", weights(&[1, 1, 3, 2]));
    let pad = [("strides", ints(&[1, 1, 1, 1])), ("padding", string("VALID"))];
    let y = g.op("conv", "Conv2D", &[x, w], &pad);
    let z = f(&mut g, y);
    g.lower(&[z]).split("---\n").nth(1).unwrap_or_default().to_string()
}

/// A TF1 loop frame by hand, `i, x = 0, x; while i < 3: i, x = i + 1, f(x)`, with `f` a `Mul`
/// by 2.0 or the one-input op `step_op`; returns the graph and the `Exit` of `x`.
pub fn tf1_frame(step_op: &str) -> (TestGraph, ValueRef) {
    tf1_frame_named("loop", |g, x| {
        if step_op == "Mul" {
            let two = g.constant("loop/two", Tensor::from_f32(vec![], &[2.0]));
            g.op("loop/mul", "Mul", &[x, two], &[])
        } else {
            g.op("loop/custom", step_op, &[x], &[("scale", float(2.0))])
        }
    })
}

/// A TF1 loop frame named `frame` (its nodes in that scope) of three steps over `x`, each
/// computing `step(graph, x)`; the graph and the frame's `Exit` of `x`.
pub fn tf1_frame_named(
    frame: &str,
    step: impl FnOnce(&mut TestGraph, ValueRef) -> ValueRef,
) -> (TestGraph, ValueRef) {
    tf1_frame_counting(frame, |g, x, _| step(g, x))
}

/// [`tf1_frame_named`], `step` also given the loop's counter.
pub fn tf1_frame_counting(
    frame: &str,
    step: impl FnOnce(&mut TestGraph, ValueRef, ValueRef) -> ValueRef,
) -> (TestGraph, ValueRef) {
    let mut g = TestGraph::new();
    let x0 = g.input("x", &[-1, 4]);
    let zero = g.constant("zero", Tensor::from_i32(vec![], &[0]));
    let attrs = [("frame_name", string(frame))];
    let ei = g.op(&format!("{frame}/enter_i"), "Enter", &[zero], &attrs);
    let ex = g.op(&format!("{frame}/enter_x"), "Enter", &[x0], &attrs);
    let mi = g.op(&format!("{frame}/merge_i"), "Merge", &[ei], &[]);
    let mx = g.op(&format!("{frame}/merge_x"), "Merge", &[ex], &[]);
    let three = g.constant(&format!("{frame}/three"), Tensor::from_i32(vec![], &[3]));
    let less = g.op(&format!("{frame}/Less"), "Less", &[mi, three], &[]);
    let lc = g.op(&format!("{frame}/LoopCond"), "LoopCond", &[less], &[]);
    let si = g.op(&format!("{frame}/switch_i"), "Switch", &[mi, lc], &[]);
    let sx = g.op(&format!("{frame}/switch_x"), "Switch", &[mx, lc], &[]);
    let one = g.constant(&format!("{frame}/one"), Tensor::from_i32(vec![], &[1]));
    let i1 = g.op(&format!("{frame}/add"), "AddV2", &[TestGraph::port(si, 1), one], &[]);
    let x1 = step(&mut g, TestGraph::port(sx, 1), TestGraph::port(si, 1));
    let ni = g.op(&format!("{frame}/next_i"), "NextIteration", &[i1], &[]);
    let nx = g.op(&format!("{frame}/next_x"), "NextIteration", &[x1], &[]);
    g.connect(ni, mi, 1);
    g.connect(nx, mx, 1);
    let _ = g.op(&format!("{frame}/exit_i"), "Exit", &[si], &[]);
    let out = g.op(&format!("{frame}/exit_x"), "Exit", &[sx], &[]);
    (g, out)
}
