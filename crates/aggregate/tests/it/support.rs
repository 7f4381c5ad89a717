//! Naive reference implementations: one coordinate (or one input) at a time,
//! straight from the definitions in the crate docs.

use std::sync::OnceLock;

use funetun_aggregate::Exec;

/// Borrowed views of owned rows.
pub fn views(rows: &[Vec<f32>]) -> Vec<&[f32]> {
    rows.iter().map(|r| r.as_slice()).collect()
}

/// Executors with 1, 2 and 3 threads, built once.
pub fn execs() -> &'static [Exec; 3] {
    static E: OnceLock<[Exec; 3]> = OnceLock::new();
    E.get_or_init(|| {
        [
            Exec::sequential(),
            Exec::with_threads(2).unwrap(),
            Exec::with_threads(3).unwrap(),
        ]
    })
}

pub fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn column(rows: &[Vec<f32>], j: usize) -> Vec<f32> {
    let mut c: Vec<f32> = rows.iter().map(|r| r[j]).collect();
    c.sort_by(f32::total_cmp);
    c
}

pub fn mean(rows: &[Vec<f32>]) -> Vec<f32> {
    let n = rows.len() as f64;
    (0..rows[0].len())
        .map(|j| (rows.iter().fold(0.0f64, |s, r| s + r[j] as f64) / n) as f32)
        .collect()
}

pub fn weighted_mean(rows: &[Vec<f32>], w: &[f64]) -> Vec<f32> {
    let total: f64 = w.iter().sum();
    (0..rows[0].len())
        .map(|j| {
            let s = rows
                .iter()
                .zip(w)
                .fold(0.0f64, |s, (r, &w)| s + w * r[j] as f64);
            (s / total) as f32
        })
        .collect()
}

pub fn median(rows: &[Vec<f32>]) -> Vec<f32> {
    let n = rows.len();
    (0..rows[0].len())
        .map(|j| {
            let c = column(rows, j);
            if n % 2 == 1 {
                c[n / 2] + 0.0
            } else {
                ((c[n / 2 - 1] as f64 + c[n / 2] as f64) * 0.5) as f32 + 0.0
            }
        })
        .collect()
}

pub fn trimmed_mean(rows: &[Vec<f32>], q: usize) -> Vec<f32> {
    let n = rows.len();
    (0..rows[0].len())
        .map(|j| {
            let c = column(rows, j);
            let s = c[q..n - q].iter().fold(0.0f64, |s, &x| s + x as f64);
            (s / (n - 2 * q) as f64) as f32
        })
        .collect()
}

pub fn dist2(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
        .sum()
}

pub fn norm(a: &[f32]) -> f64 {
    a.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt()
}

/// Krum scores: sum of squared distances to the `n - f - 2` nearest others.
pub fn krum_scores(rows: &[Vec<f32>], f: usize) -> Vec<f64> {
    let n = rows.len();
    (0..n)
        .map(|i| {
            let mut d: Vec<f64> = (0..n)
                .filter(|&j| j != i)
                .map(|j| dist2(&rows[i], &rows[j]))
                .collect();
            d.sort_by(f64::total_cmp);
            d[..n - f - 2].iter().sum()
        })
        .collect()
}

/// The `m` lowest scores, ties to the lower index, in ascending index order.
pub fn krum_select(scores: &[f64], m: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
    let mut s = order[..m].to_vec();
    s.sort();
    s
}

pub fn subset(rows: &[Vec<f32>], idx: &[usize]) -> Vec<Vec<f32>> {
    idx.iter().map(|&i| rows[i].clone()).collect()
}

/// Sum of distances from `z` to every row: the geometric median's objective.
pub fn geomed_objective(rows: &[Vec<f32>], z: &[f32]) -> f64 {
    rows.iter().map(|r| dist2(r, z).sqrt()).sum()
}

/// Centered clipping from the coordinate-wise median, straight from the
/// formula.
pub fn centered_clip(rows: &[Vec<f32>], tau: f64, iters: usize) -> Vec<f64> {
    let n = rows.len() as f64;
    let mut v: Vec<f64> = median(rows).iter().map(|&x| x as f64).collect();
    for _ in 0..iters {
        let mut next = v.clone();
        for r in rows {
            let d = r
                .iter()
                .zip(&v)
                .map(|(&x, &y)| (x as f64 - y).powi(2))
                .sum::<f64>()
                .sqrt();
            let a = if d > tau { tau / d } else { 1.0 };
            for (j, nv) in next.iter_mut().enumerate() {
                *nv += a * (r[j] as f64 - v[j]) / n;
            }
        }
        v = next;
    }
    v
}

/// Rows scaled to norm at most `c`, with the norms the crate reported.
pub fn clipped(rows: &[Vec<f32>], norms: &[f64], c: f64) -> Vec<Vec<f32>> {
    rows.iter()
        .zip(norms)
        .map(|(r, &nrm)| {
            if nrm > c {
                let s = (c / nrm) as f32;
                r.iter().map(|&x| x * s).collect()
            } else {
                r.clone()
            }
        })
        .collect()
}
