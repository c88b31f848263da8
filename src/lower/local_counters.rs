//! Numbers that no longer tell a local name apart. [`Scope::fresh`] numbers a name apart from an
//! earlier one of the same base (`receptance_2`, `shift_12`). Once the earlier value runs as
//! `x` or `y`, or a block class took it into a `forward` of its own, the function that keeps
//! the numbered name may hold no other of its base: there the name is its base (`receptance`),
//! as a block class numbers its own values afresh.
//!
//! Only numbers `fresh` added are dropped; a number TF's name had (`layers_0`, `output_level_0`)
//! may be what the name says. Parameters keep their names: they are the model's input names,
//! or what the caller passes.

use std::collections::{BTreeMap, BTreeSet};

use super::module::Module;
use crate::py::names::Scope;
use crate::py::{Assign, Expr, Ref, Stmt};

/// Drops stale numbers in `forward` and in every block and tower class's `forward`.
pub(super) fn drop_stale_counters(module: &mut Module, locals: &Scope) {
    let outputs = module.outputs.iter().flat_map(Expr::names);
    let renames = stale(locals, body_names(&module.body, outputs), &module.params);
    rename_body(&mut module.body, &renames);
    for o in &mut module.outputs {
        *o = o.renamed(&by(&renames));
    }
    for class in &mut module.classes {
        let parts = class.optional.iter().flat_map(|p| p.body.iter().chain(&p.after));
        let mut used: BTreeSet<&str> =
            class.body.iter().chain(parts).flat_map(assign_names).collect();
        used.extend(std::iter::once(&class.output).chain(&class.extra_outputs).map(String::as_str));
        let keep: Vec<String> = class.inputs.iter().chain(&class.attributes).cloned().collect();
        let renames = stale(locals, used, &keep);
        let parts = class.optional.iter_mut().flat_map(|p| p.body.iter_mut().chain(&mut p.after));
        for a in class.body.iter_mut().chain(parts) {
            a.target = a.target.renamed(&by(&renames));
            a.value = a.value.renamed(&by(&renames));
        }
        for o in std::iter::once(&mut class.output).chain(&mut class.extra_outputs) {
            rename_str(o, &renames);
        }
    }
    for tower in &mut module.towers {
        let outputs = tower.outputs.iter().map(String::as_str);
        let renames = stale(locals, body_names(&tower.body, outputs), &tower.inputs);
        rename_body(&mut tower.body, &renames);
        for o in &mut tower.outputs {
            rename_str(o, &renames);
        }
    }
}

/// The names a function's `body` and its `outputs` use.
fn body_names<'a>(body: &'a [Stmt], outputs: impl Iterator<Item = &'a str>) -> BTreeSet<&'a str> {
    body.iter().flat_map(Stmt::all_names).chain(outputs).collect()
}

fn rename_body(body: &mut [Stmt], renames: &BTreeMap<String, String>) {
    for s in body {
        s.rename_all(&by(renames));
    }
}

fn assign_names(a: &Assign) -> Vec<&str> {
    a.target.names().into_iter().chain(a.value.names()).collect()
}

/// Of the names one function `used`, those `fresh` numbered whose base is not used there and
/// no other name there shares, but for the names in `keep` → their bases.
fn stale(locals: &Scope, used: BTreeSet<&str>, keep: &[String]) -> BTreeMap<String, String> {
    let mut bases: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for &n in &used {
        bases.entry(locals.uncounted(n)).or_default().push(n);
    }
    bases
        .into_iter()
        .filter_map(|(base, names)| {
            let &[n] = names.as_slice() else { return None };
            let free = !used.contains(base) && !keep.iter().any(|k| k == n);
            (free && numbered(n, base)).then(|| (n.to_string(), base.to_string()))
        })
        .collect()
}

/// Whether `name` is `base` and a number (`receptance_2`), not `base` cut down to fit
/// (`light_block_0_conv2_lab`, which the whole name would make longer again).
fn numbered(name: &str, base: &str) -> bool {
    let k = name.strip_prefix(base).and_then(|rest| rest.strip_prefix('_'));
    k.is_some_and(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()))
}

fn by(renames: &BTreeMap<String, String>) -> impl Fn(Ref<'_>) -> Option<Expr> + '_ {
    move |r| match r {
        Ref::Var(n) => renames.get(n).map(Expr::name),
        _ => None,
    }
}

fn rename_str(name: &mut String, renames: &BTreeMap<String, String>) {
    if let Some(new) = renames.get(name.as_str()) {
        *name = new.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn renames(locals: &Scope, used: &[&str], keep: &[&str]) -> Vec<(String, String)> {
        let keep: Vec<String> = keep.iter().map(|k| k.to_string()).collect();
        stale(locals, used.iter().copied().collect(), &keep).into_iter().collect()
    }

    #[test]
    fn a_number_that_tells_a_name_from_nothing_is_dropped() {
        let mut locals = Scope::for_locals();
        let names: Vec<String> = (0..3).map(|_| locals.fresh("scan")).collect();
        assert_eq!(names, ["scan", "scan_2", "scan_3"]);
        // `scan_3` numbered again is `scan_3_2`, whose base is in use.
        assert_eq!(locals.fresh("scan_3"), "scan_3_2");
        let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(renames(&locals, &["scan_3", "scan_3_2"], &[]), [pair("scan_3", "scan")]);
        assert_eq!(renames(&locals, &["scan_2", "scan_3"], &[]), []);
        assert_eq!(renames(&locals, &["scan_2"], &["scan_2"]), [], "a parameter keeps its name");
    }

    #[test]
    fn a_name_cut_to_fit_is_not_made_whole_again() {
        let mut locals = Scope::for_locals();
        let long = "encoder_stage_1_block_0_light_block_0_conv2_lab";
        let cut = locals.fresh(long);
        assert_eq!(cut, "light_block_0_conv2_lab");
        assert_eq!(renames(&locals, &[&cut], &[]), []);
    }
}
