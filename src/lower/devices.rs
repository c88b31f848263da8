//! Tensors a `forward` makes from nothing (`torch.arange(seq_len)`, a causal mask's
//! `torch.ones(n, n, dtype=torch.bool)`) are made on the device of its inputs, as Hugging
//! Face writes `torch.arange(seq_len, device=hidden_states.device)`. Made on the default
//! device instead, they would meet the inputs of a model moved with `.to("cuda")` in the
//! next op and fail there. Weights and buffers move with the model and need nothing.

use std::collections::BTreeSet;

use crate::py::printer::flat;
use crate::py::{Call, ClassDef, Expr, Lit, Stmt};

/// Factories that make a tensor on the default device unless told another.
const FACTORIES: &[&str] =
    &["torch.arange", "torch.ones", "torch.zeros", "torch.full", "torch.empty", "torch.eye"];

/// Passes each factory call in the class's methods `device=`: that of the tensor whose
/// shape it reads (`torch.ones(q.shape[2], k.shape[2], device=q.device)`), else that of an
/// input the method never binds again, else `device`, bound to the first tensor input's
/// device on the method's first line. A method of no tensor inputs (a position encoding
/// made from nothing but its own tables) takes that of a buffer it reads.
pub fn on_inputs_device(class: &mut ClassDef) {
    let buffers = registered_buffers(class);
    for stmt in &mut class.body {
        let Stmt::FunctionDef(f) = stmt else { continue };
        let tensors: Vec<String> = f
            .params
            .iter()
            .skip(1)
            .filter(|p| p.annotation.as_ref().is_some_and(|a| flat(a) == "torch.Tensor"))
            .map(|p| p.name.clone())
            .collect();
        // The device `source` names, and the input to bind `device` to first (if it is that).
        let (source, bind_first) = match tensors.first() {
            None => {
                let read = f.body.iter().flat_map(all_exprs).flat_map(|e| e.self_attrs());
                let Some(buffer) = read.into_iter().find(|a| buffers.contains(*a)) else {
                    continue;
                };
                (Expr::self_attr(buffer).attr("device"), None)
            }
            Some(first) => {
                let bound: BTreeSet<&str> =
                    f.body.iter().flat_map(|s| s.all_bound_names()).collect();
                let used: BTreeSet<String> =
                    f.body.iter().flat_map(|s| s.all_names()).map(String::from).collect();
                match tensors.iter().find(|t| !bound.contains(t.as_str())) {
                    Some(t) => (Expr::name(t).attr("device"), None),
                    None if !used.contains("device") => (Expr::name("device"), Some(first.clone())),
                    None => continue,
                }
            }
        };
        let mut placed = 0;
        for s in &mut f.body {
            s.for_each_call_mut(&mut |c: &mut Call| {
                if needs_device(c) {
                    // The tensor whose size it is made to, where it names one (`q.shape[2]`).
                    let sized = c.args.iter().find_map(shaped);
                    let device = sized.map(|t| Expr::name(t).attr("device"));
                    placed += usize::from(device.is_none());
                    c.kwargs.push(("device".to_string(), device.unwrap_or_else(|| source.clone())));
                }
            });
        }
        if let Some(first) = bind_first.filter(|_| placed > 0) {
            f.body.insert(0, Stmt::assign(Expr::name("device"), Expr::name(&first).attr("device")));
        }
    }
}

/// The names of the buffers the class registers (`self.register_buffer("inv_freq", ...)`).
fn registered_buffers(class: &ClassDef) -> BTreeSet<String> {
    fn visit(e: &Expr, out: &mut BTreeSet<String>) {
        if let Expr::Call(c) = e
            && flat(&c.func) == "self.register_buffer"
            && let Some(Expr::Lit(Lit::Str(name))) = c.args.first()
        {
            out.insert(name.clone());
        }
        for child in e.children() {
            visit(child, out);
        }
    }
    let mut out = BTreeSet::new();
    for e in class.body.iter().flat_map(all_exprs) {
        visit(e, &mut out);
    }
    out
}

/// The expressions of a statement and of those nested in it.
fn all_exprs(s: &Stmt) -> Vec<&Expr> {
    let mut out = s.exprs();
    out.extend(s.children().into_iter().flat_map(all_exprs));
    out
}

/// About how wide a device argument is once given (`, device=inputs.device`).
const DEVICE_ARG_WIDTH: usize = 28;

/// How much wider `e` will print once its factory calls are given their devices: code that
/// fits lines before then (see `chain`) leaves room for them.
pub fn pending_device_width(e: &Expr) -> usize {
    let own = match e {
        Expr::Call(c) if needs_device(c) => DEVICE_ARG_WIDTH,
        _ => 0,
    };
    own + e.children().into_iter().map(pending_device_width).sum::<usize>()
}

/// A factory call that says no device (a `torch.tensor` of a list too; one of a number is a
/// scalar, which meets tensors on any device in arithmetic, and a loop's counter is best
/// kept on the host, where `while step < n` reads it without waiting on the device).
fn needs_device(c: &Call) -> bool {
    let func = flat(&c.func);
    let factory = FACTORIES.contains(&func.as_str())
        || (func == "torch.tensor"
            && matches!(c.args.first(), Some(Expr::List(_) | Expr::Tuple(_))));
    factory && !c.kwargs.iter().any(|(k, _)| k == "device")
}

/// The first tensor whose shape `e` reads (`q` of `q.shape[2] - 1`).
fn shaped(e: &Expr) -> Option<String> {
    if let Expr::Attribute(v, a) = e
        && a == "shape"
        && let Expr::Name(n) = &**v
    {
        return Some(n.clone());
    }
    e.children().into_iter().find_map(shaped)
}

#[cfg(test)]
mod tests {
    use super::on_inputs_device;
    use crate::py::printer::block;
    use crate::py::{ClassDef, Expr, FunctionDef, Stmt};

    fn class(params: &[&str], body: Vec<Stmt>) -> ClassDef {
        let params: Vec<String> = params.iter().map(|p| p.to_string()).collect();
        let mut forward = FunctionDef::method("forward", &params, body);
        for p in &mut forward.params[1..] {
            p.annotation = Some(Expr::path("torch.Tensor"));
        }
        ClassDef {
            name: "Block".into(),
            bases: vec![Expr::path("nn.Module")],
            docstring: Vec::new(),
            body: vec![Stmt::FunctionDef(forward)],
        }
    }

    fn printed(c: ClassDef) -> String {
        block(&[Stmt::ClassDef(c)], 0).join("\n")
    }

    /// Factories take the device of an input the method keeps; a number's `torch.tensor` and
    /// a factory that names its device stay as they are.
    #[test]
    fn factories_are_made_on_the_inputs_device() {
        let n = Expr::name("ids").attr("shape").index(Expr::int(1));
        let body = vec![
            Stmt::assign(Expr::name("x"), Expr::call("torch.arange", vec![n.clone()])),
            Stmt::assign(Expr::name("y"), Expr::call("torch.tensor", vec![Expr::int(0)])),
            Stmt::assign(Expr::name("w"), Expr::call("torch.ones", vec![Expr::int(3)])),
            Stmt::assign(
                Expr::name("z"),
                Expr::call_kw("torch.zeros", vec![n], vec![("device", Expr::str_lit("cpu"))]),
            ),
            Stmt::assign(
                Expr::name("x"),
                Expr::name("x").binop(crate::py::BinOp::Add, Expr::name("y")),
            ),
            Stmt::return_values(vec![Expr::name("x")]),
        ];
        let mut c = class(&["x", "ids"], body);
        on_inputs_device(&mut c);
        let text = printed(c);
        // Sized to `ids`: its device; sized to nothing, that of the input the body keeps
        // (`x` is bound again).
        assert!(text.contains("x = torch.arange(ids.shape[1], device=ids.device)"), "{text}");
        assert!(text.contains("w = torch.ones(3, device=ids.device)"), "{text}");
        assert!(text.contains("y = torch.tensor(0)\n"), "{text}");
        assert!(text.contains("z = torch.zeros(ids.shape[1], device=\"cpu\")"), "{text}");
    }

    /// Where every tensor input is bound again, the first one's device is taken first.
    #[test]
    fn inputs_all_bound_again_leave_their_device_first() {
        let body = vec![
            Stmt::assign(Expr::name("x"), Expr::call("torch.ones", vec![Expr::int(3)])),
            Stmt::return_values(vec![Expr::name("x")]),
        ];
        let mut c = class(&["x"], body);
        on_inputs_device(&mut c);
        let text = printed(c);
        assert!(
            text.contains("device = x.device\n        x = torch.ones(3, device=device)"),
            "{text}"
        );
    }

    /// A method of no tensor inputs makes its tensors on the device of a buffer it reads.
    #[test]
    fn a_method_without_inputs_takes_a_buffers_device() {
        let register = Expr::self_attr("register_buffer").called(
            vec![Expr::str_lit("freq"), Expr::call("torch.empty", vec![Expr::int(4)])],
            vec![],
        );
        let init = FunctionDef::method("__init__", &[], vec![Stmt::Expr(register)]);
        let ones = Expr::call("torch.ones", vec![Expr::int(4)]);
        let body = vec![Stmt::return_values(vec![
            ones.binop(crate::py::BinOp::Div, Expr::self_attr("freq")),
        ])];
        let mut c = class(&[], body);
        c.body.insert(0, Stmt::FunctionDef(init));
        on_inputs_device(&mut c);
        let text = printed(c);
        assert!(text.contains("torch.ones(4, device=self.freq.device) / self.freq"), "{text}");
    }
}
