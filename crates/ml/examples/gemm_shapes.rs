//! Times the MLP's matrix products in alternative layouts.
use std::time::Instant;
fn g(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    dcs: isize,
    drs: isize,
    a: &[f32],
    acs: isize,
    ars: isize,
    b: &[f32],
    bcs: isize,
    brs: isize,
    p: gemm::Parallelism,
) {
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dcs,
            drs,
            false,
            a.as_ptr(),
            acs,
            ars,
            b.as_ptr(),
            bcs,
            brs,
            1.0,
            1.0,
            false,
            false,
            false,
            p,
        )
    }
}
fn main() {
    let threads: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(1);
    let p = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .unwrap();
    let (b, i, h) = (64usize, 784usize, 256usize);
    let x: Vec<f32> = (0..b * i).map(|v| (v % 13) as f32 * 0.1).collect();
    let w: Vec<f32> = (0..h * i).map(|v| (v % 7) as f32 * 0.01).collect();
    let dh: Vec<f32> = (0..b * h).map(|v| (v % 5) as f32 * 0.1).collect();
    let mut out = vec![0f32; h * i];
    let n = 2000;
    let time = |name: &str, f: &mut dyn FnMut()| {
        for _ in 0..50 {
            f();
        }
        let t = Instant::now();
        for _ in 0..n {
            f();
        }
        let s = t.elapsed().as_secs_f64() / n as f64;
        println!(
            "{name:40} {:8.1} us  {:6.1} GFLOP/s",
            s * 1e6,
            2.0 * (b * i * h) as f64 / s / 1e9
        );
    };
    time("A h=x.W1t (rhs rs=1)", &mut || {
        g(
            b, h, i, &mut out, 1, h as isize, &x, 1, i as isize, &w, i as isize, 1, p,
        )
    });
    time("B ht=W1.xt", &mut || {
        g(
            h, b, i, &mut out, 1, b as isize, &w, 1, i as isize, &x, i as isize, 1, p,
        )
    });
    time("B2 h=x.W1t written col-major", &mut || {
        g(
            h, b, i, &mut out, b as isize, 1, &w, 1, i as isize, &x, i as isize, 1, p,
        )
    });
    time("C dW1=dht.x", &mut || {
        g(
            h, i, b, &mut out, 1, i as isize, &dh, h as isize, 1, &x, 1, i as isize, p,
        )
    });
    time("D dW1=(xt.dh)t", &mut || {
        g(
            i,
            h,
            b,
            &mut out,
            i as isize,
            1,
            &x,
            b as isize * 0 + i as isize,
            1,
            &dh,
            1,
            h as isize,
            p,
        )
    });
}
