//! Softmax cross-entropy.

/// Mean cross-entropy of `logits` (`labels.len() × classes`) against
/// `labels`; writes `∂loss/∂logits = (softmax − onehot) / batch` into `grad`.
pub fn softmax_cross_entropy(
    logits: &[f32],
    labels: &[u8],
    classes: usize,
    grad: &mut [f32],
) -> f32 {
    let batch = labels.len();
    let inv = 1.0 / batch as f32;
    let mut total = 0f64;
    for (i, &label) in labels.iter().enumerate() {
        let row = &logits[i * classes..(i + 1) * classes];
        let g = &mut grad[i * classes..(i + 1) * classes];
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0f32;
        for (gj, &z) in g.iter_mut().zip(row) {
            *gj = (z - max).exp();
            sum += *gj;
        }
        let label = label as usize;
        total += f64::from(sum.ln() - (row[label] - max));
        let scale = inv / sum;
        for gj in g.iter_mut() {
            *gj *= scale;
        }
        g[label] -= inv;
    }
    (total / batch as f64) as f32
}

/// The first index of the largest value of `row`, and that value.
fn arg_max(row: &[f32]) -> (usize, f32) {
    row.iter()
        .copied()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(ai, am), (j, v)| {
            if v > am { (j, v) } else { (ai, am) }
        })
}

/// Mean cross-entropy and the number of correct arg-max predictions.
pub fn evaluate_logits(logits: &[f32], labels: &[u8], classes: usize) -> (f64, usize) {
    let mut total = 0f64;
    let mut correct = 0;
    for (i, &label) in labels.iter().enumerate() {
        let row = &logits[i * classes..(i + 1) * classes];
        let (arg, max) = arg_max(row);
        let sum: f32 = row.iter().map(|&z| (z - max).exp()).sum();
        total += f64::from(sum.ln() - (row[label as usize] - max));
        correct += usize::from(arg == label as usize);
    }
    (total, correct)
}

/// Summed cross-entropy and the number of correct arg-max predictions of
/// `logits` (`targets.len() × vocab`) against next-token `targets`.
pub fn evaluate_token_logits(logits: &[f32], targets: &[u32], vocab: usize) -> (f64, usize) {
    let mut total = 0f64;
    let mut correct = 0;
    for (row, &t) in logits.chunks_exact(vocab).zip(targets) {
        let (arg, max) = arg_max(row);
        let sum: f64 = row.iter().map(|&z| f64::from(z - max).exp()).sum();
        total += sum.ln() - f64::from(row[t as usize] - max);
        correct += usize::from(arg == t as usize);
    }
    (total, correct)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_logits_give_log_classes_and_gradients_sum_to_zero() {
        let logits = [0.0f32; 20];
        let mut g = [0.0f32; 20];
        let loss = softmax_cross_entropy(&logits, &[3, 7], 10, &mut g);
        assert!((loss - 10f32.ln()).abs() < 1e-6);
        assert!(g[..10].iter().sum::<f32>().abs() < 1e-6);
        assert!((g[3] - (0.1 - 1.0) / 2.0).abs() < 1e-6);
        let (total, correct) = evaluate_logits(&logits, &[0, 7], 10);
        assert!((total - 2.0 * 10f64.ln()).abs() < 1e-5);
        assert_eq!(correct, 1); // ties pick class 0
    }
}
