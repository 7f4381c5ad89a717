//! The transformers' parameters: Hugging Face's names and shapes, and
//! nanoGPT's initialisation.
//!
//! `gpt` follows `GPT2LMHeadModel` (its `Conv1D` layers store weights as
//! `[in, out]`; the output head is tied to `transformer.wte.weight` and not
//! stored). `llama` follows `LlamaForCausalLM` (`nn.Linear` weights as
//! `[out, in]`; `lm_head.weight` is its own tensor).

use funetun_core::model::TransformerConfig;

use crate::rng::Rng;

/// Standard deviation of every weight matrix and embedding at θ₀.
pub const INIT_STD: f32 = 0.02;

/// GPT-2's parameters, unsorted.
pub fn gpt_shapes(c: &TransformerConfig) -> Vec<(String, Vec<usize>)> {
    let (d, f) = (c.d_model, c.d_ff);
    let mut v = vec![
        ("transformer.wte.weight".to_string(), vec![c.vocab, d]),
        ("transformer.wpe.weight".to_string(), vec![c.context, d]),
        ("transformer.ln_f.weight".to_string(), vec![d]),
        ("transformer.ln_f.bias".to_string(), vec![d]),
    ];
    for i in 0..c.n_layer {
        let p = |s: &str| format!("transformer.h.{i}.{s}");
        v.extend([
            (p("ln_1.weight"), vec![d]),
            (p("ln_1.bias"), vec![d]),
            (p("attn.c_attn.weight"), vec![d, 3 * d]),
            (p("attn.c_attn.bias"), vec![3 * d]),
            (p("attn.c_proj.weight"), vec![d, d]),
            (p("attn.c_proj.bias"), vec![d]),
            (p("ln_2.weight"), vec![d]),
            (p("ln_2.bias"), vec![d]),
            (p("mlp.c_fc.weight"), vec![d, f]),
            (p("mlp.c_fc.bias"), vec![f]),
            (p("mlp.c_proj.weight"), vec![f, d]),
            (p("mlp.c_proj.bias"), vec![d]),
        ]);
    }
    v
}

/// Llama's parameters, unsorted.
pub fn llama_shapes(c: &TransformerConfig) -> Vec<(String, Vec<usize>)> {
    let (d, f) = (c.d_model, c.d_ff);
    let kv = c.n_kv_head * c.head_dim();
    let mut v = vec![
        ("model.embed_tokens.weight".to_string(), vec![c.vocab, d]),
        ("model.norm.weight".to_string(), vec![d]),
        ("lm_head.weight".to_string(), vec![c.vocab, d]),
    ];
    for i in 0..c.n_layer {
        let p = |s: &str| format!("model.layers.{i}.{s}");
        v.extend([
            (p("input_layernorm.weight"), vec![d]),
            (p("self_attn.q_proj.weight"), vec![d, d]),
            (p("self_attn.k_proj.weight"), vec![kv, d]),
            (p("self_attn.v_proj.weight"), vec![kv, d]),
            (p("self_attn.o_proj.weight"), vec![d, d]),
            (p("post_attention_layernorm.weight"), vec![d]),
            (p("mlp.gate_proj.weight"), vec![f, d]),
            (p("mlp.up_proj.weight"), vec![f, d]),
            (p("mlp.down_proj.weight"), vec![d, f]),
        ]);
    }
    v
}

/// How one transformer parameter starts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum InitRule {
    /// Every value this constant (norm gains 1, biases 0).
    Constant(f32),
    /// Normal with mean 0 and this standard deviation.
    Normal(f32),
}

impl InitRule {
    /// One value.
    pub fn draw(self, rng: &mut Rng) -> f32 {
        match self {
            Self::Constant(v) => v,
            Self::Normal(std) => rng.normal() * std,
        }
    }
}

/// nanoGPT's initialisation: weights and embeddings N(0, 0.02), the
/// projections back into the residual stream (`c_proj`, `o_proj`,
/// `down_proj`) N(0, 0.02/√(2·layers)), biases 0, norm gains 1.
pub fn init_rule(name: &str, n_layer: usize) -> InitRule {
    let is_norm = ["ln_1", "ln_2", "ln_f", "layernorm", "model.norm"]
        .iter()
        .any(|n| name.contains(n));
    if name.ends_with(".bias") {
        InitRule::Constant(0.0)
    } else if is_norm {
        InitRule::Constant(1.0)
    } else if ["c_proj.weight", "o_proj.weight", "down_proj.weight"]
        .iter()
        .any(|n| name.ends_with(n))
    {
        InitRule::Normal(INIT_STD / (2.0 * n_layer as f32).sqrt())
    } else {
        InitRule::Normal(INIT_STD)
    }
}

/// The fan-in of a transformer parameter of `shape`: the input width of
/// its matrix (`[in, out]` for GPT-2's `Conv1D`, `[out, in]` otherwise), 1
/// for vectors.
pub fn fan_in(name: &str, shape: &[usize]) -> usize {
    match shape {
        [rows, _] if name.starts_with("transformer.h.") => *rows,
        [_, cols] => *cols,
        _ => 1,
    }
}

/// Whether AdamW's weight decay applies to a parameter: matrices and
/// embeddings decay, norms and biases do not (nanoGPT's rule: 2-D
/// tensors decay).
pub fn decays(shape: &[usize]) -> bool {
    shape.len() >= 2
}

#[cfg(test)]
mod tests {
    use funetun_core::ModelKind;
    use funetun_core::model::Model;

    use super::*;
    use crate::model::Architecture as _;

    #[test]
    fn baby_gpt_has_nanogpts_parameter_count() {
        let c = TransformerConfig::preset("baby", 65).unwrap();
        let gpt = Model::new(ModelKind::Gpt, Some(c)).unwrap();
        // nanoGPT reports 0.80M parameters: all but the position table.
        assert_eq!(gpt.num_params(), 809_856);
        assert_eq!(gpt.num_params() - 64 * 128, 801_664);
        let llama = Model::new(
            ModelKind::Llama,
            Some(TransformerConfig { n_kv_head: 2, ..c }),
        )
        .unwrap();
        let shapes = llama.shapes();
        let k = shapes
            .iter()
            .find(|(n, _)| n == "model.layers.0.self_attn.k_proj.weight")
            .unwrap();
        assert_eq!(k.1, vec![64, 128]);
    }

    #[test]
    fn init_follows_nanogpt() {
        let c = TransformerConfig::preset("tiny", 16).unwrap();
        let w = Model::new(ModelKind::Gpt, Some(c)).unwrap().init(5);
        assert!(
            w.get("transformer.ln_f.weight")
                .unwrap()
                .data
                .iter()
                .all(|&v| v == 1.0)
        );
        assert!(
            w.get("transformer.h.1.attn.c_attn.bias")
                .unwrap()
                .data
                .iter()
                .all(|&v| v == 0.0)
        );
        let std = |name: &str| {
            let d = &w.get(name).unwrap().data;
            (d.iter().map(|v| v * v).sum::<f32>() / d.len() as f32).sqrt()
        };
        assert!((std("transformer.wte.weight") - 0.02).abs() < 0.004);
        assert!((std("transformer.h.0.mlp.c_proj.weight") - 0.01).abs() < 0.002);
    }
}
