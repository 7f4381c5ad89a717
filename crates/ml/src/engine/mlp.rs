//! The 784-256-10 MLP: `logits = W2·relu(W1·x + b1) + b2`.

use super::linalg::Dense;
use super::loss::softmax_cross_entropy;
use super::{Network, Par};
use crate::model::Architecture as _;
use crate::model::Model;

const IN: usize = 784;
const HIDDEN: usize = 256;
const OUT: usize = 10;

const FC1: Dense = Dense {
    batch: 0,
    inputs: IN,
    outputs: HIDDEN,
};
const FC2: Dense = Dense {
    batch: 0,
    inputs: HIDDEN,
    outputs: OUT,
};

/// Parameter offsets in the flat view (name order).
struct Offsets {
    b1: std::ops::Range<usize>,
    w1: std::ops::Range<usize>,
    b2: std::ops::Range<usize>,
    w2: std::ops::Range<usize>,
}

/// The MLP with its scratch buffers.
pub struct Mlp {
    max_batch: usize,
    at: Offsets,
    hidden: Vec<f32>,
    logits: Vec<f32>,
    dlogits: Vec<f32>,
    dhidden: Vec<f32>,
}

impl Mlp {
    /// An MLP with scratch for batches up to `max_batch`.
    pub fn new(max_batch: usize) -> Self {
        let l = Model::Mlp.layout();
        Self {
            max_batch,
            at: Offsets {
                b1: l.range("fc1.bias"),
                w1: l.range("fc1.weight"),
                b2: l.range("fc2.bias"),
                w2: l.range("fc2.weight"),
            },
            hidden: vec![0.0; max_batch * HIDDEN],
            logits: vec![0.0; max_batch * OUT],
            dlogits: vec![0.0; max_batch * OUT],
            dhidden: vec![0.0; max_batch * HIDDEN],
        }
    }

    fn forward_into_scratch(&mut self, p: &[f32], x: &[f32], batch: usize, par: Par) {
        assert!(
            batch <= self.max_batch,
            "batch {batch} exceeds the scratch size {}",
            self.max_batch
        );
        let at = &self.at;
        FC1.with_batch(batch).forward(
            &mut self.hidden,
            x,
            &p[at.w1.clone()],
            &p[at.b1.clone()],
            true,
            par,
        );
        let h = &self.hidden[..batch * HIDDEN];
        FC2.with_batch(batch).forward(
            &mut self.logits,
            h,
            &p[at.w2.clone()],
            &p[at.b2.clone()],
            false,
            par,
        );
    }
}

impl Network for Mlp {
    fn max_batch(&self) -> usize {
        self.max_batch
    }

    fn loss_and_grad(
        &mut self,
        p: &[f32],
        x: &[f32],
        labels: &[u8],
        grads: &mut [f32],
        par: Par,
    ) -> f32 {
        let batch = labels.len();
        self.forward_into_scratch(p, x, batch, par);
        let dz = &mut self.dlogits[..batch * OUT];
        let loss = softmax_cross_entropy(&self.logits[..batch * OUT], labels, OUT, dz);
        let [gb1, gw1, gb2, gw2] =
            <[&mut [f32]; 4]>::try_from(Model::Mlp.layout().split_mut(grads))
                .unwrap_or_else(|_| unreachable!("the MLP has four parameter tensors"));
        let h = &self.hidden[..batch * HIDDEN];
        let w2 = &p[self.at.w2.clone()];
        let dh = Some(&mut self.dhidden[..]);
        FC2.with_batch(batch)
            .backward(gw2, gb2, dh, dz, h, w2, true, par);
        let dh = &self.dhidden[..batch * HIDDEN];
        FC1.with_batch(batch)
            .backward(gw1, gb1, None, dh, x, &p[self.at.w1.clone()], false, par);
        loss
    }

    fn forward(&mut self, p: &[f32], x: &[f32], batch: usize, logits: &mut [f32], par: Par) {
        self.forward_into_scratch(p, x, batch, par);
        logits[..batch * OUT].copy_from_slice(&self.logits[..batch * OUT]);
    }
}
