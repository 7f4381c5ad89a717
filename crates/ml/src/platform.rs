//! The platform class of this machine: which matrix kernels `gemm` picks.
//!
//! Training is bitwise reproducible between machines of the same class.
//! `gemm` chooses its micro-kernels at run time from the CPU's features
//! (AVX-512, AVX2 + FMA, or the portable fallback on x86-64; NEON on
//! aarch64), and different kernels round differently, so each task records
//! the trainer's class and replays go to validators of the same class.

/// A short name such as `x86_64-avx512f`, `x86_64-avx2-fma` or `aarch64-neon`.
pub fn platform_class() -> String {
    #[cfg(target_arch = "x86_64")]
    {
        let isa = if std::is_x86_feature_detected!("avx512f") {
            "avx512f"
        } else if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            "avx2-fma"
        } else {
            "scalar"
        };
        format!("x86_64-{isa}")
    }
    #[cfg(target_arch = "aarch64")]
    {
        "aarch64-neon".to_string()
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        format!("{}-scalar", std::env::consts::ARCH)
    }
}
