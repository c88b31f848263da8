//! Graph passes, each `fn(&mut Graph) -> Result<()>`, run in this order by [`run_all`].

mod fold;
mod fuse_activation;
mod fuse_batchnorm;
mod fuse_bias;
mod fuse_bidirectional;
mod fuse_conv1d;
mod fuse_layernorm;
mod fuse_tensordot;
mod fuse_time_distributed;
mod identity;
pub mod loops;
mod pattern;
mod prune;
mod rnn;
mod simplify;

pub use fold::fold_and_infer;
pub use fuse_activation::fuse_activations;
pub use fuse_batchnorm::fuse_batchnorm;
pub use fuse_bias::{fuse_bias, fuse_head_bias};
pub use fuse_conv1d::fuse_conv1d;
pub use fuse_layernorm::fuse_layernorm;
pub use fuse_tensordot::fuse_tensordot;
pub use identity::remove_identities;
pub use prune::prune;
pub use simplify::simplify;

use crate::error::Result;
use crate::ir::Graph;

/// The pass pipeline. Batch-norm fusion runs before folding because folding would merge the
/// statistics into two opaque constants.
pub fn run_all(g: &mut Graph) -> Result<()> {
    prune(g)?;
    remove_identities(g)?;
    loops::extract_loops(g)?;
    fuse_batchnorm(g)?;
    fold_and_infer(g)?;
    // A recurrent layer's output shape is known only once it is fused: infer again, so the
    // next layer's loop body can be matched too.
    while rnn::fuse_rnn(g)? {
        prune(g)?;
        fold_and_infer(g)?;
    }
    simplify(g)?;
    prune(g)?;
    fuse_bidirectional::fuse_bidirectional(g)?;
    fuse_layernorm(g)?;
    fuse_activations(g)?;
    fuse_conv1d(g)?;
    fuse_tensordot(g)?;
    fuse_time_distributed::fuse_time_distributed(g)?;
    fuse_bias(g)?;
    fuse_head_bias(g)?;
    prune(g)?;
    loops::optimize_bodies(g)
}
