//! Graph passes, each `fn(&mut Graph) -> Result<()>`, run in this order by [`run_all`].

mod attention_roles;
mod channels_first;
pub mod conds;
mod constant_switches;
mod cse;
mod difference;
mod filled_lists;
mod flat_rows;
mod fold;
mod fold_pads;
mod fuse_1d;
mod fuse_activation;
mod fuse_attention;
mod fuse_batchnorm;
mod fuse_bias;
mod fuse_bidirectional;
mod fuse_causal;
mod fuse_dilated;
mod fuse_frames;
mod fuse_grouped_attention;
mod fuse_groupnorm;
mod fuse_l2norm;
mod fuse_layernorm;
mod fuse_logsumexp;
mod fuse_prelu;
mod fuse_quantize;
mod fuse_repeat;
mod fuse_rmsnorm;
mod fuse_rotary;
mod fuse_signbit;
mod fuse_time_distributed;
mod fuse_wrap;
mod identity;
mod logits;
pub mod loops;
mod mask_blend;
mod outer_products;
mod own_sizes;
mod packed_bounds;
mod pattern;
mod prune;
mod reroll;
mod rnn;
mod shape_n;
mod shared_feature_order;
mod simplify;
mod sizes;
mod splat_operands;
mod tables;
mod taken_branches;
mod tensor_arrays;

pub use fold::fold_and_infer;
pub use fuse_1d::fuse_1d;
pub use fuse_activation::fuse_activations;
pub use fuse_batchnorm::fuse_batchnorm;
pub use fuse_bias::{fuse_bias, fuse_head_bias};
pub use fuse_layernorm::fuse_layernorm;
pub use identity::remove_identities;
pub use prune::prune;
pub use simplify::simplify;

use crate::error::Result;
use crate::ir::Graph;

/// The pass pipeline. Batch-norm fusion runs before folding because folding would merge the
/// statistics into two opaque constants.
pub fn run_all(g: &mut Graph) -> Result<()> {
    run_observed(g, &mut |_, _| {})
}

type Pass = fn(&mut Graph) -> Result<()>;

/// After recurrent layers are fused (see [`run_observed`]).
const LATE: [(&str, Pass); 45] = [
    ("simplify", simplify),
    ("stack_filled_lists", filled_lists::stack_filled_lists),
    ("prune", prune),
    ("fuse_bidirectional", fuse_bidirectional::fuse_bidirectional),
    ("fuse_groupnorm", fuse_groupnorm::fuse_groupnorm),
    ("fuse_layernorm", fuse_layernorm),
    ("fuse_rmsnorm", fuse_rmsnorm::fuse_rmsnorm),
    ("fuse_activations", fuse_activations),
    ("fuse_prelu", fuse_prelu::fuse_prelu),
    ("fuse_1d", fuse_1d),
    ("fuse_dilated", fuse_dilated::fuse_dilated),
    // Keras' dilated `SeparableConv1D` dilates inside the unit axis: its depthwise conv is one
    // op, and so 1-D, only once its space-to-batch is folded into the dilation (and the size
    // the paddings were computed from no longer reads the value).
    ("prune", prune),
    ("fuse_1d", fuse_1d),
    ("fold_pads", fold_pads::fold_pads),
    ("fuse_repeat", fuse_repeat::fuse_repeat),
    ("fuse_frames", fuse_frames::fuse_frames),
    ("unflatten_rows", flat_rows::unflatten_rows),
    ("fuse_time_distributed", fuse_time_distributed::fuse_time_distributed),
    ("fuse_bias", fuse_bias),
    ("fuse_head_bias", fuse_head_bias),
    ("outer_products", outer_products::outer_products),
    ("fuse_rotary", fuse_rotary::fuse_rotary),
    ("fuse_causal", fuse_causal::fuse_causal),
    ("fuse_wrap", fuse_wrap::fuse_wrap),
    ("fuse_logsumexp", fuse_logsumexp::fuse_logsumexp),
    ("fuse_l2norm", fuse_l2norm::fuse_l2norm),
    ("fuse_quantize", fuse_quantize::fuse_quantize),
    ("fuse_signbit", fuse_signbit::fuse_signbit),
    ("select_by_masks", mask_blend::select_by_masks),
    ("fuse_grouped_attention", fuse_grouped_attention::fuse_grouped_attention),
    ("fuse_attention", fuse_attention::fuse_attention),
    ("stack_on_moved_axes", simplify::stack_on_moved_axes),
    ("one_slice_of_unstacks", simplify::one_slice_of_unstacks),
    ("drop_shared_feature_order", shared_feature_order::drop_shared_feature_order),
    // Only what is still read is compared (a fusion leaves the nodes it replaced).
    ("prune", prune),
    ("name_attention_operands", attention_roles::name_attention_operands),
    ("name_logits", logits::name_logits),
    ("common_subexpressions", cse::common_subexpressions),
    // What merging made trivial (`x & x` once both sides are one).
    ("simplify", simplify),
    // Once the steps' shared values are one (merged above) and every fusion has read them.
    ("reroll_loops", reroll::reroll_loops),
    // After the fusions, which read constants by their shapes.
    ("scalar_splat_operands", splat_operands::scalar_splat_operands),
    ("read_own_sizes", own_sizes::read_own_sizes),
    ("prune", prune),
    ("slice_bounds_from_scalars", packed_bounds::slice_bounds_from_scalars),
    ("optimize_loop_bodies", loops::optimize_bodies),
];

/// Conditionals and loops, inner ones first: each may sit inside the other.
pub fn extract_control_flow(g: &mut Graph) -> Result<()> {
    while conds::extract_conds(g)? | loops::extract_loops(g)? {}
    loops::check_no_frames_left(g)
}

/// Runs `pass`, then shows `after` the graph.
fn step<T>(
    after: &mut dyn FnMut(&str, &Graph),
    name: &str,
    g: &mut Graph,
    pass: impl FnOnce(&mut Graph) -> Result<T>,
) -> Result<T> {
    let result = pass(g)?;
    after(name, g);
    Ok(result)
}

/// [`run_all`], calling `after(pass, graph)` after each pass (`tf2torch debug passes`).
pub fn run_observed(g: &mut Graph, after: &mut dyn FnMut(&str, &Graph)) -> Result<()> {
    // Before pruning drops the tables' initializers, which no output reads.
    step(after, "fuse_table_lookups", g, tables::fuse_table_lookups)?;
    step(after, "prune", g, prune)?;
    step(after, "remove_identities", g, remove_identities)?;
    step(after, "split_shape_n", g, shape_n::split_shape_n)?;
    step(after, "fold_constant_switches", g, constant_switches::fold_constant_switches)?;
    step(after, "tensor_arrays", g, tensor_arrays::tensor_arrays)?;
    step(after, "extract_control_flow", g, extract_control_flow)?;
    step(after, "fuse_batchnorm", g, fuse_batchnorm)?;
    step(after, "channels_first", g, channels_first::channels_first)?;
    step(after, "fold_and_infer", g, fold_and_infer)?;
    step(after, "sort_table_keys", g, tables::sort_table_keys)?;
    // A recurrent layer's output shape is known only once it is fused: infer again, so the
    // next layer's loop body can be matched too.
    while step(after, "fuse_rnn", g, rnn::fuse_rnn)? {
        step(after, "prune", g, prune)?;
        step(after, "fold_and_infer", g, fold_and_infer)?;
    }
    for (name, pass) in LATE {
        step(after, name, g, pass)?;
    }
    Ok(())
}
