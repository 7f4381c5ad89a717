//! The models a job can train, their parameter layouts and seeded
//! initialisation.
//!
//! Image models' parameter names follow candle's `VarBuilder` paths
//! (`fc1.weight`, …) and PyTorch's shapes (`[out, in]` for linear layers,
//! `[out, in, kh, kw]` for convolutions); transformers' follow Hugging
//! Face's layouts ([`transformer`]), so checkpoints read naturally in
//! either ecosystem. The
//! flat view of a model ([`funetun_core::TensorSet::to_flat`]) is the
//! concatenation of these tensors in name order.

use std::ops::Range;

use funetun_core::encoding::decode_with_layout;
use funetun_core::{DecodeLimits, Tensor, TensorSet};

use crate::rng::Rng;

pub mod transformer;

pub use funetun_core::model::{Model, TransformerConfig};
pub use funetun_core::protocol::ModelKind;

/// Input side length every model expects (MNIST-family images).
pub const IMAGE_SIDE: usize = 28;

/// A model's parameter layout and seeded initialisation: what the
/// training engine knows about each [`Model`] beyond its name.
pub trait Architecture: Copy {
    /// Parameter names and shapes, in name order.
    fn shapes(self) -> Vec<(String, Vec<usize>)>;
    /// Where each parameter lives in the flat view.
    fn layout(self) -> Layout;
    /// θ₀ for `seed`.
    fn init(self, seed: u64) -> TensorSet;
    /// The fan-in of the layer that owns parameter `name`.
    fn fan_in(self, name: &str) -> usize;
    /// A zero-filled set with this model's names and shapes.
    fn zeros(self) -> TensorSet;
    /// Number of scalar parameters.
    fn num_params(self) -> usize;

    /// Arithmetic operations of one training step on one sample (one
    /// image, or one sequence of `context` tokens): a multiply-add is two,
    /// and the backward pass costs twice the forward. Image models count
    /// their layers' multiply-adds (a convolution's weights are used at
    /// every position); transformers take the usual estimate of
    /// `6·N + 12·n_layer·d_model·context` per token.
    fn training_ops_per_sample(self) -> f64;

    /// The decoder's limits for this model's weights: no file larger than
    /// the model's canonical tensor file, no more tensors than it has.
    fn decode_limits(self) -> DecodeLimits {
        DecodeLimits::for_model(self.num_params(), self.shapes().len())
    }

    /// Decodes a blob (a checkpoint or a delta: canonical safetensors bytes)
    /// into this model's tensors, refusing anything larger than the model,
    /// of another layout, or holding NaN or infinities. The one decoder of
    /// model weights: every crate that reads a model's bytes calls it.
    fn decode(self, bytes: &[u8]) -> funetun_core::Result<TensorSet> {
        decode_with_layout(bytes, &self.decode_limits(), &self.zeros())
    }
}

impl Architecture for Model {
    /// Parameter names and shapes, in name order.
    fn shapes(self) -> Vec<(String, Vec<usize>)> {
        let mut v: Vec<(String, Vec<usize>)> = match self {
            Model::Mlp => vec![
                ("fc1.weight".into(), vec![256, 784]),
                ("fc1.bias".into(), vec![256]),
                ("fc2.weight".into(), vec![10, 256]),
                ("fc2.bias".into(), vec![10]),
            ],
            Model::Cnn => vec![
                ("conv1.weight".into(), vec![32, 1, 5, 5]),
                ("conv1.bias".into(), vec![32]),
                ("conv2.weight".into(), vec![64, 32, 5, 5]),
                ("conv2.bias".into(), vec![64]),
                ("fc1.weight".into(), vec![128, 1024]),
                ("fc1.bias".into(), vec![128]),
                ("fc2.weight".into(), vec![10, 128]),
                ("fc2.bias".into(), vec![10]),
            ],
            Model::Gpt(c) => transformer::gpt_shapes(&c),
            Model::Llama(c) => transformer::llama_shapes(&c),
        };
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Where each parameter lives in the flat view.
    fn layout(self) -> Layout {
        let mut entries = Vec::new();
        let mut at = 0;
        for (name, shape) in self.shapes() {
            let len: usize = shape.iter().product();
            entries.push((name, at..at + len));
            at += len;
        }
        Layout { entries, total: at }
    }

    /// θ₀ for `seed`, drawn in name order from a ChaCha8 stream, so the
    /// same seed gives the same bytes everywhere. Image models: every
    /// tensor uniform in ±1/√fan_in (PyTorch's default for linear and
    /// convolution layers). Transformers: see [`transformer::init_value`].
    fn init(self, seed: u64) -> TensorSet {
        let mut rng = Rng::derived(seed, "init");
        let mut set = TensorSet::new();
        for (name, shape) in self.shapes() {
            let n: usize = shape.iter().product();
            let data = match self {
                Model::Mlp | Model::Cnn => {
                    let bound = 1.0 / (self.fan_in(&name) as f32).sqrt();
                    (0..n).map(|_| rng.uniform(-bound, bound)).collect()
                }
                Model::Gpt(c) | Model::Llama(c) => {
                    let init = transformer::init_rule(&name, c.n_layer);
                    (0..n).map(|_| init.draw(&mut rng)).collect()
                }
            };
            set.insert(name, Tensor { shape, data });
        }
        set
    }

    /// The fan-in of the layer that owns parameter `name`.
    fn fan_in(self, name: &str) -> usize {
        let layer = name.split('.').next().unwrap_or(name);
        match (self, layer) {
            (Model::Mlp, "fc1") => 784,
            (Model::Mlp, "fc2") => 256,
            (Model::Cnn, "conv1") => 25,
            (Model::Cnn, "conv2") => 32 * 25,
            (Model::Cnn, "fc1") => 1024,
            (Model::Cnn, "fc2") => 128,
            (Model::Gpt(_) | Model::Llama(_), _) => self
                .shapes()
                .into_iter()
                .find(|(n, _)| n == name)
                .map(|(_, s)| transformer::fan_in(name, &s))
                .unwrap_or(1),
            _ => 1,
        }
    }

    /// A zero-filled set with this model's names and shapes.
    fn zeros(self) -> TensorSet {
        let mut set = TensorSet::new();
        for (name, shape) in self.shapes() {
            set.insert(name, Tensor::zeros(shape));
        }
        set
    }

    /// Number of scalar parameters.
    fn num_params(self) -> usize {
        self.shapes()
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum()
    }

    fn training_ops_per_sample(self) -> f64 {
        let multiply_adds = match self {
            Model::Mlp => 784 * 256 + 256 * 10,
            // conv1 24²·5²·32, conv2 8²·(5²·32)·64, fc1 1024·128, fc2 128·10.
            Model::Cnn => 24 * 24 * 25 * 32 + 8 * 8 * 800 * 64 + 1024 * 128 + 128 * 10,
            Model::Gpt(c) | Model::Llama(c) => {
                let per_token = 6 * self.num_params() + 12 * c.n_layer * c.d_model * c.context;
                return (per_token * c.context) as f64;
            }
        };
        6.0 * multiply_adds as f64
    }
}

/// Offsets of each named parameter in a model's flat view.
#[derive(Clone, Debug)]
pub struct Layout {
    entries: Vec<(String, Range<usize>)>,
    /// Total number of parameters.
    pub total: usize,
}

impl Layout {
    /// The range of `name` in the flat view.
    ///
    /// # Panics
    /// On a name the model does not have: layouts are only queried with the
    /// model's own names.
    pub fn range(&self, name: &str) -> Range<usize> {
        self.entries
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| panic!("model has no parameter `{name}`"))
    }

    /// Splits a flat buffer into one mutable slice per parameter, in name order.
    pub fn split_mut<'a>(&self, mut flat: &'a mut [f32]) -> Vec<&'a mut [f32]> {
        let mut out = Vec::with_capacity(self.entries.len());
        for (_, r) in &self.entries {
            let (head, tail) = flat.split_at_mut(r.len());
            out.push(head);
            flat = tail;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_are_in_name_order_and_sized() {
        assert_eq!(Model::Mlp.num_params(), 784 * 256 + 256 + 2570);
        assert_eq!(Model::Cnn.num_params(), 832 + 51264 + 131200 + 1290);
        let l = Model::Mlp.layout();
        assert_eq!(l.range("fc1.bias"), 0..256);
        assert_eq!(l.range("fc1.weight"), 256..256 + 784 * 256);
        let names: Vec<_> = Model::Cnn.init(0).names().map(String::from).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
    }

    #[test]
    fn init_is_seeded_and_bounded() {
        let a = Model::Mlp.init(1);
        assert_eq!(a, Model::Mlp.init(1));
        assert_ne!(a, Model::Mlp.init(2));
        let w = &a.get("fc1.weight").unwrap().data;
        let bound = 1.0 / 784f32.sqrt();
        assert!(w.iter().all(|v| v.abs() <= bound));
        let mean = w.iter().sum::<f32>() / w.len() as f32;
        assert!(mean.abs() < 1e-3, "{mean}");
    }
}
