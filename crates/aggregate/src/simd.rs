//! Vectors of 16 lanes with the same arithmetic on every instruction set.
//!
//! The kernels are written once, generic over [`Simd`], and compiled three
//! times: for AVX-512, for AVX2 and for the portable baseline. A value of a
//! [`Simd`] type is a token that proves the CPU has the instructions: only
//! [`dispatch`] makes one, after checking the CPU, and every operation takes
//! it. All three implementations give every lane exactly the same IEEE-754
//! result (no fused multiply-add, no reassociation, min/max with the x86
//! operand rules written out in the portable code), so the level changes the
//! speed and never the bits.
//!
//! Why not plain arrays and auto-vectorisation: the sorting networks keep
//! `n` vectors live at once, and LLVM's straight-line vectoriser turned such
//! code into scalar instructions for some `n` (and took minutes to compile);
//! explicit vector types keep `n <= 32` vectors in registers for every `n`.

use std::ops::Range;

/// Lanes per vector.
pub(crate) const L: usize = 16;

/// The vector instruction set the kernels are compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SimdLevel {
    /// The baseline of the compilation target (SSE2 on x86-64).
    Portable,
    /// AVX2 (x86-64).
    Avx2,
    /// AVX-512 F/DQ (x86-64).
    Avx512,
}

impl SimdLevel {
    /// The best level this CPU supports.
    pub fn detect() -> SimdLevel {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512dq")
            {
                return SimdLevel::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                return SimdLevel::Avx2;
            }
        }
        SimdLevel::Portable
    }
}

/// A computation generic over the instruction set.
pub(crate) trait Kernel {
    /// What it returns.
    type Output;
    /// Runs it with the operations of `s`. Implementations should be
    /// `#[inline(always)]`, as should everything they call, so that they are
    /// compiled with the instruction set of `s`.
    fn run<S: Simd>(self, s: S) -> Self::Output;
}

/// Runs `k` with the best instruction set that is at most `level` and that
/// this CPU has.
#[inline]
pub(crate) fn dispatch<K: Kernel>(level: SimdLevel, k: K) -> K::Output {
    #[cfg(target_arch = "x86_64")]
    {
        if level >= SimdLevel::Avx512
            && let Some(s) = x86::Avx512::new()
        {
            return s.vectorize(k);
        }
        if level >= SimdLevel::Avx2
            && let Some(s) = x86::Avx2::new()
        {
            return s.vectorize(k);
        }
    }
    let _ = level;
    k.run(Portable(()))
}

/// Operations on 16 lanes of `f32` ([`Simd::F32`]) and of `f64`
/// ([`Simd::F64`]).
pub(crate) trait Simd: Copy + Send + Sync + 'static {
    /// 16 `f32`.
    type F32: Copy;
    /// 16 `f64`.
    type F64: Copy;
    /// Remembers whether a NaN or infinity went through [`Simd::check`].
    type Check: Copy;
    /// Whether [`Simd::F32`] values live in registers, so that unrolled
    /// sorting networks pay off. The portable arrays do not; unrolling them
    /// only costs compile time.
    const REGISTERS: bool;

    /// Loads 16 values.
    fn load(self, x: &[f32; L]) -> Self::F32;
    /// Stores 16 values.
    fn store(self, v: Self::F32, out: &mut [f32; L]);
    /// All lanes `x`.
    fn splat(self, x: f32) -> Self::F32;
    /// Lane-wise `if a < b { a } else { b }`.
    fn min(self, a: Self::F32, b: Self::F32) -> Self::F32;
    /// Lane-wise `if a > b { a } else { b }`.
    fn max(self, a: Self::F32, b: Self::F32) -> Self::F32;
    /// Lane-wise `a + b`.
    fn add(self, a: Self::F32, b: Self::F32) -> Self::F32;
    /// Lane-wise `a * b`.
    fn mul(self, a: Self::F32, b: Self::F32) -> Self::F32;

    /// Nothing seen yet.
    fn check_none(self) -> Self::Check;
    /// Notes whether any lane of `x` is NaN or infinite.
    fn check(self, acc: Self::Check, x: Self::F32) -> Self::Check;
    /// Whether any NaN or infinity was noted.
    fn check_any(self, acc: Self::Check) -> bool;

    /// Exact conversion to `f64`.
    fn widen(self, a: Self::F32) -> Self::F64;
    /// Conversion to `f32`, rounding to nearest even.
    fn narrow(self, a: Self::F64) -> Self::F32;
    /// Stores 16 values.
    fn store64(self, v: Self::F64, out: &mut [f64; L]);
    /// All lanes `x`.
    fn splat64(self, x: f64) -> Self::F64;
    /// Lane-wise `a + b`.
    fn add64(self, a: Self::F64, b: Self::F64) -> Self::F64;
    /// Lane-wise `a - b`.
    fn sub64(self, a: Self::F64, b: Self::F64) -> Self::F64;
    /// Lane-wise `a * b`.
    fn mul64(self, a: Self::F64, b: Self::F64) -> Self::F64;
    /// Lane-wise `a / b`.
    fn div64(self, a: Self::F64, b: Self::F64) -> Self::F64;

    /// Hints that `x[at..]` will be read soon (nothing on the portable
    /// level); `at` may lie past the end.
    #[inline(always)]
    fn prefetch(self, x: &[f32], at: usize) {
        let _ = (x, at);
    }

    /// Loads up to 16 values from `x[range]`, padding with `+0.0`.
    #[inline(always)]
    fn load_part(self, x: &[f32], range: Range<usize>) -> Self::F32 {
        match x[range.clone()].try_into() {
            Ok(full) => self.load(full),
            Err(_) => {
                let mut t = [0.0f32; L];
                t[..range.len()].copy_from_slice(&x[range]);
                self.load(&t)
            }
        }
    }

    /// Stores the first `out.len() <= 16` lanes.
    #[inline(always)]
    fn store_part(self, v: Self::F32, out: &mut [f32]) {
        match out.try_into() {
            Ok(full) => self.store(v, full),
            Err(_) => {
                let mut t = [0.0f32; L];
                self.store(v, &mut t);
                let n = out.len();
                out.copy_from_slice(&t[..n]);
            }
        }
    }

    /// The sum of the lanes, in a fixed order that does not depend on `Self`.
    #[inline(always)]
    fn sum64(self, v: Self::F64) -> f64 {
        let mut a = [0.0f64; L];
        self.store64(v, &mut a);
        let mut w = L;
        while w > 1 {
            w /= 2;
            for i in 0..w {
                a[i] += a[i + w];
            }
        }
        a[0]
    }
}

/// The baseline: plain arrays, whatever the compiler makes of them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Portable(());

#[inline(always)]
fn map32(a: [f32; L], b: [f32; L], f: impl Fn(f32, f32) -> f32) -> [f32; L] {
    std::array::from_fn(|l| f(a[l], b[l]))
}

#[inline(always)]
fn map64(a: [f64; L], b: [f64; L], f: impl Fn(f64, f64) -> f64) -> [f64; L] {
    std::array::from_fn(|l| f(a[l], b[l]))
}

impl Simd for Portable {
    type F32 = [f32; L];
    type F64 = [f64; L];
    type Check = bool;
    const REGISTERS: bool = false;

    #[inline(always)]
    fn load(self, x: &[f32; L]) -> [f32; L] {
        *x
    }
    #[inline(always)]
    fn store(self, v: [f32; L], out: &mut [f32; L]) {
        *out = v;
    }
    #[inline(always)]
    fn splat(self, x: f32) -> [f32; L] {
        [x; L]
    }
    #[inline(always)]
    fn min(self, a: [f32; L], b: [f32; L]) -> [f32; L] {
        map32(a, b, |a, b| if a < b { a } else { b })
    }
    #[inline(always)]
    fn max(self, a: [f32; L], b: [f32; L]) -> [f32; L] {
        map32(a, b, |a, b| if a > b { a } else { b })
    }
    #[inline(always)]
    fn add(self, a: [f32; L], b: [f32; L]) -> [f32; L] {
        map32(a, b, |a, b| a + b)
    }
    #[inline(always)]
    fn mul(self, a: [f32; L], b: [f32; L]) -> [f32; L] {
        map32(a, b, |a, b| a * b)
    }
    #[inline(always)]
    fn check_none(self) -> bool {
        false
    }
    #[inline(always)]
    fn check(self, acc: bool, x: [f32; L]) -> bool {
        acc | x.iter().any(|v| !v.is_finite())
    }
    #[inline(always)]
    fn check_any(self, acc: bool) -> bool {
        acc
    }
    #[inline(always)]
    fn widen(self, a: [f32; L]) -> [f64; L] {
        a.map(|x| x as f64)
    }
    #[inline(always)]
    fn narrow(self, a: [f64; L]) -> [f32; L] {
        a.map(|x| x as f32)
    }
    #[inline(always)]
    fn store64(self, v: [f64; L], out: &mut [f64; L]) {
        *out = v;
    }
    #[inline(always)]
    fn splat64(self, x: f64) -> [f64; L] {
        [x; L]
    }
    #[inline(always)]
    fn add64(self, a: [f64; L], b: [f64; L]) -> [f64; L] {
        map64(a, b, |a, b| a + b)
    }
    #[inline(always)]
    fn sub64(self, a: [f64; L], b: [f64; L]) -> [f64; L] {
        map64(a, b, |a, b| a - b)
    }
    #[inline(always)]
    fn mul64(self, a: [f64; L], b: [f64; L]) -> [f64; L] {
        map64(a, b, |a, b| a * b)
    }
    #[inline(always)]
    fn div64(self, a: [f64; L], b: [f64; L]) -> [f64; L] {
        map64(a, b, |a, b| a / b)
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! AVX2 and AVX-512 implementations. Every `unsafe` block here calls an
    //! intrinsic whose instruction set the token's constructor has checked,
    //! or reads or writes through a reference to exactly the bytes it covers.

    use std::arch::x86_64::*;

    use super::{Kernel, L, Simd};

    /// Proof that the CPU has AVX2.
    #[derive(Clone, Copy, Debug)]
    pub(crate) struct Avx2(());

    impl Avx2 {
        pub(crate) fn new() -> Option<Self> {
            is_x86_feature_detected!("avx2").then_some(Avx2(()))
        }

        #[inline]
        pub(crate) fn vectorize<K: Kernel>(self, k: K) -> K::Output {
            #[target_feature(enable = "avx2")]
            fn inner<K: Kernel>(s: Avx2, k: K) -> K::Output {
                k.run(s)
            }
            // SAFETY: `self` exists, so the CPU has AVX2.
            unsafe { inner(self, k) }
        }
    }

    /// Proof that the CPU has AVX-512 F and DQ.
    #[derive(Clone, Copy, Debug)]
    pub(crate) struct Avx512(());

    impl Avx512 {
        pub(crate) fn new() -> Option<Self> {
            (is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512dq"))
                .then_some(Avx512(()))
        }

        #[inline]
        pub(crate) fn vectorize<K: Kernel>(self, k: K) -> K::Output {
            #[target_feature(enable = "avx512f,avx512dq,avx2")]
            fn inner<K: Kernel>(s: Avx512, k: K) -> K::Output {
                k.run(s)
            }
            // SAFETY: `self` exists, so the CPU has AVX-512 F and DQ.
            unsafe { inner(self, k) }
        }
    }

    /// `x - x` is `0` for finite `x` and NaN otherwise; NaNs are unordered.
    const UNORD: i32 = _CMP_UNORD_Q;

    impl Simd for Avx2 {
        #[inline(always)]
        fn prefetch(self, x: &[f32], at: usize) {
            // SAFETY: a prefetch is a hint; it never faults, whatever the
            // address, and `wrapping_add` computes it without dereferencing.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(x.as_ptr().wrapping_add(at).cast()) }
        }
        type F32 = [__m256; 2];
        type F64 = [__m256d; 4];
        type Check = __m256;
        const REGISTERS: bool = true;

        #[inline(always)]
        fn load(self, x: &[f32; L]) -> Self::F32 {
            // SAFETY: AVX2 checked; `x` covers the 16 values read.
            unsafe {
                [
                    _mm256_loadu_ps(x.as_ptr()),
                    _mm256_loadu_ps(x.as_ptr().add(8)),
                ]
            }
        }
        #[inline(always)]
        fn store(self, v: Self::F32, out: &mut [f32; L]) {
            // SAFETY: AVX2 checked; `out` covers the 16 values written.
            unsafe {
                _mm256_storeu_ps(out.as_mut_ptr(), v[0]);
                _mm256_storeu_ps(out.as_mut_ptr().add(8), v[1]);
            }
        }
        #[inline(always)]
        fn splat(self, x: f32) -> Self::F32 {
            // SAFETY: AVX2 checked.
            unsafe { [_mm256_set1_ps(x); 2] }
        }
        #[inline(always)]
        fn min(self, a: Self::F32, b: Self::F32) -> Self::F32 {
            // SAFETY: AVX2 checked. `vminps` returns `a < b ? a : b`.
            unsafe { [_mm256_min_ps(a[0], b[0]), _mm256_min_ps(a[1], b[1])] }
        }
        #[inline(always)]
        fn max(self, a: Self::F32, b: Self::F32) -> Self::F32 {
            // SAFETY: AVX2 checked. `vmaxps` returns `a > b ? a : b`.
            unsafe { [_mm256_max_ps(a[0], b[0]), _mm256_max_ps(a[1], b[1])] }
        }
        #[inline(always)]
        fn add(self, a: Self::F32, b: Self::F32) -> Self::F32 {
            // SAFETY: AVX2 checked.
            unsafe { [_mm256_add_ps(a[0], b[0]), _mm256_add_ps(a[1], b[1])] }
        }
        #[inline(always)]
        fn mul(self, a: Self::F32, b: Self::F32) -> Self::F32 {
            // SAFETY: AVX2 checked.
            unsafe { [_mm256_mul_ps(a[0], b[0]), _mm256_mul_ps(a[1], b[1])] }
        }
        #[inline(always)]
        fn check_none(self) -> __m256 {
            // SAFETY: AVX2 checked.
            unsafe { _mm256_setzero_ps() }
        }
        #[inline(always)]
        fn check(self, acc: __m256, x: Self::F32) -> __m256 {
            // SAFETY: AVX2 checked.
            unsafe {
                let d0 = _mm256_sub_ps(x[0], x[0]);
                let d1 = _mm256_sub_ps(x[1], x[1]);
                _mm256_or_ps(acc, _mm256_cmp_ps::<UNORD>(d0, d1))
            }
        }
        #[inline(always)]
        fn check_any(self, acc: __m256) -> bool {
            // SAFETY: AVX2 checked.
            unsafe { _mm256_movemask_ps(acc) != 0 }
        }
        #[inline(always)]
        fn widen(self, a: Self::F32) -> Self::F64 {
            // SAFETY: AVX2 checked.
            unsafe {
                [
                    _mm256_cvtps_pd(_mm256_castps256_ps128(a[0])),
                    _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(a[0])),
                    _mm256_cvtps_pd(_mm256_castps256_ps128(a[1])),
                    _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(a[1])),
                ]
            }
        }
        #[inline(always)]
        fn narrow(self, a: Self::F64) -> Self::F32 {
            // SAFETY: AVX2 checked.
            unsafe {
                [
                    _mm256_set_m128(_mm256_cvtpd_ps(a[1]), _mm256_cvtpd_ps(a[0])),
                    _mm256_set_m128(_mm256_cvtpd_ps(a[3]), _mm256_cvtpd_ps(a[2])),
                ]
            }
        }
        #[inline(always)]
        fn store64(self, v: Self::F64, out: &mut [f64; L]) {
            for (k, v) in v.into_iter().enumerate() {
                // SAFETY: AVX2 checked; `out` covers the 16 values written.
                unsafe { _mm256_storeu_pd(out.as_mut_ptr().add(4 * k), v) }
            }
        }
        #[inline(always)]
        fn splat64(self, x: f64) -> Self::F64 {
            // SAFETY: AVX2 checked.
            unsafe { [_mm256_set1_pd(x); 4] }
        }
        #[inline(always)]
        fn add64(self, a: Self::F64, b: Self::F64) -> Self::F64 {
            // SAFETY: AVX2 checked.
            std::array::from_fn(|k| unsafe { _mm256_add_pd(a[k], b[k]) })
        }
        #[inline(always)]
        fn sub64(self, a: Self::F64, b: Self::F64) -> Self::F64 {
            // SAFETY: AVX2 checked.
            std::array::from_fn(|k| unsafe { _mm256_sub_pd(a[k], b[k]) })
        }
        #[inline(always)]
        fn mul64(self, a: Self::F64, b: Self::F64) -> Self::F64 {
            // SAFETY: AVX2 checked.
            std::array::from_fn(|k| unsafe { _mm256_mul_pd(a[k], b[k]) })
        }
        #[inline(always)]
        fn div64(self, a: Self::F64, b: Self::F64) -> Self::F64 {
            // SAFETY: AVX2 checked.
            std::array::from_fn(|k| unsafe { _mm256_div_pd(a[k], b[k]) })
        }
    }

    /// `vfpclassps` categories: quiet NaN, +inf, -inf, signalling NaN.
    const NON_FINITE: i32 = 0x01 | 0x08 | 0x10 | 0x80;

    impl Simd for Avx512 {
        #[inline(always)]
        fn prefetch(self, x: &[f32], at: usize) {
            // SAFETY: a prefetch is a hint; it never faults, whatever the
            // address, and `wrapping_add` computes it without dereferencing.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(x.as_ptr().wrapping_add(at).cast()) }
        }
        type F32 = __m512;
        type F64 = [__m512d; 2];
        type Check = u16;
        const REGISTERS: bool = true;

        #[inline(always)]
        fn load(self, x: &[f32; L]) -> __m512 {
            // SAFETY: AVX-512 checked; `x` covers the 16 values read.
            unsafe { _mm512_loadu_ps(x.as_ptr()) }
        }
        #[inline(always)]
        fn store(self, v: __m512, out: &mut [f32; L]) {
            // SAFETY: AVX-512 checked; `out` covers the 16 values written.
            unsafe { _mm512_storeu_ps(out.as_mut_ptr(), v) }
        }
        #[inline(always)]
        fn splat(self, x: f32) -> __m512 {
            // SAFETY: AVX-512 checked.
            unsafe { _mm512_set1_ps(x) }
        }
        #[inline(always)]
        fn min(self, a: __m512, b: __m512) -> __m512 {
            // SAFETY: AVX-512 checked. `vminps` returns `a < b ? a : b`.
            unsafe { _mm512_min_ps(a, b) }
        }
        #[inline(always)]
        fn max(self, a: __m512, b: __m512) -> __m512 {
            // SAFETY: AVX-512 checked. `vmaxps` returns `a > b ? a : b`.
            unsafe { _mm512_max_ps(a, b) }
        }
        #[inline(always)]
        fn add(self, a: __m512, b: __m512) -> __m512 {
            // SAFETY: AVX-512 checked.
            unsafe { _mm512_add_ps(a, b) }
        }
        #[inline(always)]
        fn mul(self, a: __m512, b: __m512) -> __m512 {
            // SAFETY: AVX-512 checked.
            unsafe { _mm512_mul_ps(a, b) }
        }
        #[inline(always)]
        fn check_none(self) -> u16 {
            0
        }
        #[inline(always)]
        fn check(self, acc: u16, x: __m512) -> u16 {
            // SAFETY: AVX-512 DQ checked.
            acc | unsafe { _mm512_fpclass_ps_mask::<NON_FINITE>(x) }
        }
        #[inline(always)]
        fn check_any(self, acc: u16) -> bool {
            acc != 0
        }
        #[inline(always)]
        fn widen(self, a: __m512) -> Self::F64 {
            // SAFETY: AVX-512 F and DQ checked.
            unsafe {
                [
                    _mm512_cvtps_pd(_mm512_castps512_ps256(a)),
                    _mm512_cvtps_pd(_mm512_extractf32x8_ps::<1>(a)),
                ]
            }
        }
        #[inline(always)]
        fn narrow(self, a: Self::F64) -> __m512 {
            // SAFETY: AVX-512 F and DQ checked.
            unsafe {
                let lo = _mm512_castps256_ps512(_mm512_cvtpd_ps(a[0]));
                _mm512_insertf32x8::<1>(lo, _mm512_cvtpd_ps(a[1]))
            }
        }
        #[inline(always)]
        fn store64(self, v: Self::F64, out: &mut [f64; L]) {
            // SAFETY: AVX-512 checked; `out` covers the 16 values written.
            unsafe {
                _mm512_storeu_pd(out.as_mut_ptr(), v[0]);
                _mm512_storeu_pd(out.as_mut_ptr().add(8), v[1]);
            }
        }
        #[inline(always)]
        fn splat64(self, x: f64) -> Self::F64 {
            // SAFETY: AVX-512 checked.
            unsafe { [_mm512_set1_pd(x); 2] }
        }
        #[inline(always)]
        fn add64(self, a: Self::F64, b: Self::F64) -> Self::F64 {
            // SAFETY: AVX-512 checked.
            unsafe { [_mm512_add_pd(a[0], b[0]), _mm512_add_pd(a[1], b[1])] }
        }
        #[inline(always)]
        fn sub64(self, a: Self::F64, b: Self::F64) -> Self::F64 {
            // SAFETY: AVX-512 checked.
            unsafe { [_mm512_sub_pd(a[0], b[0]), _mm512_sub_pd(a[1], b[1])] }
        }
        #[inline(always)]
        fn mul64(self, a: Self::F64, b: Self::F64) -> Self::F64 {
            // SAFETY: AVX-512 checked.
            unsafe { [_mm512_mul_pd(a[0], b[0]), _mm512_mul_pd(a[1], b[1])] }
        }
        #[inline(always)]
        fn div64(self, a: Self::F64, b: Self::F64) -> Self::F64 {
            // SAFETY: AVX-512 checked.
            unsafe { [_mm512_div_pd(a[0], b[0]), _mm512_div_pd(a[1], b[1])] }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Applies every operation to awkward values and returns all result bits.
    struct Exercise(Vec<f32>);

    impl Kernel for Exercise {
        type Output = (Vec<u32>, Vec<u64>, Vec<bool>);
        #[inline(always)]
        fn run<S: Simd>(self, s: S) -> Self::Output {
            let x = &self.0;
            let mut r32 = Vec::new();
            let mut r64 = Vec::new();
            let mut checks = Vec::new();
            let mut push32 = |v: S::F32| {
                let mut o = [0.0; L];
                s.store(v, &mut o);
                r32.extend(o.map(f32::to_bits));
            };
            let a = s.load(x[0..L].try_into().unwrap());
            let b = s.load(x[L..2 * L].try_into().unwrap());
            push32(s.min(a, b));
            push32(s.max(a, b));
            push32(s.max(b, a));
            push32(s.add(a, b));
            push32(s.mul(a, s.splat(0.3)));
            push32(s.load_part(x, 3..10));
            let (wa, wb) = (s.widen(a), s.widen(b));
            for v in [
                s.add64(wa, wb),
                s.sub64(wa, wb),
                s.mul64(wa, wb),
                s.div64(wa, s.splat64(3.0)),
                s.splat64(0.1),
            ] {
                let mut o = [0.0; L];
                s.store64(v, &mut o);
                r64.extend(o.map(f64::to_bits));
                r64.push(s.sum64(v).to_bits());
            }
            push32(s.narrow(s.div64(wa, s.splat64(7.0))));
            let mut part = [9.0f32; 5];
            s.store_part(a, &mut part);
            r32.extend(part.map(f32::to_bits));
            for k in 0..2 {
                let c = s.check(s.check_none(), if k == 0 { a } else { s.add(a, b) });
                checks.push(s.check_any(c));
            }
            (r32, r64, checks)
        }
    }

    #[test]
    fn every_level_gives_the_same_bits() {
        let mut x: Vec<f32> = (0..2 * L).map(|i| (i as f32 - 11.0) * 0.37).collect();
        x[1] = -0.0;
        x[L + 1] = 0.0;
        x[2] = 0.0;
        x[L + 2] = -0.0;
        x[3] = 1e-45;
        x[L + 5] = f32::MAX;
        x[5] = f32::MAX;
        let portable = Exercise(x.clone()).run(Portable(()));
        assert_eq!(portable.2, vec![false, true]);
        for level in [SimdLevel::Avx2, SimdLevel::Avx512] {
            assert_eq!(dispatch(level, Exercise(x.clone())), portable, "{level:?}");
        }
    }

    #[test]
    fn check_sees_nan_and_infinities_in_any_lane() {
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            for lane in [0, 7, 8, 15] {
                let mut x = vec![1.0f32; 2 * L];
                x[lane] = bad;
                for level in [SimdLevel::Portable, SimdLevel::Avx2, SimdLevel::Avx512] {
                    assert!(dispatch(level, Exercise(x.clone())).2[0], "{level:?}");
                }
            }
        }
    }
}
