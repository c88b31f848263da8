//! Names that say a value's role in a block, where the graph's names only say where it
//! came from. Inside a transformer layer the value both branches of a skip connection read
//! is the `residual` (`residual = x + inputs` ... `x = x + residual`), and a normalized input
//! several projections read is `h` (`h = self.self_attention_layernorm(inputs)`, then
//! `self.self_attention_query(h)`), as Hugging Face's and torchvision's code write them,
//! not `add` or `self_attention_layernorm` (the layer's name again, 24 characters).

use std::collections::{BTreeMap, BTreeSet};

use crate::lower::module::Layer;
use crate::py::printer::flat;
use crate::py::{Assign, BinOp, Expr, Ref};

/// A skip connection's branch is at most this many statements: a longer stretch between a
/// value's two reads is no branch a person would read as one (and a body may be 100k
/// statements long, so the walk must stay short).
const MAX_BRANCH: usize = 256;

/// Each name's readers (statement indices, in order) and how many statements bind it,
/// counted in one pass.
struct Uses<'s> {
    readers: BTreeMap<&'s str, Vec<usize>>,
    binds: BTreeMap<&'s str, usize>,
}

impl<'s> Uses<'s> {
    fn of(stmts: &'s [Assign]) -> Uses<'s> {
        let mut readers: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        let mut binds: BTreeMap<&str, usize> = BTreeMap::new();
        for (j, s) in stmts.iter().enumerate() {
            for n in s.value.names().into_iter().collect::<BTreeSet<_>>() {
                readers.entry(n).or_default().push(j);
            }
            for n in s.target.bound_names() {
                *binds.entry(n).or_default() += 1;
            }
        }
        Uses { readers, binds }
    }

    fn readers(&self, n: &str) -> &[usize] {
        self.readers.get(n).map_or(&[], Vec::as_slice)
    }
}

/// The role name of the value statement `k` binds (bound nowhere else), if it has one: read
/// by one branch and then by the add that ends it (a skip connection), or the output of a
/// normalization layer read more than once.
fn role(
    stmts: &[Assign],
    uses: &Uses,
    k: usize,
    var: &str,
    norms: &BTreeSet<String>,
) -> Option<&'static str> {
    let readers = uses.readers(var);
    if readers.len() < 2 {
        return None;
    }
    // A branch that starts from it and an add that takes it back: of a cell's several
    // branches (NASNet's), one adding it back makes it no more a residual than the others.
    if let [first, add] = readers
        && ends_branch(stmts, *first, *add, var)
    {
        return Some("residual");
    }
    let norm_call = |e: &Expr| matches!(e, Expr::Call(c) if c.func.as_self_attr().is_some_and(|a| norms.contains(a)));
    // A norm's output cast to the layers' type (a bfloat16 model's norms compute in float32)
    // is still the normalized input: `h = self.norm(x).to(torch.bfloat16)`, or the cast of
    // what the statement before normalized.
    let normalized = match stmts[k].value.as_dtype_cast() {
        Some(Expr::Name(n)) => {
            k > 0 && stmts[k - 1].target.as_name() == Some(n) && norm_call(&stmts[k - 1].value)
        }
        Some(e) => norm_call(e),
        None => norm_call(&stmts[k].value),
    };
    normalized.then_some("h")
}

/// Whether statement `add` adds `var` to what statement `first` computed from it:
/// `x = self.dense(v)`, ..., `x = x + v`; not an index arithmetic's `a = v * 4`,
/// `b = a + c` that happens to read it twice.
fn ends_branch(stmts: &[Assign], first: usize, add: usize, var: &str) -> bool {
    if add <= first || add - first > MAX_BRANCH {
        return false;
    }
    let Expr::Binary(a, BinOp::Add, b) = &stmts[add].value else { return false };
    let other = match (a.as_name(), b.as_name()) {
        (Some(x), _) if x == var => b.as_name(),
        (_, Some(x)) if x == var => a.as_name(),
        _ => None,
    };
    let Some(other) = other else { return false };
    // The values computed from the first reader's, up to the add; a branch applies weights
    // (a layer, a scale): `x * x + x` is arithmetic, not a skip connection.
    let mut branch: BTreeSet<&str> = stmts[first].target.bound_names().into_iter().collect();
    let mut weighted = !stmts[first].value.self_attrs().is_empty();
    for s in &stmts[first + 1..add] {
        let from_branch = s.value.names().iter().any(|n| branch.contains(n));
        weighted |= from_branch && !s.value.self_attrs().is_empty();
        for t in s.target.bound_names() {
            if from_branch {
                branch.insert(t);
            } else {
                branch.remove(t);
            }
        }
    }
    weighted && branch.contains(other)
}

/// The names of a block's layer and RMS norms (the layers whose outputs may be `h`).
pub fn norm_layers(layers: &[Layer]) -> BTreeSet<String> {
    let is_norm = |ctor: &Expr| matches!(ctor, Expr::Call(c) if matches!(flat(&c.func).as_str(), "nn.LayerNorm" | "nn.RMSNorm"));
    layers.iter().filter(|l| is_norm(&l.ctor)).map(|l| l.name.clone()).collect()
}

/// Renames the values of `stmts` (one block's body) that have a role (see [`role`]) to it,
/// where the name is free: nothing else in the body, nor `live` (what is read after it),
/// uses it, and no other value of that name is live where it is bound. `norms` are the
/// block's normalization layers.
pub fn role_names(
    stmts: &mut [Assign],
    live: &[Expr],
    norms: &BTreeSet<String>,
    renamable: impl Fn(&str) -> bool,
) {
    let live: BTreeSet<String> = live.iter().flat_map(|e| e.names()).map(String::from).collect();
    // (statement, old name, role, last read).
    let mut renames: Vec<(usize, String, &str, usize)> = Vec::new();
    {
        let uses = Uses::of(stmts);
        let used = |n: &str| {
            live.contains(n) || uses.readers.contains_key(n) || uses.binds.contains_key(n)
        };
        for k in 0..stmts.len() {
            let Some(var) = stmts[k].target.as_name() else { continue };
            if uses.binds.get(var) != Some(&1) || live.contains(var) || !renamable(var) {
                continue;
            }
            // Bound once: every read is of this value, and after it.
            if uses.readers(var).first().is_some_and(|&j| j <= k) {
                continue;
            }
            let Some(name) = role(stmts, &uses, k, var, norms) else { continue };
            // A name the body already uses for something else is not free; one an earlier
            // renamed value held is, once that value's last read has passed
            // (`residual = x + residual` reads the old before it binds the new).
            let earlier = renames.iter().filter(|r| r.2 == name);
            let taken = used(name) && !renames.iter().any(|r| r.2 == name);
            if taken || earlier.clone().any(|r| r.3 > k) {
                continue;
            }
            let last = uses.readers(var).last().copied().unwrap_or(k);
            renames.push((k, var.to_string(), name, last));
        }
    }
    for (k, old, name, last) in renames {
        let rename = |n: Ref<'_>| matches!(n, Ref::Var(v) if v == old).then(|| Expr::name(name));
        stmts[k].target = Expr::name(name);
        for s in &mut stmts[k + 1..=last] {
            s.value = s.value.renamed(&rename);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::role_names;
    use crate::py::printer::flat;
    use crate::py::{Assign, BinOp, Expr};
    use std::collections::BTreeSet;

    fn layer(attr: &str, arg: &str) -> Expr {
        Expr::self_attr(attr).called(vec![Expr::name(arg)], vec![])
    }

    fn add(a: &str, b: &str) -> Expr {
        Expr::name(a).binop(BinOp::Add, Expr::name(b))
    }

    fn assign(target: &str, value: Expr) -> Assign {
        Assign::new(Expr::name(target), value)
    }

    fn norms(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn lines(stmts: &[Assign]) -> String {
        stmts.iter().map(|s| format!("{} = {}\n", flat(&s.target), flat(&s.value))).collect()
    }

    /// A bfloat16 model's norms compute in float32: their outputs cast back to bfloat16,
    /// there or in the next statement, are the normalized inputs all the same.
    #[test]
    fn a_norm_cast_back_is_h() {
        let cast = |e: Expr| e.method("to", vec![Expr::name("torch").attr("bfloat16")]);
        let mut stmts = vec![
            assign("x", layer("attention_norm", "inputs")),
            assign("attention_norm", cast(Expr::name("x"))),
            assign("q", layer("query", "attention_norm")),
            assign("x", layer("key", "attention_norm")),
            assign("x", add("x", "q")),
            assign("ffn_norm", cast(layer("ffn_norm", "x"))),
            assign("x", layer("gate", "ffn_norm")),
            assign("y", layer("up", "ffn_norm")),
            assign("x", add("x", "y")),
        ];
        role_names(&mut stmts, &[Expr::name("x")], &norms(&["attention_norm", "ffn_norm"]), |_| {
            true
        });
        insta::assert_snapshot!(lines(&stmts), @"
        x = self.attention_norm(inputs)
        h = x.to(torch.bfloat16)
        q = self.query(h)
        x = self.key(h)
        x = x + q
        h = self.ffn_norm(x).to(torch.bfloat16)
        x = self.gate(h)
        y = self.up(h)
        x = x + y
        ");
    }

    /// A pre-norm layer (Llama's): two normalized inputs, each read by two projections, and
    /// the stream between skip connections, one name for each kind as its values follow.
    #[test]
    fn a_pre_norm_layer_reads_h_and_residual() {
        let mut stmts = vec![
            assign("attention_norm", layer("attention_norm", "inputs")),
            assign("q", layer("query", "attention_norm")),
            assign("x", layer("key", "attention_norm")),
            assign("x", add("x", "q")),
            assign("add", add("x", "inputs")),
            assign("ffn_norm", layer("ffn_norm", "add")),
            assign("x", layer("gate", "ffn_norm")),
            assign("y", layer("up", "ffn_norm")),
            assign("x", add("x", "y")),
            assign("add_2", add("x", "add")),
            assign("x", layer("out", "add_2")),
            assign("x", add("x", "add_2")),
        ];
        role_names(&mut stmts, &[Expr::name("x")], &norms(&["attention_norm", "ffn_norm"]), |_| {
            true
        });
        insta::assert_snapshot!(lines(&stmts), @r"
        h = self.attention_norm(inputs)
        q = self.query(h)
        x = self.key(h)
        x = x + q
        residual = x + inputs
        h = self.ffn_norm(residual)
        x = self.gate(h)
        y = self.up(h)
        x = x + y
        residual = x + residual
        x = self.out(residual)
        x = x + residual
        ");
    }

    /// A name the block uses already, or a value read after the body, keeps its name.
    #[test]
    fn names_in_use_are_not_taken() {
        let mut stmts = vec![
            assign("residual", layer("proj", "inputs")),
            assign("add", add("residual", "inputs")),
            assign("x", layer("dense", "add")),
            assign("x", add("x", "add")),
            assign("x", add("x", "residual")),
        ];
        let before = lines(&stmts);
        role_names(&mut stmts, &[Expr::name("x")], &BTreeSet::new(), |_| true);
        assert_eq!(lines(&stmts), before);
    }
}
