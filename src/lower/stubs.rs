//! Stubs for ops with no translation: one documented function per TF op type in
//! `custom_ops.py`, called from `forward` with TF-layout tensors.

use std::collections::BTreeMap;

use petgraph::stable_graph::NodeIndex;

use super::module::Stub;
use crate::ir::attrs::display;
use crate::ir::{Graph, ValueInfo, ValueRef};
use crate::proto::attr_value::Value;
use crate::py::names::Scope;
use crate::py::user_code::UserModule;
use crate::py::{Expr, FunctionDef, Param, Stmt};

use crate::error::UntranslatedOp;

#[derive(Default)]
pub struct Stubs {
    names: Scope,
    /// What the existing `custom_ops.py` binds: its functions keep their ops across
    /// regenerations, and new stubs take none of its names.
    user: UserModule,
    by_op: BTreeMap<String, Entry>,
    /// Every call site, by the id `register` returned (sites may come from loop bodies, which
    /// are graphs of their own).
    sites: Vec<Site>,
}

struct Entry {
    function: String,
    sites: Vec<usize>,
    reasons: Vec<String>,
}

/// What a stub's docstring and call need of one node.
struct Site {
    name: String,
    attrs: BTreeMap<String, crate::proto::AttrValue>,
    /// Attribute name → its value as the docstring shows it.
    shown: Vec<(String, String)>,
    inputs: Vec<ValueInfo>,
    output: ValueInfo,
    /// The output's rank and dtype were assumed (see `passes::fold`).
    assumed: bool,
}

/// An attribute as a Python literal, when it has a natural one.
fn attr_literal(v: &Value) -> Option<Expr> {
    Some(match v {
        Value::I(i) => Expr::int(*i),
        Value::F(f) => Expr::f32(*f),
        Value::B(b) => Expr::boolean(*b),
        Value::S(s) => Expr::str_lit(&String::from_utf8_lossy(s)),
        Value::Type(t) => Expr::str_lit(
            &crate::tensor::DType::from_tf(*t).map_or(format!("dtype_{t}"), |d| d.to_string()),
        ),
        Value::List(l) if !l.f.is_empty() => {
            Expr::Tuple(l.f.iter().map(|&f| Expr::f32(f)).collect())
        }
        Value::List(l) if !l.s.is_empty() => {
            Expr::Tuple(l.s.iter().map(|s| Expr::str_lit(&String::from_utf8_lossy(s))).collect())
        }
        Value::List(l) => Expr::ints(&l.i),
        Value::Shape(s) => Expr::ints(&s.dim.iter().map(|d| d.size).collect::<Vec<_>>()),
        _ => return None,
    })
}

impl Stubs {
    pub fn new(user: UserModule) -> Stubs {
        let mut names = Scope::default();
        for name in &user.names {
            names.claim(name);
        }
        Stubs { names, user, ..Stubs::default() }
    }

    /// Records that node `n` of `graph` needs the stub for its op; returns the function name
    /// and the call site's id.
    pub fn register(&mut self, graph: &Graph, n: NodeIndex, reason: String) -> (String, usize) {
        let node = graph.node(n);
        let op = node.op.clone();
        let id = self.sites.len();
        self.sites.push(Site {
            name: node.name.clone(),
            attrs: node.shown_attrs(),
            shown: node.shown_attrs().iter().map(|(k, v)| (k.clone(), display(v))).collect(),
            inputs: graph.inputs(n).iter().map(|&v| graph.info(v)).collect(),
            output: graph.info(ValueRef { node: n, port: 0 }),
            assumed: node.assumed,
        });
        let (names, user) = (&mut self.names, &self.user);
        let entry = self.by_op.entry(op.clone()).or_insert_with(|| Entry {
            function: user.function_for(&op, &names.base(&op)).unwrap_or_else(|| names.fresh(&op)),
            sites: Vec::new(),
            reasons: Vec::new(),
        });
        entry.sites.push(id);
        if !entry.reasons.contains(&reason) {
            entry.reasons.push(reason);
        }
        (entry.function.clone(), id)
    }

    /// Attribute values shared by every node of an op become defaults in the stub's signature;
    /// the others are passed at each call site.
    fn shared_attrs(&self, sites: &[usize]) -> BTreeMap<String, Expr> {
        let first = &self.sites[sites[0]];
        let mut shared = BTreeMap::new();
        for (name, v) in &first.attrs {
            let Some(lit) = v.value.as_ref().and_then(attr_literal) else {
                continue;
            };
            let same = sites.iter().all(|&m| {
                self.sites[m].attrs.get(name).and_then(|a| a.value.as_ref()).and_then(attr_literal)
                    == Some(lit.clone())
            });
            if same {
                shared.insert(name.clone(), lit);
            }
        }
        shared
    }

    fn inputs_of(&self, e: &Entry) -> usize {
        e.sites.iter().map(|&n| self.sites[n].inputs.len()).max().unwrap_or(0)
    }

    /// The stub's keyword parameter for each attribute with a Python literal, in name order:
    /// valid, distinct identifiers that are no keyword and no positional `input_k`. TF's
    /// internal attributes (`_class`, `_output_shapes`) are placement hints, not arguments.
    fn keyword_names(&self, e: &Entry) -> BTreeMap<String, String> {
        let mut all: Vec<&String> = e
            .sites
            .iter()
            .flat_map(|&n| {
                self.sites[n]
                    .attrs
                    .iter()
                    .filter(|(k, v)| {
                        !k.starts_with('_') && v.value.as_ref().and_then(attr_literal).is_some()
                    })
                    .map(|(k, _)| k)
            })
            .collect();
        all.sort();
        all.dedup();
        let mut scope = Scope::for_locals();
        for i in 0..self.inputs_of(e) {
            scope.claim(&format!("input_{i}"));
        }
        all.into_iter().map(|a| (a.clone(), scope.fresh(a))).collect()
    }

    /// Keyword arguments per call site id.
    pub fn call_kwargs(&self) -> BTreeMap<usize, Vec<(String, Expr)>> {
        let mut out = BTreeMap::new();
        for e in self.by_op.values() {
            let shared = self.shared_attrs(&e.sites);
            let names = self.keyword_names(e);
            for &n in &e.sites {
                let kw: Vec<(String, Expr)> = self.sites[n]
                    .attrs
                    .iter()
                    .filter(|(k, _)| !shared.contains_key(*k))
                    .filter_map(|(k, v)| {
                        let name = names.get(k)?;
                        v.value.as_ref().and_then(attr_literal).map(|l| (name.clone(), l))
                    })
                    .collect();
                out.insert(n, kw);
            }
        }
        out
    }

    pub fn finish(&self) -> (Vec<Stub>, Vec<UntranslatedOp>) {
        let mut stubs = Vec::new();
        let mut reports = Vec::new();
        for (op, e) in &self.by_op {
            stubs.push(Stub { function: e.function.clone(), op: op.clone(), def: self.def(op, e) });
            reports.push(UntranslatedOp {
                op: op.clone(),
                function: e.function.clone(),
                nodes: e.sites.iter().map(|&n| self.sites[n].name.clone()).collect(),
                reason: e.reasons.join("; "),
            });
        }
        (stubs, reports)
    }

    /// `def <function>(input_0, ..., *, attr=value, ...)`, documented, raising
    /// `NotImplementedError`.
    fn def(&self, op: &str, e: &Entry) -> FunctionDef {
        let shared = self.shared_attrs(&e.sites);
        // Sites with fewer inputs leave the last ones at None.
        let fewest = e.sites.iter().map(|&n| self.sites[n].inputs.len()).min().unwrap_or(0);
        let params = (0..self.inputs_of(e))
            .map(|i| match i < fewest {
                true => Param::new(format!("input_{i}")),
                false => Param::with_default(format!("input_{i}"), Expr::none()),
            })
            .collect();
        let message = format!("custom_ops.py: implement {} (TF op {op})", e.function);
        let raise = Stmt::Raise(Expr::call("NotImplementedError", vec![Expr::str_lit(&message)]));
        let mut def = FunctionDef::new(e.function.clone(), params, vec![raise]);
        def.keyword_only = self
            .keyword_names(e)
            .into_iter()
            .map(|(a, name)| {
                Param::with_default(name, shared.get(&a).cloned().unwrap_or(Expr::none()))
            })
            .collect();
        let mut doc =
            vec![format!("TensorFlow op `{op}`, which tf2torch did not translate."), String::new()];
        doc.extend(e.reasons.iter().map(|r| format!("Reason: {r}.")));
        if e.sites.iter().any(|&n| self.sites[n].assumed) {
            doc.push(
                "Assumed: the result has the rank of its first tensor input (a handle is \
                 none) and the dtype its attributes give (else that input's); the code after \
                 this op was translated that way."
                    .into(),
            );
        }
        doc.extend([String::new(), "Used by:".into()]);
        for &n in &e.sites {
            let site = &self.sites[n];
            let ins: Vec<String> = site.inputs.iter().map(ValueInfo::describe).collect();
            doc.push(format!(
                "  - {}: inputs ({}) -> {}",
                site.name,
                ins.join("; "),
                site.output.describe()
            ));
            doc.extend(site.shown.iter().map(|(k, shown)| format!("    {k} = {shown}")));
        }
        doc.extend([
            String::new(),
            "Tensors are in TensorFlow's layout (NHWC for images); return the same.".into(),
        ]);
        def.docstring = doc;
        def
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{TestGraph, float, string};

    /// Attribute names become keyword parameters that are valid Python: no keywords, no
    /// duplicates after snake-casing, no TF-internal `_` attributes.
    #[test]
    fn keyword_parameters_are_valid_identifiers() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[2]);
        let attrs = [
            ("class", string("a")),
            ("_class", string("loc:@x")),
            ("T", float(1.0)),
            ("t", float(2.0)),
        ];
        let y = g.op("y", "Strange", &[x], &attrs);
        let graph = g.finish(&[y]);
        let mut stubs = Stubs::default();
        let n = graph.find("y").unwrap();
        let (_, site) = stubs.register(&graph, n, "no translation".into());
        let (src, _) = stubs.finish();
        let text = crate::py::printer::print(&[Stmt::FunctionDef(src[0].def.clone())], 0);
        let sig = text.lines().next().unwrap().to_string();
        assert_eq!(sig, r#"def strange(input_0, *, t=1.0, class_="a", t_2=2.0):"#);
        assert!(stubs.call_kwargs()[&site].is_empty());
    }

    /// An op used with one input here and two there: the second defaults to None, so that
    /// every call site works.
    #[test]
    fn inputs_some_sites_lack_default_to_none() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[2]);
        let a = g.op("a", "Strange", &[x], &[]);
        let b = g.op("b", "Strange", &[a, x], &[]);
        let graph = g.finish(&[b]);
        let mut stubs = Stubs::default();
        for name in ["a", "b"] {
            stubs.register(&graph, graph.find(name).unwrap(), "no translation".into());
        }
        let (src, _) = stubs.finish();
        let text = crate::py::printer::print(&[Stmt::FunctionDef(src[0].def.clone())], 0);
        assert_eq!(text.lines().next().unwrap(), "def strange(input_0, input_1=None):");
    }
}
