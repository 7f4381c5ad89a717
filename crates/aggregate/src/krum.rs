//! Krum and Multi-Krum (Blanchard, El Mhamdi, Guerraoui, Stainer, NeurIPS 2017).
//!
//! With `n` inputs of which at most `f` are Byzantine, the score of input `i`
//! is the sum of its squared L2 distances to its `n - f - 2` nearest other
//! inputs. Krum returns the input with the lowest score; Multi-Krum returns
//! the mean of the `m` inputs with the lowest scores. Both need
//! `n >= 2f + 3`, and Multi-Krum `1 <= m <= n - f`.
//!
//! Ties: each score adds its neighbours' distances in ascending order, and
//! inputs with equal scores are ranked by input index (lower first). The
//! selected inputs are averaged in input order.

use crate::combine::{Coeffs, Scaled, combine};
use crate::exec::Exec;
use crate::pairwise::{pair_index, pairwise};

/// Krum scores of the scaled inputs (`n >= 2f + 3`), and whether an input
/// value was not finite.
pub(crate) fn scores(x: Scaled, f: usize, exec: &Exec) -> (Vec<f64>, bool) {
    let n = x.n();
    debug_assert!(n >= 2 * f + 3);
    let (dist, bad) = pairwise(x, exec);
    let k = n - f - 2;
    let scores = (0..n)
        .map(|i| {
            let mut di: Vec<f64> = (0..n)
                .filter(|&j| j != i)
                .map(|j| dist[pair_index(n, i.min(j), i.max(j))])
                .collect();
            di.sort_by(f64::total_cmp);
            di[..k].iter().sum()
        })
        .collect();
    (scores, bad)
}

/// The `m` inputs with the lowest scores, ties to the lower index, returned in
/// ascending index order.
pub(crate) fn select(scores: &[f64], m: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
    let mut chosen = order[..m].to_vec();
    chosen.sort_unstable();
    chosen
}

/// Writes the mean of the scaled inputs `chosen` into `out`; returns whether
/// an input value was not finite.
pub(crate) fn mean_of(x: Scaled, chosen: &[usize], out: &mut [f32], exec: &Exec) -> bool {
    let rows: Vec<&[f32]> = chosen.iter().map(|&i| x.rows[i]).collect();
    let scales: Vec<f32> = chosen.iter().map(|&i| x.scales[i]).collect();
    let ones = vec![1.0; chosen.len()];
    let sub = Scaled {
        rows: &rows,
        scales: &scales,
    };
    let k = Coeffs {
        c: &ones,
        divisor: chosen.len() as f64,
        center: None,
    };
    combine(sub, k, out, false, exec).bad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_honest_cluster() {
        // four points near 0, one far away
        let rows: Vec<Vec<f32>> = vec![
            vec![0.0, 0.1],
            vec![0.1, 0.0],
            vec![100.0, 100.0],
            vec![-0.1, 0.0],
            vec![0.0, -0.1],
        ];
        let refs: Vec<&[f32]> = rows.iter().map(|r| r.as_slice()).collect();
        let x = Scaled {
            rows: &refs,
            scales: &[1.0; 5],
        };
        let (s, bad) = scores(x, 1, &Exec::sequential());
        assert!(!bad);
        // k = 5 - 1 - 2 = 2 nearest: for input 0 they are 1 and 3 (0.02 each)
        assert!((s[0] - 0.04).abs() < 1e-6);
        assert!(s[2] > 1e4);
        let chosen = select(&s, 4);
        assert_eq!(chosen, vec![0, 1, 3, 4]);
        let mut out = vec![0.0; 2];
        assert!(!mean_of(x, &chosen, &mut out, &Exec::sequential()));
        assert_eq!(out, vec![0.0, 0.0]);
    }

    #[test]
    fn ties_go_to_the_lower_index() {
        assert_eq!(select(&[1.0, 0.5, 0.5, 0.2], 1), vec![3]);
        assert_eq!(select(&[1.0, 0.5, 0.5, 0.7], 1), vec![1]);
        assert_eq!(select(&[1.0, 0.5, 0.5, 0.7], 2), vec![1, 2]);
        assert_eq!(select(&[0.0; 4], 3), vec![0, 1, 2]);
    }
}
