//! The outer optimizer's state as a canonical tensor file, the one format
//! the orchestrator stores between rounds and `funetun aggregate
//! --state-in/--state-out` reads and writes, so either can pick up the
//! other's state (feature `tensors`).
//!
//! The file holds `step` (a scalar) and, for every slot of the optimizer
//! ([`Outer::slot_names`]) and every parameter of the model, a tensor named
//! `SLOT/PARAM` with the parameter's shape. The flat buffers of
//! [`OuterState`] are the concatenation of a slot's tensors in name order,
//! as [`TensorSet::to_flat`] lays out the model.
//!
//! ```
//! use funetun_aggregate::{Outer, state_file};
//! use funetun_core::{Tensor, TensorSet};
//!
//! let mut layout = TensorSet::new();
//! layout.insert("w", Tensor::zeros(vec![2, 2]));
//! layout.insert("b", Tensor::zeros(vec![2]));
//! let outer: Outer = "nesterov:0.7,0.9".parse()?;
//! let mut state = outer.init_state(6);
//! state.step = 3;
//! let bytes = state_file::encode_state(&state, &layout)?;
//! assert_eq!(state_file::decode_state(&bytes, &outer, &layout)?, state);
//! # Ok::<(), funetun_aggregate::Error>(())
//! ```

use funetun_core::{DecodeLimits, Tensor, TensorSet, decode, encode};

use crate::error::{Error, Result};
use crate::outer::{Outer, OuterState};

/// Steps are stored as an `f32` scalar: counts up to 2²⁴ are exact.
const MAX_STEP: u64 = 1 << 24;

fn bad(detail: impl Into<String>) -> Error {
    Error::StateFile(detail.into())
}

/// The canonical bytes of `state` for a model shaped like `layout`.
pub fn encode_state(state: &OuterState, layout: &TensorSet) -> Result<Vec<u8>> {
    if state.step >= MAX_STEP {
        return Err(bad(format!(
            "step count {} does not fit the state file (at most {MAX_STEP})",
            state.step
        )));
    }
    let mut set = TensorSet::new();
    set.insert(
        "step",
        Tensor::new(vec![], vec![state.step as f32]).map_err(|e| bad(e.to_string()))?,
    );
    for (slot, flat) in &state.slots {
        let shaped = layout
            .from_flat_like(flat)
            .map_err(|e| bad(format!("slot `{slot}`: {e}")))?;
        for (name, t) in shaped.iter() {
            set.insert(format!("{slot}/{name}"), t.clone());
        }
    }
    Ok(encode(&set))
}

/// Reads a state file written by [`encode_state`] for `outer` on a model
/// shaped like `layout`; every slot and parameter must be there with its
/// shape, and nothing else.
pub fn decode_state(bytes: &[u8], outer: &Outer, layout: &TensorSet) -> Result<OuterState> {
    let slots = outer.slot_names();
    let limits = DecodeLimits::for_model(
        layout.num_params() * slots.len() + 1,
        layout.len() * slots.len() + 1,
    );
    let set = decode(bytes, &limits).map_err(|e| bad(e.to_string()))?;
    let step = set
        .get("step")
        .filter(|t| t.data.len() == 1)
        .map(|t| t.data[0])
        .ok_or_else(|| bad("the state file has no scalar `step`"))?;
    if !(step >= 0.0 && step.fract() == 0.0 && step < MAX_STEP as f32) {
        return Err(bad(format!(
            "the state file's step {step} is not a step count"
        )));
    }
    let expected = 1 + slots.len() * layout.len();
    if set.len() != expected {
        return Err(bad(format!(
            "the state file holds {} tensors, `{outer}` on this model needs {expected}",
            set.len()
        )));
    }
    let mut out = Vec::with_capacity(slots.len());
    for slot in slots {
        let mut flat = Vec::with_capacity(layout.num_params());
        for (name, t) in layout.iter() {
            let key = format!("{slot}/{name}");
            let s = set
                .get(&key)
                .ok_or_else(|| bad(format!("the state file has no tensor `{key}`")))?;
            if s.shape != t.shape {
                return Err(bad(format!(
                    "state tensor `{key}` has shape {:?}, the model {:?}",
                    s.shape, t.shape
                )));
            }
            flat.extend_from_slice(&s.data);
        }
        out.push((slot.to_string(), flat));
    }
    Ok(OuterState {
        step: step as u64,
        slots: out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> TensorSet {
        let mut l = TensorSet::new();
        l.insert("fc.weight", Tensor::zeros(vec![3, 2]));
        l.insert("fc.bias", Tensor::zeros(vec![3]));
        l
    }

    #[test]
    fn adam_state_round_trips_with_its_step() {
        let outer: Outer = "adam:0.1,0.9,0.999,1e-8".parse().unwrap();
        let mut state = outer.init_state(9);
        state.step = 12;
        for (i, (_, flat)) in state.slots.iter_mut().enumerate() {
            for (j, v) in flat.iter_mut().enumerate() {
                *v = (i * 10 + j) as f32 * 0.5;
            }
        }
        let bytes = encode_state(&state, &layout()).unwrap();
        assert_eq!(decode_state(&bytes, &outer, &layout()).unwrap(), state);
        assert_eq!(bytes, encode_state(&state, &layout()).unwrap());
    }

    #[test]
    fn a_state_of_another_optimizer_or_model_is_refused() {
        let nesterov: Outer = "nesterov:0.7,0.9".parse().unwrap();
        let adam: Outer = "adam:0.1,0.9,0.999,1e-8".parse().unwrap();
        let bytes = encode_state(&nesterov.init_state(9), &layout()).unwrap();
        let e = decode_state(&bytes, &adam, &layout()).unwrap_err();
        assert!(e.to_string().contains("needs 5"), "{e}");
        let mut other = TensorSet::new();
        other.insert("fc.weight", Tensor::zeros(vec![2, 3]));
        other.insert("fc.bias", Tensor::zeros(vec![3]));
        let e = decode_state(&bytes, &nesterov, &other).unwrap_err();
        assert!(e.to_string().contains("shape"), "{e}");
        assert!(decode_state(b"not a tensor file", &nesterov, &layout()).is_err());
    }

    #[test]
    fn oversized_steps_are_refused() {
        let outer: Outer = "sgd".parse().unwrap();
        let mut state = outer.init_state(9);
        state.step = MAX_STEP;
        assert!(encode_state(&state, &layout()).is_err());
    }
}
