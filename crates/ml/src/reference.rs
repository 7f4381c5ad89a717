//! The same networks written with candle's tensors and autograd.
//!
//! This is the reference the hand-written engine is checked against (same
//! weights and batch → same loss and gradients up to rounding), and the
//! baseline `funetun bench train` measures in the same run.

use candle_core::{D, DType, Device, Tensor, Var};
use candle_nn::Optimizer as _;
use funetun_core::{Tensor as CoreTensor, TensorSet};

use crate::error::Result;
use crate::model::Architecture as _;
use crate::model::Model;

/// 2×2 max-pooling with stride 2 as a reshape and two max reductions.
///
/// candle 0.11's `max_pool2d` backward multiplies the gradient by the share
/// of maxima in the window (¼ for a unique maximum) where it should divide
/// by their count, so its CNN gradients come out four times too small per
/// pooling layer; the reductions' backward is right.
fn max_pool2(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    Ok(x.reshape((b, c, h / 2, 2, w / 2, 2))?.max(5)?.max(3)?)
}

/// A model held as candle variables, trained with candle's SGD.
pub struct CandleModel {
    kind: Model,
    vars: Vec<(String, Var)>,
}

impl CandleModel {
    /// Copies `weights` into candle variables on the CPU.
    pub fn new(kind: Model, weights: &TensorSet) -> Result<Self> {
        kind.zeros().check_same_layout(weights)?;
        let vars = weights
            .iter()
            .map(|(name, t)| {
                Ok((
                    name.to_string(),
                    Var::from_slice(&t.data, t.shape.as_slice(), &Device::Cpu)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { kind, vars })
    }

    fn var(&self, name: &str) -> &Tensor {
        self.vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_tensor())
            .unwrap_or_else(|| panic!("model has no parameter `{name}`"))
    }

    fn linear(&self, x: &Tensor, layer: &str) -> Result<Tensor> {
        let w = self.var(&format!("{layer}.weight"));
        let b = self.var(&format!("{layer}.bias"));
        Ok(x.matmul(&w.t()?)?.broadcast_add(b)?)
    }

    fn conv(&self, x: &Tensor, layer: &str) -> Result<Tensor> {
        let w = self.var(&format!("{layer}.weight"));
        let b = self.var(&format!("{layer}.bias")).reshape((1, (), 1, 1))?;
        Ok(x.conv2d(w, 0, 1, 1, 1)?.broadcast_add(&b)?)
    }

    /// Logits for `batch` normalised 28×28 images.
    pub fn forward(&self, x: &[f32], batch: usize) -> Result<Tensor> {
        let x = Tensor::from_slice(&x[..batch * 784], (batch, 784), &Device::Cpu)?;
        match self.kind {
            Model::Mlp => {
                let h = self.linear(&x, "fc1")?.relu()?;
                self.linear(&h, "fc2")
            }
            Model::Cnn => {
                let x = x.reshape((batch, 1, 28, 28))?;
                let x = max_pool2(&self.conv(&x, "conv1")?.relu()?)?;
                let x = max_pool2(&self.conv(&x, "conv2")?.relu()?)?;
                let x = x.flatten_from(1)?;
                let h = self.linear(&x, "fc1")?.relu()?;
                self.linear(&h, "fc2")
            }
            Model::Gpt(_) | Model::Llama(_) => Err(crate::Error::invalid(
                "model",
                format!(
                    "{} takes tokens; the candle reference covers the image models",
                    self.kind
                ),
            )),
        }
    }

    fn loss(&self, x: &[f32], labels: &[u8]) -> Result<Tensor> {
        let logits = self.forward(x, labels.len())?;
        let targets: Vec<u32> = labels.iter().map(|&l| u32::from(l)).collect();
        let targets = Tensor::from_vec(targets, labels.len(), &Device::Cpu)?;
        let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
        Ok(candle_nn::loss::nll(&logp, &targets)?)
    }

    /// Mean cross-entropy and the gradient of every parameter.
    pub fn loss_and_grad(&self, x: &[f32], labels: &[u8]) -> Result<(f32, TensorSet)> {
        let loss = self.loss(x, labels)?;
        let grads = loss.backward()?;
        let mut out = TensorSet::new();
        for (name, var) in &self.vars {
            let g = grads
                .get(var.as_tensor())
                .cloned()
                .unwrap_or(var.as_tensor().zeros_like()?);
            out.insert(
                name.clone(),
                CoreTensor {
                    shape: var.as_tensor().dims().to_vec(),
                    data: g.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?,
                },
            );
        }
        Ok((loss.to_scalar::<f32>()?, out))
    }

    /// A candle SGD optimizer over this model's variables.
    pub fn sgd(&self, lr: f64) -> Result<candle_nn::SGD> {
        Ok(candle_nn::SGD::new(
            self.vars.iter().map(|(_, v)| v.clone()).collect(),
            lr,
        )?)
    }

    /// One forward + backward + SGD step with candle; returns the loss.
    pub fn sgd_step(&self, sgd: &mut candle_nn::SGD, x: &[f32], labels: &[u8]) -> Result<f32> {
        let loss = self.loss(x, labels)?;
        sgd.backward_step(&loss)?;
        Ok(loss.to_scalar::<f32>()?)
    }
}
