//! Identifier policy: every name that reaches generated Python comes from here.
//!
//! TF names (`model/conv2_block1_1_conv/Conv2D`, or hostile ones) become snake_case Python
//! identifiers that cannot clash with keywords, builtins, `nn.Module` attributes, the names the
//! template itself uses, or each other.

use std::collections::{BTreeMap, BTreeSet};

use heck::ToSnakeCase;

const KEYWORDS: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield", "match", "case", "type",
];

/// Builtins and names the generated file defines or imports.
const RESERVED: &[&str] = &[
    "abs",
    "all",
    "any",
    "bool",
    "complex",
    "dict",
    "divmod",
    "enumerate",
    "getattr",
    "isinstance",
    "iter",
    "next",
    "reversed",
    "sorted",
    "float",
    "id",
    "input",
    "int",
    "len",
    "list",
    "map",
    "max",
    "min",
    "object",
    "pow",
    "print",
    "range",
    "round",
    "set",
    "slice",
    "str",
    "sum",
    "super",
    "tuple",
    "zip",
    "self",
    "torch",
    "nn",
    "F",
    "os",
    "json",
    "struct",
    "custom_ops",
    "load_model",
    "weights",
    "device",
];

/// The helper functions and classes `model.py` may define (templates/*.py, emitted when
/// used): no local, parameter or class may take one's name. A test keeps this in step with
/// the templates.
const HELPERS: &[&str] = &[
    "adjust_hsv",
    "apply_rotary",
    "apply_rotary_every_two",
    "band_part",
    "combined_non_max_suppression",
    "conv_transpose_sized",
    "crop_and_resize",
    "ctc_greedy_decoder",
    "dynamic_update_slice",
    "histogram_fixed_width",
    "hsv_to_rgb",
    "in_top_k",
    "lu",
    "matrix_diag",
    "matrix_diag_part",
    "matrix_set_diag",
    "mirror_pad",
    "non_max_suppression",
    "pad_same",
    "population_count",
    "projective_transform",
    "quantize_int8",
    "ragged_gather",
    "ragged_range",
    "ragged_to_dense",
    "ragged_to_sparse",
    "resize_bicubic",
    "resize_legacy",
    "rgb_to_hsv",
    "rotate_every_two",
    "rotate_half",
    "rotate_pairs",
    "set_operation",
    "sparse_dense_matmul",
    "sparse_fill_empty_rows",
    "sparse_reorder",
    "sparse_reshape",
    "stack_written",
    "svd",
    "table_lookup",
    "tensor_scatter_reduce",
    "top_k",
    "tridiagonal_solve",
    "GRUResetBefore",
    "MaskedLSTM",
    "MaskedGRU",
];

/// Module-level names `forward` and its methods read besides builtins: no parameter may take
/// one.
const FORWARD_GLOBALS: &[&str] = &["self", "torch", "nn", "F", "custom_ops"];

/// Every attribute of `nn.Module` (class and instance), one per line, sorted: a submodule or
/// buffer must not shadow any (`self.bfloat16 = nn.Linear(...)` breaks `forward`;
/// `self.register_forward_hook = ...` is worse). Read off torch by
/// `scripts/module_attributes.py`; a test checks it against the installed torch.
const MODULE_ATTRS: &str = include_str!("module_attrs.txt");

fn is_module_attr(s: &str) -> bool {
    MODULE_ATTRS.lines().any(|l| l == s)
}

/// Turns any string into a snake_case identifier (not yet checked for clashes).
pub fn identifier(raw: &str) -> String {
    let cleaned: String =
        raw.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    let mut s = cleaned.to_snake_case();
    // heck splits `2d` as `2_d`: `conv2_d` → `conv2d`.
    for d in ["1", "2", "3"] {
        s = s.replace(&format!("{d}_d_"), &format!("{d}d_"));
        if s.ends_with(&format!("{d}_d")) {
            s.truncate(s.len() - 2);
            s.push('d');
        }
    }
    s.retain(|c| c.is_ascii_alphanumeric() || c == '_');
    let s = s.trim_matches('_').to_string();
    if s.is_empty() {
        return "v".into();
    }
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        return format!("v{s}");
    }
    s
}

/// Top-level names `model.py` defines or imports besides the builtins in [`RESERVED`]: a class
/// named like one would replace it. (Its private helpers, `_DTYPES` and the like, and module
/// dunders such as `__file__`, are ruled out by refusing a leading underscore.)
const FILE_NAMES: &[&str] = &["importlib"];

/// Whether `s` can name the generated class: an ASCII identifier that is not a keyword, does not
/// start with an underscore, and does not shadow what the generated file uses.
pub fn is_valid_class_name(s: &str) -> bool {
    let mut chars = s.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    first_ok
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !KEYWORDS.contains(&s)
        && !RESERVED.contains(&s)
        && !HELPERS.contains(&s)
        && !FILE_NAMES.contains(&s)
}

/// Whether `s` names a `torch.nn` layer class: a generated block class of that name
/// (`class Conv2d` beside `nn.Conv2d`) would read as the layer it is not.
pub fn is_torch_layer_class(s: &str) -> bool {
    let base = s.trim_end_matches(|c: char| c.is_ascii_digit() || c == 'd');
    base.len() < s.len()
        && matches!(
            base,
            "Conv" | "ConvTranspose" | "BatchNorm" | "InstanceNorm" | "MaxPool" | "AvgPool"
        )
        || matches!(
            s,
            "Linear"
                | "Embedding"
                | "LayerNorm"
                | "RMSNorm"
                | "GroupNorm"
                | "Dropout"
                | "Identity"
                | "Sequential"
                | "ModuleList"
                | "MultiheadAttention"
                | "LSTM"
                | "GRU"
                | "Upsample"
                | "Flatten"
                | "Softmax"
        )
}

/// The longest local name: a longer one keeps its last words
/// (`add_relative_positional_embedding` → `relative_positional_embedding`), as the last word
/// of an English compound names the thing and the first ones qualify it; where the code
/// stands says most of what they said.
const LOCAL_NAME_MAX: usize = 30;

/// A set of names in one Python scope; hands out unique, safe identifiers.
#[derive(Default, Debug)]
pub struct Scope {
    used: BTreeSet<String>,
    /// Whether names must avoid `nn.Module` attributes (for `self.<name>`).
    module_attrs: bool,
    /// The longest name [`fresh`](Self::fresh) hands out, where it shortens names (locals;
    /// attributes are state-dict keys and keep their layers' whole names).
    max_len: Option<usize>,
    /// Names [`fresh`](Self::fresh) numbered apart from an earlier one → the name they number.
    counted: BTreeMap<String, String>,
    /// Names [`fresh`](Self::fresh) cut down to [`Self::max_len`].
    shortened: BTreeSet<String>,
    /// Names given for what a value is (see [`Self::fresh_for_role`]).
    roles: BTreeSet<String>,
    /// Names that only say which op made the value (see [`Self::fresh_for_op`]).
    op_named: BTreeSet<String>,
}

impl Scope {
    pub fn for_attributes() -> Scope {
        Scope { module_attrs: true, ..Scope::default() }
    }

    pub fn for_locals() -> Scope {
        Scope { max_len: Some(LOCAL_NAME_MAX), ..Scope::default() }
    }

    fn clashes(&self, s: &str) -> bool {
        KEYWORDS.contains(&s)
            || RESERVED.contains(&s)
            || HELPERS.contains(&s)
            || (self.module_attrs && is_module_attr(s))
    }

    /// The identifier [`fresh`](Self::fresh) starts from for `raw`: `raw` as an identifier,
    /// with a trailing `_` when that is a keyword or reserved.
    pub fn base(&self, raw: &str) -> String {
        let mut base = identifier(raw);
        if self.clashes(&base) {
            base.push('_');
        }
        base
    }

    /// A fresh identifier derived from `raw`: `conv1`, then `conv1_2`, `conv1_3`, ...
    /// (a reserved `weights` is `weights_`, then `weights_2`: a number tells it apart too).
    pub fn fresh(&mut self, raw: &str) -> String {
        let base = self.base(raw);
        let stem = base.strip_suffix('_').filter(|_| self.clashes(&identifier(raw)));
        let stem = stem.unwrap_or(&base).to_string();
        let (mut name, mut cut) = self.fitted(&base, "");
        let mut k = 2;
        while self.used.contains(&name) {
            (name, cut) = self.fitted(&stem, &format!("_{k}"));
            k += 1;
        }
        if cut {
            self.shortened.insert(name.clone());
        }
        if name != base {
            self.counted.insert(name.clone(), base);
        }
        self.used.insert(name.clone());
        name
    }

    /// `stem` + `suffix`, within [`Self::max_len`]: the fewest leading words of `stem` left
    /// out for it to fit, so long as what is left starts with a letter and clashes with
    /// nothing; failing that, its last such words. And whether words were left out.
    fn fitted(&self, stem: &str, suffix: &str) -> (String, bool) {
        let Some(max) = self.max_len.filter(|&m| stem.len() + suffix.len() > m) else {
            return (format!("{stem}{suffix}"), false);
        };
        let words: Vec<&str> = stem.split('_').collect();
        let tails: Vec<String> = (1..words.len())
            .map(|i| words[i..].join("_"))
            .filter(|t| t.starts_with(|c: char| c.is_ascii_alphabetic()) && !self.clashes(t))
            .collect();
        let fitting = tails.iter().find(|t| t.len() + suffix.len() <= max);
        match fitting.or(tails.last()) {
            Some(short) => (format!("{short}{suffix}"), true),
            None => (format!("{stem}{suffix}"), false),
        }
    }

    /// The names [`fresh`](Self::fresh) made shorter than what it was asked for: what the
    /// layers' whole names said of them is lost, and a running `x` or `y` says as much.
    pub fn shortened(&self) -> &BTreeSet<String> {
        &self.shortened
    }

    /// A fresh identifier for `raw` that already lost words its value's whole name had: a
    /// temporary, as one [`fresh`](Self::fresh) cut down is.
    pub fn fresh_cut(&mut self, raw: &str) -> String {
        let name = self.fresh(raw);
        self.shortened.insert(name.clone());
        name
    }

    /// A fresh identifier for what a value is (`mask`, `q`, `seq_len`), which a pass
    /// recognised, rather than for the layer it came from: numbered, it still says that.
    pub fn fresh_for_role(&mut self, raw: &str) -> String {
        let name = self.fresh(raw);
        self.roles.insert(name.clone());
        name
    }

    /// Whether [`Self::fresh_for_role`] gave `name`.
    pub fn is_role(&self, name: &str) -> bool {
        self.roles.contains(name)
    }

    /// A fresh name for a value TF named after its op alone (`expand_dims`, `add`: the
    /// graph's author named nothing), which says no more than the code that computes it.
    pub fn fresh_for_op(&mut self, raw: &str) -> String {
        let name = self.fresh(raw);
        self.op_named.insert(name.clone());
        name
    }

    /// Whether [`Self::fresh_for_op`] gave `name`.
    pub fn is_op_named(&self, name: &str) -> bool {
        self.op_named.contains(name)
    }

    /// Names that say less of their values than the layers they came from: cut down
    /// ([`Self::shortened`]), or numbered (`double_stream_block_17`, the seventeenth value
    /// computed in a layer whose own code named none; TF's `cast_4`; a block's own name,
    /// `context_block_3`, on a value inside it), unless given for a role; or named after
    /// their op alone ([`Self::fresh_for_op`]). The first of a numbered run is one too:
    /// `self_attention` is no more the attention than `self_attention_4` beside it, only
    /// the first value its scope computed. A running `x` or `y` says as much, where the
    /// next statement reads it.
    pub fn temporaries(&self) -> BTreeSet<String> {
        let numbered = |n: &&String| {
            n.rsplit_once('_')
                .is_some_and(|(_, k)| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()))
        };
        let numbered = self.used.iter().filter(numbered);
        let firsts = self.counted.values().filter(|b| self.used.contains(*b));
        let counted = numbered.chain(firsts).filter(|n| !self.roles.contains(*n));
        self.shortened.iter().chain(counted).chain(&self.op_named).cloned().collect()
    }

    /// What [`fresh`](Self::fresh) numbered `name` apart from (`self_attention_12` →
    /// `self_attention`), or `name` itself: a block class numbers its values afresh.
    pub fn uncounted<'a>(&'a self, name: &'a str) -> &'a str {
        self.counted.get(name).map_or(name, String::as_str)
    }

    /// A name for a `forward` parameter: the input's own name wherever Python allows it
    /// (a builtin such as `input` included), else with a trailing `_`. Names in `avoid` (the
    /// builtins the generated code calls) count as taken.
    pub fn param(&mut self, raw: &str, avoid: &BTreeSet<String>) -> String {
        let stem = identifier(raw);
        let mut base = stem.clone();
        if KEYWORDS.contains(&base.as_str())
            || FORWARD_GLOBALS.contains(&base.as_str())
            || avoid.contains(&base)
        {
            base.push('_');
        }
        let mut name = base.clone();
        let mut k = 2;
        while self.used.contains(&name) {
            name = format!("{stem}_{k}");
            k += 1;
        }
        self.used.insert(name.clone());
        name
    }

    /// Claims an exact name (e.g. `x`); false if it is taken.
    pub fn claim(&mut self, name: &str) -> bool {
        self.used.insert(name.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every public function or class a `model.py` helper template defines is reserved, so
    /// that no local takes its name (`ragged_range = ragged_range(...)` would shadow it).
    #[test]
    fn helper_templates_names_are_reserved() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/templates");
        let skip = ["model.py", "custom_ops.py", "check.py", "make_reference.py"];
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let file = path.file_name().unwrap().to_string_lossy().to_string();
            if !file.ends_with(".py") || skip.contains(&file.as_str()) {
                continue;
            }
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                let Some(rest) = line.strip_prefix("def ").or(line.strip_prefix("class ")) else {
                    continue;
                };
                let name: String =
                    rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if !name.starts_with('_') {
                    assert!(HELPERS.contains(&name.as_str()), "{file}: {name} is not in HELPERS");
                }
            }
        }
    }

    #[test]
    fn tf_names_become_snake_case() {
        assert_eq!(identifier("bn_Conv1"), "bn_conv1");
        assert_eq!(identifier("conv2_block1_1_conv"), "conv2_block1_1_conv");
        assert_eq!(identifier("1st layer"), "v1st_layer");
        assert_eq!(identifier("\"); import os; #"), "import_os");
        assert_eq!(identifier(""), "v");
        assert_eq!(identifier("Conv2D_1"), "conv2d_1");
        assert_eq!(identifier("DepthwiseConv2dNative"), "depthwise_conv2d_native");
    }

    #[test]
    fn class_names() {
        assert!(is_valid_class_name("TinyNet"));
        assert!(!is_valid_class_name("class"));
        assert!(!is_valid_class_name("a b"));
        assert!(!is_valid_class_name("1Net"));
        assert!(!is_valid_class_name("F"));
        for shadowing in ["__file__", "__builtins__", "_DTYPES", "_read_safetensors", "load_model"]
        {
            assert!(!is_valid_class_name(shadowing), "{shadowing}");
        }
        for layer in ["Conv2d", "Conv1d", "ConvTranspose2d", "BatchNorm2d", "Linear", "RMSNorm"] {
            assert!(is_torch_layer_class(layer), "{layer}");
        }
        for block in ["Conv2dBlock", "ConvBlock", "Conv", "Mixed", "LinearAttention"] {
            assert!(!is_torch_layer_class(block), "{block}");
        }
    }

    /// Numbered names say less than the layer or op they came from (`double_stream_block_17`,
    /// TF's `cast_4`) and may run as `x` or `y`, as may the first of their run and names of
    /// the op alone; a number on a name given for a role does not make it one.
    #[test]
    fn numbered_names_are_temporaries_unless_given_for_roles() {
        let mut l = Scope::for_locals();
        assert_eq!(l.fresh("double_stream_block"), "double_stream_block");
        assert_eq!(l.fresh("double_stream_block"), "double_stream_block_2");
        assert_eq!(l.fresh("cast_4"), "cast_4");
        assert_eq!(l.fresh("residual"), "residual");
        assert_eq!(l.fresh_for_role("mask"), "mask");
        assert_eq!(l.fresh_for_role("mask"), "mask_2");
        assert_eq!(l.fresh_for_op("expand_dims"), "expand_dims");
        let temporaries = l.temporaries();
        let expected = ["cast_4", "double_stream_block", "double_stream_block_2", "expand_dims"]
            .map(String::from);
        assert_eq!(temporaries, BTreeSet::from(expected));
        assert!(l.is_role("mask_2") && !l.is_role("cast_4"));
    }

    #[test]
    fn clashes_are_fixed() {
        let mut s = Scope::for_attributes();
        assert_eq!(s.fresh("training"), "training_");
        assert_eq!(s.fresh("class"), "class_");
        assert_eq!(s.fresh("conv"), "conv");
        assert_eq!(s.fresh("conv"), "conv_2");
        let mut l = Scope::for_locals();
        assert_eq!(l.fresh("input"), "input_");
        // Builtins `forward` calls (a constant `tf.complex` is `complex(re, im)`; run-time
        // slices `list(range(n))`): a TF node named `Complex` must not shadow them.
        for builtin in ["complex", "range", "list", "len", "sorted"] {
            assert_eq!(l.fresh(builtin), format!("{builtin}_"));
        }
        // Long locals keep their last words, numbered within the limit too; attributes
        // (state-dict keys) keep their whole names.
        let long = "add_relative_positional_embedding";
        assert_eq!(l.fresh(long), "relative_positional_embedding");
        assert_eq!(l.fresh(long), "positional_embedding_2");
        assert_eq!(l.uncounted("positional_embedding_2"), long);
        assert!(l.shortened().contains("positional_embedding_2"));
        assert_eq!(l.fresh("encoder_stage_2_block_1_add_residual"), "stage_2_block_1_add_residual");
        assert_eq!(s.fresh(long), long);
        // Every nn.Module attribute, not a hand-kept few.
        for m in ["bfloat16", "compile", "ipu", "xpu", "mtia", "to_empty", "register_forward_hook"]
        {
            assert_eq!(s.fresh(m), format!("{m}_"));
        }
    }
}
