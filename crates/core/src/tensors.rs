//! Named f32 tensors: the in-memory form of checkpoints and deltas.

use std::collections::BTreeMap;

use crate::error::{Error, Result};

/// A dense, row-major f32 tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Dimensions, outermost first. An empty shape is a scalar.
    pub shape: Vec<usize>,
    /// Elements in row-major order; `data.len()` is the product of `shape`.
    pub data: Vec<f32>,
}

impl Tensor {
    /// Builds a tensor, checking that `data` fills `shape` exactly.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Self> {
        let expected = element_count(&shape)
            .ok_or_else(|| Error::Shape(format!("shape {shape:?} overflows usize")))?;
        if expected != data.len() {
            return Err(Error::Shape(format!(
                "shape {shape:?} needs {expected} elements, got {}",
                data.len()
            )));
        }
        Ok(Self { shape, data })
    }

    /// A tensor of zeros.
    pub fn zeros(shape: Vec<usize>) -> Self {
        let n = shape.iter().product();
        Self {
            shape,
            data: vec![0.0; n],
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// The number of elements of a shape, or `None` on overflow.
pub(crate) fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// Tensors by name, always iterated in byte order of their names.
///
/// The order is part of the canonical encoding and of [`TensorSet::to_flat`],
/// so every flat view of a model agrees on where each parameter lives.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TensorSet {
    tensors: BTreeMap<String, Tensor>,
}

impl TensorSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a tensor.
    pub fn insert(&mut self, name: impl Into<String>, tensor: Tensor) {
        self.tensors.insert(name.into(), tensor);
    }

    /// The tensor called `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.get(name)
    }

    /// Mutable access to the tensor called `name`.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Tensor> {
        self.tensors.get_mut(name)
    }

    /// Tensors in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.tensors.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Mutable tensors in name order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&str, &mut Tensor)> {
        self.tensors.iter_mut().map(|(k, v)| (k.as_str(), v))
    }

    /// Tensor names in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// True when the set holds no tensor.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// Total number of scalar parameters.
    pub fn num_params(&self) -> usize {
        self.tensors.values().map(Tensor::len).sum()
    }

    /// All elements concatenated in name order.
    pub fn to_flat(&self) -> Vec<f32> {
        let mut flat = Vec::with_capacity(self.num_params());
        for t in self.tensors.values() {
            flat.extend_from_slice(&t.data);
        }
        flat
    }

    /// A set with this one's names and shapes, filled from `flat` (name order).
    pub fn from_flat_like(&self, flat: &[f32]) -> Result<TensorSet> {
        if flat.len() != self.num_params() {
            return Err(Error::Shape(format!(
                "flat buffer has {} elements, the layout needs {}",
                flat.len(),
                self.num_params()
            )));
        }
        let mut out = TensorSet::new();
        let mut at = 0;
        for (name, t) in &self.tensors {
            let n = t.len();
            out.insert(
                name.clone(),
                Tensor {
                    shape: t.shape.clone(),
                    data: flat[at..at + n].to_vec(),
                },
            );
            at += n;
        }
        Ok(out)
    }

    /// Checks that `other` has exactly this set's names and shapes.
    pub fn check_same_layout(&self, other: &TensorSet) -> Result<()> {
        if self.len() != other.len() || self.names().ne(other.names()) {
            let mine: Vec<_> = self.names().collect();
            let theirs: Vec<_> = other.names().collect();
            return Err(Error::Shape(format!(
                "tensor names differ: expected {mine:?}, got {theirs:?}"
            )));
        }
        for ((name, a), (_, b)) in self.iter().zip(other.iter()) {
            if a.shape != b.shape {
                return Err(Error::Shape(format!(
                    "tensor `{name}` has shape {:?}, expected {:?}",
                    b.shape, a.shape
                )));
            }
        }
        Ok(())
    }

    /// `self − base`, element by element (a trainer's delta).
    pub fn sub(&self, base: &TensorSet) -> Result<TensorSet> {
        self.zip_with(base, |a, b| a - b)
    }

    /// `self + delta`, element by element.
    pub fn add(&self, delta: &TensorSet) -> Result<TensorSet> {
        self.zip_with(delta, |a, b| a + b)
    }

    fn zip_with(&self, other: &TensorSet, f: impl Fn(f32, f32) -> f32) -> Result<TensorSet> {
        self.check_same_layout(other)?;
        let mut out = TensorSet::new();
        for ((name, a), (_, b)) in self.iter().zip(other.iter()) {
            let data = a.data.iter().zip(&b.data).map(|(&x, &y)| f(x, y)).collect();
            out.insert(
                name,
                Tensor {
                    shape: a.shape.clone(),
                    data,
                },
            );
        }
        Ok(out)
    }

    /// Fails with [`Error::NonFinite`] on the first NaN or infinity.
    pub fn check_finite(&self) -> Result<()> {
        for (name, t) in self.iter() {
            if let Some(index) = t.data.iter().position(|v| !v.is_finite()) {
                return Err(Error::NonFinite {
                    name: name.to_string(),
                    index,
                });
            }
        }
        Ok(())
    }

    /// Euclidean norm of all elements, accumulated in f64 in name order.
    pub fn l2_norm(&self) -> f64 {
        self.tensors
            .values()
            .flat_map(|t| t.data.iter())
            .map(|&v| f64::from(v) * f64::from(v))
            .sum::<f64>()
            .sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> TensorSet {
        let mut s = TensorSet::new();
        s.insert("b", Tensor::new(vec![2], vec![3.0, 4.0]).unwrap());
        s.insert("a", Tensor::new(vec![1, 2], vec![1.0, 2.0]).unwrap());
        s
    }

    #[test]
    fn tensor_new_rejects_wrong_element_count() {
        assert!(Tensor::new(vec![2, 3], vec![0.0; 5]).is_err());
        assert!(Tensor::new(vec![usize::MAX, 3], vec![]).is_err());
        assert!(Tensor::new(vec![], vec![1.0]).is_ok());
    }

    #[test]
    fn flat_view_follows_name_order_and_round_trips() {
        let s = set();
        assert_eq!(s.to_flat(), vec![1.0, 2.0, 3.0, 4.0]);
        let back = s.from_flat_like(&[5.0, 6.0, 7.0, 8.0]).unwrap();
        assert_eq!(back.get("b").unwrap().data, vec![7.0, 8.0]);
        assert!(s.from_flat_like(&[1.0]).is_err());
    }

    #[test]
    fn sub_then_add_restores_and_layouts_are_checked() {
        let a = set();
        let mut b = set();
        b.get_mut("a").unwrap().data[0] = 10.0;
        let d = b.sub(&a).unwrap();
        assert_eq!(d.get("a").unwrap().data, vec![9.0, 0.0]);
        assert_eq!(a.add(&d).unwrap(), b);
        let mut other = TensorSet::new();
        other.insert("a", Tensor::zeros(vec![2]));
        assert!(a.sub(&other).is_err());
    }

    #[test]
    fn non_finite_values_are_found() {
        let mut s = set();
        assert!(s.check_finite().is_ok());
        s.get_mut("b").unwrap().data[1] = f32::NAN;
        match s.check_finite() {
            Err(Error::NonFinite { name, index }) => assert_eq!((name.as_str(), index), ("b", 1)),
            other => panic!("expected NonFinite, got {other:?}"),
        }
        assert_eq!(set().l2_norm(), 30f64.sqrt());
    }
}
