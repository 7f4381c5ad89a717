//! Strided matrix views, a bounds-checked product over `gemm`, and the
//! small reductions the layers need.

use super::Par;

/// A read-only matrix view with arbitrary (non-negative) strides.
#[derive(Clone, Copy, Debug)]
pub struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> Mat<'a> {
    /// A row-major `rows × cols` view of the start of `data`.
    pub fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// A `rows × cols` view of `data` whose rows start `row_stride` apart
    /// (a column block of a wider row-major matrix).
    pub fn strided(data: &'a [f32], rows: usize, cols: usize, row_stride: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            rs: row_stride,
            cs: 1,
        }
    }

    /// The transpose (no copy: strides swap).
    pub fn t(self) -> Self {
        Self {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    fn check(&self, what: &str) {
        if self.rows > 0 && self.cols > 0 {
            let last = (self.rows - 1) * self.rs + (self.cols - 1) * self.cs;
            assert!(
                last < self.data.len(),
                "{what}: {}×{} view with strides ({}, {}) overruns a buffer of {}",
                self.rows,
                self.cols,
                self.rs,
                self.cs,
                self.data.len()
            );
        }
    }
}

/// `dst (m×n, row-major) = [dst +] a (m×k) · b (k×n)`.
///
/// # Panics
/// When shapes disagree or a view overruns its buffer; shapes here are set
/// by the layers themselves, so a panic is a bug in a layer, never input.
pub fn matmul(dst: &mut [f32], a: Mat<'_>, b: Mat<'_>, accumulate: bool, par: Par) {
    product(dst, a, b, accumulate, par, false);
}

/// Same result as [`matmul`], computed as `dstᵀ = bᵀ · aᵀ`: gemm blocks
/// its problem differently, which is faster for short, wide outputs such
/// as a linear layer's activations (batch × features).
pub fn matmul_transposed(dst: &mut [f32], a: Mat<'_>, b: Mat<'_>, accumulate: bool, par: Par) {
    product(dst, a, b, accumulate, par, true);
}

fn product(dst: &mut [f32], a: Mat<'_>, b: Mat<'_>, accumulate: bool, par: Par, transposed: bool) {
    assert_eq!(a.cols, b.rows, "matmul: inner dimensions differ");
    let (m, n, k) = (a.rows, b.cols, a.cols);
    assert!(dst.len() >= m * n, "matmul: destination too small");
    a.check("lhs");
    b.check("rhs");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    // (rows, cols, dst col stride, dst row stride, lhs, rhs) of the problem gemm sees.
    let (gm, gn, dcs, drs, lhs, rhs) = if transposed {
        (n, m, n, 1, b.t(), a.t())
    } else {
        (m, n, 1, n, a, b)
    };
    // The rows are cut into chunks fixed by the shape alone, each a
    // single-threaded gemm; threads only decide which chunks run at once,
    // so the bits never depend on the thread count.
    let chunk = row_chunk(gm);
    let chunks = gm.div_ceil(chunk);
    let dst_addr = dst.as_mut_ptr() as usize;
    let run = |c: usize| {
        let r0 = c * chunk;
        let rows = chunk.min(gm - r0);
        // SAFETY: the two views were checked to lie inside their slices;
        // chunk `c` covers rows r0..r0+rows of the destination (m×n
        // elements addressed by (dcs, drs)), disjoint from every other
        // chunk's rows, and `dst` does not alias `a` or `b`.
        unsafe {
            gemm::gemm(
                rows,
                gn,
                k,
                (dst_addr as *mut f32).add(r0 * drs),
                dcs as isize,
                drs as isize,
                accumulate,
                lhs.data.as_ptr().add(r0 * lhs.rs),
                lhs.cs as isize,
                lhs.rs as isize,
                rhs.data.as_ptr(),
                rhs.cs as isize,
                rhs.rs as isize,
                1.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    };
    if par.threads > 1 && chunks > 1 {
        use rayon::prelude::*;
        (0..chunks).into_par_iter().for_each(run);
    } else {
        (0..chunks).for_each(run);
    }
}

/// `dst = [dst +] scale · a·b` on the calling thread, into an `m × n`
/// row-major destination whose rows start `dst_stride` apart: the small
/// per-head products of attention, written straight into a column block
/// of a wider matrix.
///
/// # Panics
/// When shapes disagree or a view overruns its buffer.
pub fn matmul_strided(
    dst: &mut [f32],
    dst_stride: usize,
    a: Mat<'_>,
    b: Mat<'_>,
    accumulate: bool,
    scale: f32,
) {
    assert_eq!(a.cols, b.rows, "matmul: inner dimensions differ");
    let (m, n, k) = (a.rows, b.cols, a.cols);
    a.check("lhs");
    b.check("rhs");
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        n <= dst_stride && (m - 1) * dst_stride + n <= dst.len(),
        "matmul: {m}×{n} destination with row stride {dst_stride} overruns a buffer of {}",
        dst.len()
    );
    if k == 0 {
        if !accumulate {
            for row in dst.chunks_mut(dst_stride).take(m) {
                row[..n].fill(0.0);
            }
        }
        return;
    }
    // SAFETY: the three views were checked to lie inside their slices, and
    // `dst` (a unique borrow) aliases neither operand.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_stride as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            scale,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Rows per gemm chunk: at least 64, and at most eight chunks per product.
fn row_chunk(rows: usize) -> usize {
    rows.div_ceil(8).next_multiple_of(16).max(64)
}

/// `out[j] = Σ_i m[i, j]` over a row-major `rows × cols` matrix, summed in
/// row order.
pub fn column_sums(out: &mut [f32], m: &[f32], rows: usize, cols: usize) {
    out[..cols].fill(0.0);
    for row in m[..rows * cols].chunks_exact(cols) {
        for (o, v) in out.iter_mut().zip(row) {
            *o += v;
        }
    }
}

/// Fills each of the `rows` rows of `dst` with `bias`.
pub fn broadcast_rows(dst: &mut [f32], bias: &[f32], rows: usize) {
    for row in dst[..rows * bias.len()].chunks_exact_mut(bias.len()) {
        row.copy_from_slice(bias);
    }
}

/// Shapes of a fully connected layer `y = x·Wᵀ + b` with `W` of shape
/// `[outputs, inputs]` (PyTorch's layout).
#[derive(Clone, Copy, Debug)]
pub struct Dense {
    /// Rows of `x` and `y`.
    pub batch: usize,
    /// Columns of `x`.
    pub inputs: usize,
    /// Columns of `y`.
    pub outputs: usize,
}

impl Dense {
    /// The same layer at another batch size.
    pub const fn with_batch(self, batch: usize) -> Self {
        Self { batch, ..self }
    }

    /// `y = x·Wᵀ + b`, then ReLU when `relu` is set.
    pub fn forward(self, y: &mut [f32], x: &[f32], w: &[f32], b: &[f32], relu: bool, par: Par) {
        let Dense {
            batch,
            inputs,
            outputs,
        } = self;
        let y = &mut y[..batch * outputs];
        broadcast_rows(y, b, batch);
        matmul_transposed(
            y,
            Mat::rows(x, batch, inputs),
            Mat::rows(w, outputs, inputs).t(),
            true,
            par,
        );
        if relu {
            for v in y.iter_mut() {
                *v = v.max(0.0);
            }
        }
    }

    /// Weight and bias gradients from the output gradient `dy`, and the
    /// input gradient `dx = dy·W` when asked for. When `x_relu` is set, `x`
    /// is the output of a ReLU and `dx` is masked where it was clipped.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        self,
        gw: &mut [f32],
        gb: &mut [f32],
        dx: Option<&mut [f32]>,
        dy: &[f32],
        x: &[f32],
        w: &[f32],
        x_relu: bool,
        par: Par,
    ) {
        let Dense {
            batch,
            inputs,
            outputs,
        } = self;
        matmul(
            gw,
            Mat::rows(dy, batch, outputs).t(),
            Mat::rows(x, batch, inputs),
            false,
            par,
        );
        column_sums(gb, dy, batch, outputs);
        if let Some(dx) = dx {
            let dx = &mut dx[..batch * inputs];
            matmul(
                dx,
                Mat::rows(dy, batch, outputs),
                Mat::rows(w, outputs, inputs),
                false,
                par,
            );
            if x_relu {
                for (g, &a) in dx.iter_mut().zip(x) {
                    if a <= 0.0 {
                        *g = 0.0;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        out
    }

    #[test]
    fn products_and_transposes_match_the_naive_loop() {
        let (m, k, n) = (7, 13, 5);
        let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 - 3.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.5).collect();
        let want = naive(&a, &b, m, k, n);
        let mut got = vec![0.0; m * n];
        matmul(
            &mut got,
            Mat::rows(&a, m, k),
            Mat::rows(&b, k, n),
            false,
            Par::SERIAL,
        );
        assert_eq!(got, want);
        // (bᵀ)ᵀ through a stored transpose.
        let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
        matmul(
            &mut got,
            Mat::rows(&a, m, k),
            Mat::rows(&bt, n, k).t(),
            false,
            Par::SERIAL,
        );
        assert_eq!(got, want);
        matmul(
            &mut got,
            Mat::rows(&a, m, k),
            Mat::rows(&b, k, n),
            true,
            Par::SERIAL,
        );
        assert_eq!(got, want.iter().map(|v| 2.0 * v).collect::<Vec<_>>());
    }

    #[test]
    fn strided_products_write_a_column_block() {
        let (m, k, n) = (3, 4, 2);
        let a: Vec<f32> = (0..m * k).map(|i| i as f32 - 5.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 3) as f32).collect();
        let want = naive(&a, &b, m, k, n);
        // Destination: columns 1..3 of a 3×5 matrix.
        let mut dst = vec![7.0; m * 5];
        matmul_strided(
            &mut dst[1..],
            5,
            Mat::rows(&a, m, k),
            Mat::rows(&b, k, n),
            false,
            2.0,
        );
        for i in 0..m {
            assert_eq!(dst[i * 5], 7.0);
            assert_eq!(dst[i * 5 + 1], 2.0 * want[i * n]);
            assert_eq!(dst[i * 5 + 2], 2.0 * want[i * n + 1]);
            assert_eq!(&dst[i * 5 + 3..i * 5 + 5], &[7.0, 7.0]);
        }
        // A strided view of the left operand: the first k columns of a wider matrix.
        let wide: Vec<f32> = (0..m * (k + 1))
            .map(|i| {
                if i % (k + 1) == k {
                    99.0
                } else {
                    a[i / (k + 1) * k + i % (k + 1)]
                }
            })
            .collect();
        let mut got = vec![0.0; m * n];
        matmul_strided(
            &mut got,
            n,
            Mat::strided(&wide, m, k, k + 1),
            Mat::rows(&b, k, n),
            false,
            1.0,
        );
        assert_eq!(got, want);
    }

    #[test]
    #[should_panic(expected = "overruns")]
    fn an_overrunning_view_is_caught() {
        let a = vec![0.0; 5];
        let mut d = vec![0.0; 4];
        matmul(
            &mut d,
            Mat::rows(&a, 2, 3),
            Mat::rows(&a, 3, 2),
            false,
            Par::SERIAL,
        );
    }

    #[test]
    fn column_sums_and_broadcast() {
        let m = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let mut s = [9.0; 3];
        column_sums(&mut s, &m, 2, 3);
        assert_eq!(s, [5.0, 7.0, 9.0]);
        let mut d = [0.0; 6];
        broadcast_rows(&mut d, &[1.0, 2.0], 3);
        assert_eq!(d, [1.0, 2.0, 1.0, 2.0, 1.0, 2.0]);
    }
}
