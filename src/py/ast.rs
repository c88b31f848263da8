//! The Python syntax tree tf2torch writes: expressions and statements as data, built by
//! lowering and printed by [`super::printer`], the only code that turns them into text.
//!
//! Identifiers reaching a [`Expr::Name`] or an attribute come from `names` (or are fixed names
//! such as `torch`); strings are kept raw and escaped by the printer.

/// A Python expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// An identifier: `x`, `torch`, `self`.
    Name(String),
    /// `value.attr`.
    Attribute(Box<Expr>, String),
    /// `func(args, key=value)`.
    Call(Box<Call>),
    /// `value[index]`; a tuple index prints without parentheses (`x[:, 0]`).
    Subscript(Box<Expr>, Box<Expr>),
    /// `lower:upper:step`, only inside a subscript.
    Slice(Box<Slice>),
    /// `left op right`.
    Binary(Box<Expr>, BinOp, Box<Expr>),
    /// `-x`, `not x`.
    Unary(UnaryOp, Box<Expr>),
    /// `(a, b)`; `(a,)` for one element.
    Tuple(Vec<Expr>),
    /// `[a, b]`.
    List(Vec<Expr>),
    /// `*value`, inside a list or call.
    Starred(Box<Expr>),
    /// `body if test else orelse`.
    IfElse(Box<IfElse>),
    /// `[elt for target in iter]`.
    ListComp(Box<ListComp>),
    /// A literal value.
    Lit(Lit),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    pub func: Expr,
    pub args: Vec<Expr>,
    pub kwargs: Vec<(String, Expr)>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct IfElse {
    pub test: Expr,
    pub body: Expr,
    pub orelse: Expr,
}

/// `[elt for target in iter]` (`nn.ModuleList([Block() for _ in range(12)])`).
#[derive(Clone, Debug, PartialEq)]
pub struct ListComp {
    pub elt: Expr,
    pub target: Expr,
    pub iter: Expr,
}

/// `x[first][second]` as one index, where both only slice axes and add new ones (`None`) and
/// no axis is sliced by both: `x[:, :n][:, None, None]` is `x[:, None, None, :n]`,
/// `x[:, None][:, None]` is `x[:, None, None]`. Only a tuple or `None` indexes a tensor (a
/// list or a shape takes neither), so a lone slice is left alone.
/// The items of an index made only of slices and new axes (`None`), each giving one axis of
/// the result in order; a lone slice is not one (it may index a list or a shape).
fn basic_parts(index: &Expr) -> Option<&[Expr]> {
    let parts = match index {
        Expr::Tuple(items) => items.as_slice(),
        Expr::Lit(Lit::None) => std::slice::from_ref(index),
        _ => return None,
    };
    let basic = |e: &Expr| matches!(e, Expr::Slice(_) | Expr::Lit(Lit::None));
    parts.iter().all(basic).then_some(parts)
}

/// `:`, which keeps its axis whole.
fn full(e: &Expr) -> bool {
    matches!(e, Expr::Slice(s) if s.lower.is_none() && s.upper.is_none() && s.step.is_none())
}

/// Item `k` of a tuple display (negative from the end), when it is one entry: a starred item
/// stands for any number of entries, so it and every position past it (before it, from the
/// end) are unknown: `(*s[:1], 1, *s[1:])[2]` is not `*s[1:]`.
fn tuple_item(items: &[Expr], k: i64) -> Option<&Expr> {
    let starred = |e: &Expr| matches!(e, Expr::Starred(_));
    let (k, before) = match usize::try_from(k) {
        Ok(k) => (k, items.get(..=k)?),
        Err(_) => {
            let k = items.len().checked_sub(usize::try_from(-k).ok()?)?;
            (k, items.get(k..)?)
        }
    };
    (!before.iter().any(starred)).then(|| &items[k])
}

fn merged_index(first: &Expr, second: &Expr) -> Option<Expr> {
    let (first, second) = (basic_parts(first)?, basic_parts(second)?);
    let mut merged = Vec::new();
    let mut axes = first.iter();
    for item in second {
        if matches!(item, Expr::Lit(Lit::None)) {
            merged.push(item.clone());
            continue;
        }
        // The axis of `x[first]` this item indexes: one `first` kept or added, or past them.
        merged.push(match axes.next() {
            None => item.clone(),
            Some(axis) if full(item) => axis.clone(),
            Some(axis) if full(axis) => item.clone(),
            Some(_) => return None,
        });
    }
    merged.extend(axes.cloned());
    while merged.len() > 1 && merged.last().is_some_and(full) {
        merged.pop();
    }
    Some(Expr::index_of(merged))
}

#[derive(Clone, Debug, PartialEq)]
pub struct Slice {
    pub lower: Option<Expr>,
    pub upper: Option<Expr>,
    pub step: Option<Expr>,
}

/// Literals. Floats keep the precision they came from, so that they print as the shortest
/// decimal that reads back to the same value in that precision.
#[derive(Clone, Debug, PartialEq)]
pub enum Lit {
    Int(i64),
    F32(f32),
    F64(f64),
    Str(String),
    Bool(bool),
    None,
    /// `...` (in type hints: `tuple[torch.Tensor, ...]`).
    Ellipsis,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    FloorDiv,
    Mod,
    MatMul,
    BitAnd,
    BitOr,
    Lt,
    LtE,
    Gt,
    GtE,
    Eq,
    NotEq,
    /// `is not` (`pad is not None`).
    IsNot,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    Neg,
    Not,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::FloorDiv => "//",
            BinOp::Mod => "%",
            BinOp::MatMul => "@",
            BinOp::BitAnd => "&",
            BinOp::BitOr => "|",
            BinOp::Lt => "<",
            BinOp::LtE => "<=",
            BinOp::Gt => ">",
            BinOp::GtE => ">=",
            BinOp::Eq => "==",
            BinOp::NotEq => "!=",
            BinOp::IsNot => "is not",
        }
    }

    /// Python's binding strength (higher binds tighter); comparisons are the weakest.
    pub fn precedence(self) -> u8 {
        match self {
            BinOp::Lt
            | BinOp::LtE
            | BinOp::Gt
            | BinOp::GtE
            | BinOp::Eq
            | BinOp::NotEq
            | BinOp::IsNot => 0,
            BinOp::BitOr => 1,
            BinOp::BitAnd => 2,
            BinOp::Add | BinOp::Sub => 3,
            BinOp::Mul | BinOp::Div | BinOp::FloorDiv | BinOp::Mod | BinOp::MatMul => 4,
        }
    }

    pub fn is_comparison(self) -> bool {
        self.precedence() == 0
    }
}

impl Expr {
    pub fn name(s: impl Into<String>) -> Expr {
        Expr::Name(s.into())
    }

    /// A dotted path of fixed identifiers: `torch.nn.functional` → nested attributes. For the
    /// generator's own names (`torch.cat`, `nn.Conv2d`); names from a model go through
    /// `names` and [`Expr::name`].
    pub fn path(dotted: &str) -> Expr {
        debug_assert!(
            dotted.split('.').all(|p| p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')),
            "not a dotted path: {dotted:?}"
        );
        let mut parts = dotted.split('.');
        let first = Expr::name(parts.next().unwrap_or_default());
        parts.fold(first, |e, p| e.attr(p))
    }

    /// `self.<name>`.
    pub fn self_attr(name: &str) -> Expr {
        Expr::name("self").attr(name)
    }

    pub fn int(i: i64) -> Expr {
        Expr::Lit(Lit::Int(i))
    }

    pub fn ints(v: &[i64]) -> Expr {
        Expr::Tuple(v.iter().map(|&i| Expr::int(i)).collect())
    }

    pub fn f32(x: f32) -> Expr {
        Expr::Lit(Lit::F32(x))
    }

    pub fn f64(x: f64) -> Expr {
        Expr::Lit(Lit::F64(x))
    }

    pub fn boolean(b: bool) -> Expr {
        Expr::Lit(Lit::Bool(b))
    }

    pub fn none() -> Expr {
        Expr::Lit(Lit::None)
    }

    /// A string literal; the printer escapes it.
    pub fn str_lit(s: &str) -> Expr {
        Expr::Lit(Lit::Str(s.to_string()))
    }

    /// `func(args)` for a dotted function path such as `torch.cat`.
    pub fn call(func: &str, args: Vec<Expr>) -> Expr {
        Expr::path(func).called(args, Vec::new())
    }

    pub fn call_kw(func: &str, args: Vec<Expr>, kwargs: Vec<(&str, Expr)>) -> Expr {
        Expr::path(func).called(args, kwargs)
    }

    /// This expression called: `self(args, key=value)`.
    pub fn called(self, args: Vec<Expr>, kwargs: Vec<(&str, Expr)>) -> Expr {
        let kwargs = kwargs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        Expr::Call(Box::new(Call { func: self, args, kwargs }))
    }

    /// `self.method(args)`.
    pub fn method(self, name: &str, args: Vec<Expr>) -> Expr {
        self.attr(name).called(args, Vec::new())
    }

    pub fn method_kw(self, name: &str, args: Vec<Expr>, kwargs: Vec<(&str, Expr)>) -> Expr {
        self.attr(name).called(args, kwargs)
    }

    pub fn attr(self, name: &str) -> Expr {
        Expr::Attribute(Box::new(self), name.to_string())
    }

    /// `self.permute(perm)`, composed with a permute `self` ends in (`x.permute(0, 2, 3, 1)`
    /// then to channels first is `x`, not two permutes that cancel); nothing for the identity.
    pub fn permuted(self, perm: &[i64]) -> Expr {
        let inner = match &self {
            Expr::Call(c) if c.kwargs.is_empty() && c.args.len() == perm.len() => match &c.func {
                Expr::Attribute(base, m) if m == "permute" => {
                    c.args.iter().map(Expr::as_int).collect::<Option<Vec<i64>>>().map(|p| (base, p))
                }
                _ => None,
            },
            _ => None,
        };
        let (base, perm) = match inner {
            Some((base, p)) => {
                let composed = perm
                    .iter()
                    .map(|&a| usize::try_from(a).ok().and_then(|a| p.get(a).copied()))
                    .collect::<Option<Vec<i64>>>();
                match composed {
                    Some(c) => ((**base).clone(), c),
                    None => (self, perm.to_vec()),
                }
            }
            None => (self, perm.to_vec()),
        };
        if perm.iter().enumerate().all(|(i, &a)| i64::try_from(i) == Ok(a)) {
            return base;
        }
        base.method("permute", perm.into_iter().map(Expr::int).collect())
    }

    /// `self[index]`; an entry of a tuple written out is that entry (`(0, n, 0)[1]` is `n`);
    /// a tensor's axes added or sliced twice, once (see [`merged_index`]).
    pub fn index(self, index: Expr) -> Expr {
        if let (Expr::Tuple(items), Some(k)) = (&self, index.as_int())
            && let Some(item) = tuple_item(items, k)
        {
            return item.clone();
        }
        if let Expr::Subscript(value, first) = &self
            && let Some(merged) = merged_index(first, &index)
        {
            return Expr::Subscript(value.clone(), Box::new(merged));
        }
        Expr::Subscript(Box::new(self), Box::new(index))
    }

    /// `self.squeeze(dim)`, or, when `self` is `x[...]` whose item for axis `dim` only adds
    /// that axis (`None`), `x[...]` without it: `m[:, None, None].squeeze(2)` is `m[:, None]`.
    pub fn squeezed(self, dim: i64) -> Expr {
        if let Expr::Subscript(value, index) = &self
            && let Some(parts) = basic_parts(index)
            && let Some(d) = usize::try_from(dim).ok().filter(|&d| d < parts.len())
            && matches!(parts[d], Expr::Lit(Lit::None))
        {
            let mut rest = parts.to_vec();
            rest.remove(d);
            while rest.last().is_some_and(full) {
                rest.pop();
            }
            return match rest.is_empty() {
                true => (**value).clone(),
                false => Expr::Subscript(value.clone(), Box::new(Expr::index_of(rest))),
            };
        }
        self.method("squeeze", vec![Expr::int(dim)])
    }

    pub fn binop(self, op: BinOp, right: Expr) -> Expr {
        Expr::Binary(Box::new(self), op, Box::new(right))
    }

    /// `-self`.
    pub fn negated(self) -> Expr {
        Expr::Unary(UnaryOp::Neg, Box::new(self))
    }

    /// `not self`.
    pub fn logical_not(self) -> Expr {
        Expr::Unary(UnaryOp::Not, Box::new(self))
    }

    pub fn starred(self) -> Expr {
        Expr::Starred(Box::new(self))
    }

    /// `lower:upper:step` with any part omitted.
    pub fn slice(lower: Option<Expr>, upper: Option<Expr>, step: Option<Expr>) -> Expr {
        Expr::Slice(Box::new(Slice { lower, upper, step }))
    }

    /// `:`, the whole axis.
    /// `self if test else orelse`.
    pub fn if_else(self, test: Expr, orelse: Expr) -> Expr {
        Expr::IfElse(Box::new(IfElse { test, body: self, orelse }))
    }

    pub fn full_slice() -> Expr {
        Expr::slice(None, None, None)
    }

    /// A subscript index from its parts: one part bare, several as a tuple (`x[:, 0]`).
    pub fn index_of(mut parts: Vec<Expr>) -> Expr {
        if parts.len() == 1 { parts.remove(0) } else { Expr::Tuple(parts) }
    }

    /// The identifier, when this is a plain name.
    pub fn as_name(&self) -> Option<&str> {
        match self {
            Expr::Name(n) => Some(n),
            _ => None,
        }
    }

    /// The value of a number literal (an int, a float, a bool as 0 or 1).
    pub fn as_number(&self) -> Option<f64> {
        match self {
            Expr::Lit(Lit::Int(i)) => Some(*i as f64),
            Expr::Lit(Lit::F32(f)) => Some(f64::from(*f)),
            Expr::Lit(Lit::F64(f)) => Some(*f),
            Expr::Lit(Lit::Bool(b)) => Some(f64::from(u8::from(*b))),
            _ => None,
        }
    }

    /// The integer, when this is an integer literal.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Expr::Lit(Lit::Int(i)) => Some(*i),
            _ => None,
        }
    }

    /// `self.<name>` → `name`.
    pub fn as_self_attr(&self) -> Option<&str> {
        match self {
            Expr::Attribute(v, a) if v.as_name() == Some("self") => Some(a),
            _ => None,
        }
    }

    /// `x.to(torch.<dtype>)` → `x`: a cast.
    pub fn as_dtype_cast(&self) -> Option<&Expr> {
        let Expr::Call(c) = self else { return None };
        let Expr::Attribute(x, method) = &c.func else { return None };
        let dtype = matches!(&c.args[..], [Expr::Attribute(t, _)] if t.as_name() == Some("torch"));
        (method == "to" && dtype && c.kwargs.is_empty()).then_some(x)
    }

    /// A number, string, boolean or `None`, possibly negated (what `clamp(min=...)` takes).
    pub fn is_literal(&self) -> bool {
        match self {
            Expr::Lit(_) => true,
            Expr::Unary(UnaryOp::Neg, e) => e.is_literal(),
            // `float("inf")`
            Expr::Call(c) => {
                c.func.as_name() == Some("float")
                    && matches!(c.args.as_slice(), [Expr::Lit(Lit::Str(_))])
            }
            _ => false,
        }
    }

    /// The direct sub-expressions, in source order.
    pub fn children(&self) -> Vec<&Expr> {
        match self {
            Expr::Name(_) | Expr::Lit(_) => Vec::new(),
            Expr::Attribute(v, _) => vec![v],
            Expr::Call(c) => {
                let mut v = vec![&c.func];
                v.extend(&c.args);
                v.extend(c.kwargs.iter().map(|(_, e)| e));
                v
            }
            Expr::Subscript(v, i) => vec![v, i],
            Expr::Slice(s) => [&s.lower, &s.upper, &s.step].into_iter().flatten().collect(),
            Expr::Binary(l, _, r) => vec![l, r],
            Expr::Unary(_, e) | Expr::Starred(e) => vec![e],
            Expr::Tuple(items) | Expr::List(items) => items.iter().collect(),
            Expr::IfElse(c) => vec![&c.body, &c.test, &c.orelse],
            Expr::ListComp(c) => vec![&c.elt, &c.target, &c.iter],
        }
    }

    /// The direct sub-expressions, mutable, in source order (see [`Expr::children`]).
    pub fn children_mut(&mut self) -> Vec<&mut Expr> {
        match self {
            Expr::Name(_) | Expr::Lit(_) => Vec::new(),
            Expr::Attribute(v, _) => vec![v],
            Expr::Call(c) => {
                let c = &mut **c;
                let mut v = vec![&mut c.func];
                v.extend(c.args.iter_mut());
                v.extend(c.kwargs.iter_mut().map(|(_, e)| e));
                v
            }
            Expr::Subscript(v, i) => vec![v, i],
            Expr::Slice(s) => {
                let s = &mut **s;
                [&mut s.lower, &mut s.upper, &mut s.step].into_iter().flatten().collect()
            }
            Expr::Binary(l, _, r) => vec![l, r],
            Expr::Unary(_, e) | Expr::Starred(e) => vec![e],
            Expr::Tuple(items) | Expr::List(items) => items.iter_mut().collect(),
            Expr::IfElse(c) => {
                let c = &mut **c;
                vec![&mut c.body, &mut c.test, &mut c.orelse]
            }
            Expr::ListComp(c) => {
                let c = &mut **c;
                vec![&mut c.elt, &mut c.target, &mut c.iter]
            }
        }
    }

    /// Calls `f` on every call in this expression, innermost first.
    pub fn for_each_call_mut(&mut self, f: &mut dyn FnMut(&mut Call)) {
        for child in self.children_mut() {
            child.for_each_call_mut(f);
        }
        if let Expr::Call(c) = self {
            f(c);
        }
    }

    /// Every variable this expression reads, in order of appearance (with repeats). `self` and
    /// module names count like any other name; attribute names do not.
    pub fn names(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_names(&mut out);
        out
    }

    fn collect_names<'e>(&'e self, out: &mut Vec<&'e str>) {
        if let Expr::Name(n) = self {
            out.push(n);
        }
        for c in self.children() {
            c.collect_names(out);
        }
    }

    /// The bare names this expression calls (`list(...)`, `int(...)`), in order.
    pub fn called_names(&self) -> Vec<&str> {
        let mut out = Vec::new();
        if let Expr::Call(c) = self
            && let Expr::Name(n) = &c.func
        {
            out.push(n.as_str());
        }
        for c in self.children() {
            out.extend(c.called_names());
        }
        out
    }

    /// How many times this expression reads variable `name`.
    pub fn reads(&self, name: &str) -> usize {
        self.names().iter().filter(|n| **n == name).count()
    }

    /// Every `self.<attr>` this expression mentions, in order (with repeats).
    pub fn self_attrs(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_self_attrs(&mut out);
        out
    }

    fn collect_self_attrs<'e>(&'e self, out: &mut Vec<&'e str>) {
        if let Some(a) = self.as_self_attr() {
            out.push(a);
            return;
        }
        for c in self.children() {
            c.collect_self_attrs(out);
        }
    }

    /// The expression with variables and `self.<attr>` references renamed through `rename`
    /// (which returns `None` to keep a name). Attribute names on other objects and strings
    /// are never touched.
    pub fn renamed(&self, rename: &impl Fn(Ref<'_>) -> Option<Expr>) -> Expr {
        if let Some(a) = self.as_self_attr()
            && let Some(e) = rename(Ref::SelfAttr(a))
        {
            return e;
        }
        let r = |e: &Expr| e.renamed(rename);
        let rb = |e: &Expr| Box::new(e.renamed(rename));
        match self {
            Expr::Name(n) => rename(Ref::Var(n)).unwrap_or_else(|| self.clone()),
            Expr::Lit(_) => self.clone(),
            Expr::Attribute(v, a) => Expr::Attribute(rb(v), a.clone()),
            Expr::Call(c) => Expr::Call(Box::new(Call {
                func: r(&c.func),
                args: c.args.iter().map(r).collect(),
                kwargs: c.kwargs.iter().map(|(k, v)| (k.clone(), r(v))).collect(),
            })),
            // A name renamed to a tuple written out and indexed by a number is that entry.
            Expr::Subscript(v, i) => r(v).index(r(i)),
            Expr::Slice(s) => Expr::Slice(Box::new(Slice {
                lower: s.lower.as_ref().map(r),
                upper: s.upper.as_ref().map(r),
                step: s.step.as_ref().map(r),
            })),
            Expr::Binary(l, op, rt) => Expr::Binary(rb(l), *op, rb(rt)),
            Expr::Unary(op, e) => Expr::Unary(*op, rb(e)),
            Expr::Starred(e) => Expr::Starred(rb(e)),
            Expr::IfElse(c) => Expr::IfElse(Box::new(IfElse {
                test: r(&c.test),
                body: r(&c.body),
                orelse: r(&c.orelse),
            })),
            Expr::Tuple(items) => Expr::Tuple(items.iter().map(r).collect()),
            Expr::List(items) => Expr::List(items.iter().map(r).collect()),
            Expr::ListComp(c) => Expr::ListComp(Box::new(ListComp {
                elt: r(&c.elt),
                target: c.target.clone(),
                iter: r(&c.iter),
            })),
        }
    }

    /// The names an assignment to this target binds (`_` excluded), in order.
    pub fn bound_names(&self) -> Vec<&str> {
        match self {
            Expr::Name(n) if n != "_" => vec![n],
            Expr::Tuple(items) | Expr::List(items) => {
                items.iter().flat_map(|i| i.bound_names()).collect()
            }
            Expr::Starred(e) => e.bound_names(),
            _ => Vec::new(),
        }
    }
}

/// A reference [`Expr::renamed`] may rename.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ref<'a> {
    /// A variable.
    Var(&'a str),
    /// `self.<attr>`.
    SelfAttr(&'a str),
}

/// `target = value`.
#[derive(Clone, Debug, PartialEq)]
pub struct Assign {
    pub target: Expr,
    pub value: Expr,
}

impl Assign {
    pub fn new(target: Expr, value: Expr) -> Assign {
        Assign { target, value }
    }
}

/// A Python statement.
#[derive(Clone, Debug, PartialEq)]
pub enum Stmt {
    Assign(Assign),
    /// An expression evaluated for its effect: `self.register_buffer(...)`.
    Expr(Expr),
    /// `return`, `return x`, `return a, b` (a tuple value prints without parentheses).
    Return(Option<Expr>),
    Raise(Expr),
    If {
        test: Expr,
        body: Vec<Stmt>,
        orelse: Vec<Stmt>,
    },
    While {
        test: Expr,
        body: Vec<Stmt>,
    },
    For {
        target: Expr,
        iter: Expr,
        body: Vec<Stmt>,
    },
    FunctionDef(FunctionDef),
    ClassDef(ClassDef),
    /// `# text` on a line of its own.
    Comment(String),
    Pass,
}

/// A function parameter with an optional default.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    pub name: String,
    /// Type hint: `x: torch.Tensor`.
    pub annotation: Option<Expr>,
    pub default: Option<Expr>,
}

impl Param {
    pub fn new(name: impl Into<String>) -> Param {
        Param { name: name.into(), annotation: None, default: None }
    }

    pub fn with_default(name: impl Into<String>, default: Expr) -> Param {
        Param { name: name.into(), annotation: None, default: Some(default) }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct FunctionDef {
    pub name: String,
    pub params: Vec<Param>,
    /// Parameters after a bare `*`.
    pub keyword_only: Vec<Param>,
    /// Docstring lines (the printer escapes and indents them).
    pub docstring: Vec<String>,
    pub body: Vec<Stmt>,
    /// Return type hint: `-> torch.Tensor`.
    pub returns: Option<Expr>,
}

impl FunctionDef {
    pub fn new(name: impl Into<String>, params: Vec<Param>, body: Vec<Stmt>) -> FunctionDef {
        FunctionDef {
            name: name.into(),
            params,
            keyword_only: Vec::new(),
            docstring: Vec::new(),
            body,
            returns: None,
        }
    }

    /// A method: `self` first, then `params`.
    pub fn method(name: impl Into<String>, params: &[String], body: Vec<Stmt>) -> FunctionDef {
        let mut all = vec![Param::new("self")];
        all.extend(params.iter().map(Param::new));
        FunctionDef::new(name, all, body)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ClassDef {
    pub name: String,
    pub bases: Vec<Expr>,
    pub docstring: Vec<String>,
    pub body: Vec<Stmt>,
}

impl Stmt {
    pub fn assign(target: Expr, value: Expr) -> Stmt {
        Stmt::Assign(Assign::new(target, value))
    }

    pub fn ret(value: Expr) -> Stmt {
        Stmt::Return(Some(value))
    }

    /// `return a, b, ...` (`return a` for one value).
    pub fn return_values(mut values: Vec<Expr>) -> Stmt {
        if values.len() == 1 { Stmt::ret(values.remove(0)) } else { Stmt::ret(Expr::Tuple(values)) }
    }

    /// Every expression directly in this statement (not in nested statements).
    pub fn exprs(&self) -> Vec<&Expr> {
        match self {
            Stmt::Assign(a) => vec![&a.target, &a.value],
            Stmt::Expr(e) | Stmt::Raise(e) => vec![e],
            Stmt::Return(e) => e.iter().collect(),
            Stmt::If { test, .. } | Stmt::While { test, .. } => vec![test],
            Stmt::For { target, iter, .. } => vec![target, iter],
            Stmt::FunctionDef(f) => {
                f.params.iter().chain(&f.keyword_only).filter_map(|p| p.default.as_ref()).collect()
            }
            Stmt::ClassDef(c) => c.bases.iter().collect(),
            Stmt::Comment(_) | Stmt::Pass => Vec::new(),
        }
    }

    /// The expressions directly in this statement and the statements nested in it, to
    /// change; with `scopes`, also the bodies of functions and classes defined here, which
    /// are scopes of their own.
    fn parts_mut(&mut self, scopes: bool) -> (Vec<&mut Expr>, Vec<&mut Stmt>) {
        match self {
            Stmt::Assign(a) => (vec![&mut a.target, &mut a.value], Vec::new()),
            Stmt::Expr(e) | Stmt::Raise(e) => (vec![e], Vec::new()),
            Stmt::Return(e) => (e.iter_mut().collect(), Vec::new()),
            Stmt::If { test, body, orelse } => {
                (vec![test], body.iter_mut().chain(orelse.iter_mut()).collect())
            }
            Stmt::While { test, body } => (vec![test], body.iter_mut().collect()),
            Stmt::For { target, iter, body } => (vec![target, iter], body.iter_mut().collect()),
            Stmt::FunctionDef(d) if scopes => (Vec::new(), d.body.iter_mut().collect()),
            Stmt::ClassDef(c) if scopes => (Vec::new(), c.body.iter_mut().collect()),
            Stmt::FunctionDef(_) | Stmt::ClassDef(_) | Stmt::Comment(_) | Stmt::Pass => {
                (Vec::new(), Vec::new())
            }
        }
    }

    /// Calls `f` on every call anywhere in this statement and the ones nested in it.
    pub fn for_each_call_mut(&mut self, f: &mut dyn FnMut(&mut Call)) {
        let (exprs, children) = self.parts_mut(true);
        for e in exprs {
            e.for_each_call_mut(f);
        }
        for c in children {
            c.for_each_call_mut(f);
        }
    }

    /// Renames names by `rename` (see [`Expr::renamed`]) anywhere in this statement and the
    /// ones nested in it, but for functions and classes defined here (scopes of their own).
    pub fn rename_all(&mut self, rename: &impl Fn(Ref<'_>) -> Option<Expr>) {
        let (exprs, children) = self.parts_mut(false);
        for e in exprs {
            *e = e.renamed(rename);
        }
        for c in children {
            c.rename_all(rename);
        }
    }

    /// The statements nested in this one.
    pub fn children(&self) -> Vec<&Stmt> {
        match self {
            Stmt::If { body, orelse, .. } => body.iter().chain(orelse).collect(),
            Stmt::While { body, .. } | Stmt::For { body, .. } => body.iter().collect(),
            Stmt::FunctionDef(f) => f.body.iter().collect(),
            Stmt::ClassDef(c) => c.body.iter().collect(),
            _ => Vec::new(),
        }
    }

    /// Every bare name called anywhere in this statement and the ones nested in it.
    pub fn all_called_names(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self.exprs().into_iter().flat_map(|e| e.called_names()).collect();
        for c in self.children() {
            out.extend(c.all_called_names());
        }
        out
    }

    /// Every name an assignment or a `for` binds anywhere in this statement and the ones
    /// nested in it.
    pub fn all_bound_names(&self) -> Vec<&str> {
        let mut out: Vec<&str> = match self {
            Stmt::Assign(a) => a.target.bound_names(),
            Stmt::For { target, .. } => target.bound_names(),
            _ => Vec::new(),
        };
        for c in self.children() {
            out.extend(c.all_bound_names());
        }
        out
    }

    /// Every name read or bound anywhere in this statement and the ones nested in it.
    pub fn all_names(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self.exprs().into_iter().flat_map(|e| e.names()).collect();
        for c in self.children() {
            out.extend(c.all_names());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_self_attributes_are_found_by_walking_the_tree() {
        let e = Expr::self_attr("conv")
            .called(vec![Expr::name("x").attr("x")], vec![("mode", Expr::str_lit("x"))])
            .binop(BinOp::Add, Expr::name("y").index(Expr::name("x")));
        assert_eq!(e.names(), ["self", "x", "y", "x"]);
        assert_eq!(e.self_attrs(), ["conv"]);
        assert_eq!(e.reads("x"), 2);
    }

    #[test]
    fn renaming_touches_variables_and_layers_only() {
        let e = Expr::self_attr("conv_a").called(
            vec![Expr::name("x").attr("x"), Expr::path("F.pad")],
            vec![("mode", Expr::str_lit("x"))],
        );
        let r = e.renamed(&|r| match r {
            Ref::Var("x") => Some(Expr::name("y")),
            Ref::SelfAttr("conv_a") => Some(Expr::self_attr("conv1")),
            _ => None,
        });
        let want = Expr::self_attr("conv1").called(
            vec![Expr::name("y").attr("x"), Expr::path("F.pad")],
            vec![("mode", Expr::str_lit("x"))],
        );
        assert_eq!(r, want);
    }

    #[test]
    fn an_entry_of_a_written_out_tuple_is_the_entry() {
        let t = || Expr::Tuple(vec![Expr::int(0), Expr::name("n"), Expr::int(2)]);
        assert_eq!(t().index(Expr::int(1)), Expr::name("n"));
        assert_eq!(t().index(Expr::int(-1)), Expr::int(2));
        // Out of range, or read at run time: indexing stays (and fails as Python would).
        assert!(matches!(t().index(Expr::int(3)), Expr::Subscript(..)));
        assert!(matches!(t().index(Expr::name("k")), Expr::Subscript(..)));
        // A starred entry holds any number of entries: only those before it (or, from the
        // end, after it) are known. TF's 1-D transposed conv sizes `(*s[:1], 1, *s[1:])`.
        let s = |a: Option<i64>, b: Option<i64>| {
            Expr::name("s").index(Expr::slice(a.map(Expr::int), b.map(Expr::int), None)).starred()
        };
        let sizes = || Expr::Tuple(vec![s(None, Some(1)), Expr::int(1), s(Some(1), None)]);
        assert!(matches!(sizes().index(Expr::int(2)), Expr::Subscript(..)));
        assert!(matches!(sizes().index(Expr::int(0)), Expr::Subscript(..)));
        assert!(matches!(sizes().index(Expr::int(-2)), Expr::Subscript(..)));
        let known = Expr::Tuple(vec![Expr::name("n"), s(Some(1), None)]);
        assert_eq!(known.clone().index(Expr::int(0)), Expr::name("n"));
        let tail = Expr::Tuple(vec![s(None, Some(1)), Expr::name("n")]);
        assert_eq!(tail.index(Expr::int(-1)), Expr::name("n"));
    }

    #[test]
    fn a_tensor_indexed_twice_by_slices_and_new_axes_is_indexed_once() {
        let show = |e: Expr| crate::py::printer::flat(&e);
        let all = Expr::full_slice;
        let upto = |n: &str| Expr::slice(None, Some(Expr::name(n)), None);
        let x = || Expr::name("x");
        let new_axis = || Expr::Tuple(vec![all(), Expr::none()]);
        // Axes added after an axis added.
        assert_eq!(show(x().index(new_axis()).index(new_axis())), "x[:, None, None]");
        // Axes added before one sliced: the slice moves to its axis.
        let sliced = x().index(Expr::Tuple(vec![all(), upto("n")]));
        let twice = sliced.index(Expr::Tuple(vec![all(), Expr::none(), Expr::none()]));
        assert_eq!(show(twice), "x[:, None, None, :n]");
        // One axis sliced by both: two subscripts (their composition needs the sizes).
        let both = x()
            .index(Expr::Tuple(vec![all(), upto("n")]))
            .index(Expr::Tuple(vec![all(), upto("m")]));
        assert_eq!(show(both), "x[:, :n][:, :m]");
        // A lone slice may index a list or a shape, which take no tuple: left alone.
        assert_eq!(
            show(x().index(upto("n")).index(Expr::Tuple(vec![all(), Expr::none()]))),
            "x[:n][:, None]"
        );
        // A number picks an axis away: left alone.
        let picked = x().index(Expr::Tuple(vec![all(), Expr::int(0)])).index(new_axis());
        assert_eq!(show(picked), "x[:, 0][:, None]");
    }

    /// An axis indexed in and squeezed out is never added; any other squeeze stays one.
    #[test]
    fn a_new_axis_squeezed_out_is_not_indexed_in() {
        let show = |e: Expr| crate::py::printer::flat(&e);
        let (all, none) = (Expr::full_slice, Expr::none);
        let x = || Expr::name("x");
        let added = || x().index(Expr::Tuple(vec![all(), none(), none(), all()]));
        assert_eq!(show(added().squeezed(2)), "x[:, None]");
        assert_eq!(show(x().index(none()).squeezed(0)), "x");
        // Axis 3 is kept, not added; axis 4 is past the index; a negative axis counts from
        // an end the index does not show.
        assert_eq!(show(added().squeezed(3)), "x[:, None, None, :].squeeze(3)");
        assert_eq!(show(added().squeezed(4)), "x[:, None, None, :].squeeze(4)");
        assert_eq!(show(added().squeezed(-1)), "x[:, None, None, :].squeeze(-1)");
        // A number picks an axis away: the positions no longer match the result's axes.
        let picked = x().index(Expr::Tuple(vec![Expr::int(0), none()]));
        assert_eq!(show(picked.squeezed(1)), "x[0, None].squeeze(1)");
    }

    #[test]
    fn bound_names_of_nested_targets() {
        let t =
            Expr::Tuple(vec![Expr::name("y"), Expr::Tuple(vec![Expr::name("h"), Expr::name("_")])]);
        assert_eq!(t.bound_names(), ["y", "h"]);
    }
}
