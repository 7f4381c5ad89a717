//! `funetun aggregate` (merge delta files offline) and
//! `funetun bench aggregate` (a rule against the memory bandwidth).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use funetun_aggregate::{Exec, Options, Outer, Rule, SimdLevel, membw, state_file};
use funetun_core::encoding::decode_with_layout;
use funetun_core::{DecodeLimits, TensorSet, decode, encode, keccak256};
use serde::Serialize;

use crate::output::{print_json, write_atomic};

/// Arguments of `funetun aggregate`.
#[derive(Debug, clap::Args)]
pub struct AggregateArgs {
    /// Aggregation rule: mean, weighted-mean, median, trimmed-mean:Q, krum:F,
    /// multi-krum:F,M, geometric-median[:MAX_ITER,TOL], centered-clip:TAU[,ITERS],
    /// norm-clip:C[/RULE].
    #[arg(long, env = "FUNETUN_RULE")]
    rule: Rule,
    /// Outer optimizer applied to the aggregate: sgd[:LR], nesterov:LR,MOMENTUM,
    /// adam:LR,BETA1,BETA2,EPS. Needs --base; the output is then the new checkpoint.
    #[arg(long, env = "FUNETUN_OUTER", requires = "base")]
    outer: Option<Outer>,
    /// Checkpoint the outer optimizer steps from (canonical safetensors).
    #[arg(long, env = "FUNETUN_BASE", requires = "outer")]
    base: Option<PathBuf>,
    /// Outer optimizer state from the previous round (default: a fresh state).
    #[arg(long, env = "FUNETUN_STATE_IN", requires = "outer")]
    state_in: Option<PathBuf>,
    /// Where to write the new optimizer state (default: beside --out, as
    /// NAME.outer.safetensors). Not written for sgd, which keeps none.
    #[arg(long, env = "FUNETUN_STATE_OUT", requires = "outer")]
    state_out: Option<PathBuf>,
    /// Weights for weighted-mean, one per input (samples trained), comma separated.
    #[arg(long, env = "FUNETUN_WEIGHTS", value_delimiter = ',')]
    weights: Vec<f64>,
    /// Flag inputs whose L2 norm exceeds this multiple (>= 1) of the median norm.
    #[arg(long, env = "FUNETUN_OUTLIER_FACTOR")]
    outlier_factor: Option<f64>,
    /// Threads (0: one per core).
    #[arg(long, env = "FUNETUN_AGGREGATE_THREADS", default_value_t = 0)]
    threads: usize,
    /// Where to write the aggregate (or the new checkpoint with --outer).
    #[arg(long)]
    out: PathBuf,
    /// Print one JSON object as the last stdout line.
    #[arg(long)]
    json: bool,
    /// Delta files (canonical safetensors, all with the same tensor names and shapes).
    #[arg(required = true, num_args = 1..)]
    inputs: Vec<PathBuf>,
}

#[derive(Serialize)]
struct AggregateReport {
    rule: String,
    n: usize,
    params: usize,
    out_hash: String,
}

fn exec_for(threads: usize) -> anyhow::Result<Exec> {
    Ok(match threads {
        0 => Exec::current(),
        t => Exec::with_threads(t)?,
    })
}

fn read(path: &Path, layout: Option<&TensorSet>) -> anyhow::Result<TensorSet> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let limits = DecodeLimits::default();
    let set = match layout {
        None => decode(&bytes, &limits),
        Some(l) => decode_with_layout(&bytes, &limits, l),
    };
    set.with_context(|| format!("{} is not a usable tensor file", path.display()))
}

/// The default state path: `out.safetensors` → `out.outer.safetensors`.
fn default_state_path(out: &Path) -> PathBuf {
    let stem = out.file_stem().and_then(|s| s.to_str()).unwrap_or("out");
    out.with_file_name(format!("{stem}.outer.safetensors"))
}

/// Runs `funetun aggregate`.
pub fn run(args: AggregateArgs) -> anyhow::Result<()> {
    let exec = exec_for(args.threads)?;
    args.rule.check_n(args.inputs.len())?;
    anyhow::ensure!(
        !args.rule.needs_weights() || args.weights.len() == args.inputs.len(),
        "rule `{}` needs --weights with one weight per input ({} inputs, {} weights)",
        args.rule,
        args.inputs.len(),
        args.weights.len()
    );
    let first = read(&args.inputs[0], None)?;
    let mut flats = vec![first.to_flat()];
    for path in &args.inputs[1..] {
        flats.push(read(path, Some(&first))?.to_flat());
    }
    let inputs: Vec<&[f32]> = flats.iter().map(|f| f.as_slice()).collect();
    let opts = Options {
        weights: (!args.weights.is_empty()).then_some(&args.weights[..]),
        outlier_factor: args.outlier_factor,
        center: None,
    };
    let start = Instant::now();
    let agg = args.rule.aggregate(&inputs, &opts, &exec)?;
    tracing::info!(rule = %args.rule, n = inputs.len(), seconds = start.elapsed().as_secs_f64(), "aggregated");
    let r = &agg.report;
    if !r.flagged.is_empty() {
        eprintln!("flagged as norm outliers: inputs {:?}", r.flagged);
    }
    if !r.clipped.is_empty() {
        eprintln!("clipped: inputs {:?}", r.clipped);
    }
    if let Some(sel) = &r.selected {
        eprintln!("selected: inputs {sel:?}");
    }
    if let Some(it) = r.iterations {
        eprintln!("iterations: {it}");
    }
    drop(flats);

    let out_set = match (&args.outer, &args.base) {
        (Some(outer), Some(base_path)) => {
            let base = read(base_path, Some(&first))?;
            let mut theta = base.to_flat();
            let mut state = match &args.state_in {
                Some(p) => {
                    let bytes = std::fs::read(p)
                        .with_context(|| format!("reading optimizer state {}", p.display()))?;
                    state_file::decode_state(&bytes, outer, &first)
                        .with_context(|| format!("reading optimizer state {}", p.display()))?
                }
                None => outer.init_state(theta.len()),
            };
            outer.step(&mut theta, &agg.output, &mut state, &exec)?;
            if !outer.slot_names().is_empty() {
                let path = args
                    .state_out
                    .clone()
                    .unwrap_or_else(|| default_state_path(&args.out));
                let bytes = state_file::encode_state(&state, &first)?;
                write_atomic(&path, &bytes)?;
                eprintln!(
                    "optimizer state (step {}) written to {}",
                    state.step,
                    path.display()
                );
            }
            first.from_flat_like(&theta)?
        }
        _ => first.from_flat_like(&agg.output)?,
    };
    let bytes = encode(&out_set);
    write_atomic(&args.out, &bytes)?;
    let report = AggregateReport {
        rule: args.rule.to_string(),
        n: args.inputs.len(),
        params: out_set.num_params(),
        out_hash: keccak256(&bytes).to_string(),
    };
    eprintln!(
        "{} of {} inputs ({} parameters) written to {}: {}",
        report.rule,
        report.n,
        report.params,
        args.out.display(),
        report.out_hash
    );
    if args.json {
        print_json(&report)?;
    }
    Ok(())
}

/// Arguments of `funetun bench aggregate`.
#[derive(Debug, clap::Args)]
pub struct AggregateBenchArgs {
    /// Aggregation rule (as for `funetun aggregate`).
    #[arg(long, default_value = "median")]
    rule: Rule,
    /// Number of inputs.
    #[arg(long, default_value_t = 16)]
    n: usize,
    /// Length of each input.
    #[arg(long, default_value_t = 10_000_000)]
    d: usize,
    /// Threads (0: one per core).
    #[arg(long, env = "FUNETUN_AGGREGATE_THREADS", default_value_t = 0)]
    threads: usize,
    /// Timed runs of each measurement (after one warm-up run).
    #[arg(long, default_value_t = 5)]
    repeat: usize,
    /// Instruction set: avx512, avx2 or portable (default: the best this CPU has).
    #[arg(long)]
    simd: Option<String>,
}

#[derive(Serialize)]
struct BenchReport {
    rule: String,
    n: usize,
    d: usize,
    threads: usize,
    simd: String,
    /// Best time of the rule.
    seconds: f64,
    /// Slowest time of the rule, to show the spread.
    seconds_max: f64,
    /// Input bytes read per second at the best time.
    gb_per_sec: f64,
    /// Best time to read the inputs once (the memory-bandwidth baseline).
    read_once_seconds: f64,
    /// Memory bandwidth at that time.
    read_once_gb_per_sec: f64,
    /// `seconds / read_once_seconds`.
    ratio_to_read_once: f64,
    /// Iterations of an iterative rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    iterations: Option<usize>,
}

/// Largest input the bench allocates.
const MAX_BENCH_BYTES: usize = 32 << 30;

fn bench_inputs(n: usize, d: usize, exec: &Exec) -> Vec<Vec<f32>> {
    // Deterministic, roughly uniform in [-0.5, 0.5), generated in parallel
    // through the aggregation pool's threads.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(exec.threads())
        .build()
        .ok();
    let gen_row = |i: usize| {
        let mut s = 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(i as u64 + 1) | 1;
        (0..d)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect::<Vec<f32>>()
    };
    use rayon::prelude::*;
    match pool {
        Some(p) => p.install(|| (0..n).into_par_iter().map(gen_row).collect()),
        None => (0..n).map(gen_row).collect(),
    }
}

/// Runs `funetun bench aggregate`.
pub fn bench(args: AggregateBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.n >= 1 && args.d >= 1, "--n and --d must be at least 1");
    anyhow::ensure!(args.repeat >= 1, "--repeat must be at least 1");
    let bytes = args
        .n
        .checked_mul(args.d)
        .and_then(|v| v.checked_mul(4))
        .filter(|&b| b <= MAX_BENCH_BYTES)
        .with_context(|| format!("--n × --d × 4 bytes must be at most {MAX_BENCH_BYTES}"))?;
    args.rule.check_n(args.n)?;
    let mut exec = exec_for(args.threads)?;
    if let Some(s) = &args.simd {
        exec = exec.with_simd(match s.as_str() {
            "avx512" => SimdLevel::Avx512,
            "avx2" => SimdLevel::Avx2,
            "portable" => SimdLevel::Portable,
            other => anyhow::bail!("--simd must be avx512, avx2 or portable, got `{other}`"),
        });
    }
    let data = bench_inputs(args.n, args.d, &exec);
    let inputs: Vec<&[f32]> = data.iter().map(|r| r.as_slice()).collect();
    let weights = vec![1.0f64; args.n];
    let opts = Options {
        weights: Some(&weights),
        ..Options::default()
    };
    let mut out = vec![0.0f32; args.d];
    // Warm-up, then alternate the rule and the baseline so both see the same
    // machine load.
    let warm = args.rule.aggregate_into(&inputs, &opts, &exec, &mut out)?;
    std::hint::black_box(membw::read_once(&inputs, &exec));
    let mut rule_times = Vec::new();
    let mut base_times = Vec::new();
    for _ in 0..args.repeat {
        let t = Instant::now();
        args.rule.aggregate_into(&inputs, &opts, &exec, &mut out)?;
        rule_times.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        std::hint::black_box(membw::read_once(&inputs, &exec));
        base_times.push(t.elapsed().as_secs_f64());
    }
    let best = rule_times.iter().copied().fold(f64::INFINITY, f64::min);
    let worst = rule_times.iter().copied().fold(0.0, f64::max);
    let base = base_times.iter().copied().fold(f64::INFINITY, f64::min);
    let gb = bytes as f64 / 1e9;
    let report = BenchReport {
        rule: args.rule.to_string(),
        n: args.n,
        d: args.d,
        threads: exec.threads(),
        simd: format!("{:?}", exec.simd()).to_lowercase(),
        seconds: best,
        seconds_max: worst,
        gb_per_sec: gb / best,
        read_once_seconds: base,
        read_once_gb_per_sec: gb / base,
        ratio_to_read_once: best / base,
        iterations: warm.iterations,
    };
    eprintln!(
        "{}: {:.4} s (max {:.4}), {:.1} GB/s; read once {:.4} s, {:.1} GB/s; ratio {:.2}",
        report.rule,
        best,
        worst,
        report.gb_per_sec,
        base,
        report.read_once_gb_per_sec,
        report.ratio_to_read_once
    );
    print_json(&report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use funetun_core::Tensor;

    fn write(dir: &Path, name: &str, a: &[f32], b: &[f32]) -> PathBuf {
        let mut s = TensorSet::new();
        s.insert("a", Tensor::new(vec![a.len()], a.to_vec()).unwrap());
        s.insert(
            "b.weight",
            Tensor::new(vec![1, b.len()], b.to_vec()).unwrap(),
        );
        let p = dir.join(name);
        std::fs::write(&p, encode(&s)).unwrap();
        p
    }

    fn args(rule: &str, inputs: Vec<PathBuf>, out: PathBuf) -> AggregateArgs {
        AggregateArgs {
            rule: rule.parse().unwrap(),
            outer: None,
            base: None,
            state_in: None,
            state_out: None,
            weights: vec![],
            outlier_factor: None,
            threads: 1,
            out,
            json: false,
            inputs,
        }
    }

    #[test]
    fn merges_files_with_the_rule() {
        let dir = tempfile::tempdir().unwrap();
        let ins = vec![
            write(dir.path(), "1.safetensors", &[1.0, 2.0], &[0.0]),
            write(dir.path(), "2.safetensors", &[3.0, -2.0], &[10.0]),
            write(dir.path(), "3.safetensors", &[2.0, 100.0], &[1.0]),
        ];
        let out = dir.path().join("out.safetensors");
        run(args("median", ins.clone(), out.clone())).unwrap();
        let got = read(&out, None).unwrap();
        assert_eq!(got.get("a").unwrap().data, vec![2.0, 2.0]);
        assert_eq!(got.get("b.weight").unwrap().data, vec![1.0]);
        assert_eq!(got.get("b.weight").unwrap().shape, vec![1, 1]);

        let mut a = args("weighted-mean", ins, out.clone());
        a.weights = vec![1.0, 0.0, 1.0];
        run(a).unwrap();
        assert_eq!(
            read(&out, None).unwrap().get("a").unwrap().data,
            vec![1.5, 51.0]
        );
    }

    #[test]
    fn refuses_inputs_with_other_tensors() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(dir.path(), "1.safetensors", &[1.0, 2.0], &[0.0]);
        let b = write(dir.path(), "2.safetensors", &[1.0, 2.0, 3.0], &[0.0]);
        let out = dir.path().join("out.safetensors");
        let e = run(args("mean", vec![a.clone(), b], out.clone())).unwrap_err();
        assert!(format!("{e:#}").contains("2.safetensors"), "{e:#}");
        assert!(!out.exists());
        let e = run(args("krum:1", vec![a.clone(), a], out)).unwrap_err();
        assert!(format!("{e:#}").contains("2F + 3"), "{e:#}");
    }

    #[test]
    fn outer_steps_chain_through_the_state_file() {
        let dir = tempfile::tempdir().unwrap();
        let base = write(dir.path(), "base.safetensors", &[1.0, 1.0], &[1.0]);
        let d1 = write(dir.path(), "d1.safetensors", &[0.5, -0.5], &[0.25]);
        let d2 = write(dir.path(), "d2.safetensors", &[0.5, -0.5], &[0.25]);
        let out1 = dir.path().join("ckpt1.safetensors");
        let mut a = args("mean", vec![d1.clone(), d2.clone()], out1.clone());
        a.outer = Some("nesterov:1,0.5".parse().unwrap());
        a.base = Some(base);
        run(a).unwrap();
        // θ1 = θ0 + (Δ + 0.5 Δ) with m = Δ
        assert_eq!(
            read(&out1, None).unwrap().get("a").unwrap().data,
            vec![1.75, 0.25]
        );
        let state1 = dir.path().join("ckpt1.outer.safetensors");
        let st = read(&state1, None).unwrap();
        assert_eq!(st.get("step").unwrap().data, vec![1.0]);
        assert_eq!(st.get("momentum/a").unwrap().data, vec![0.5, -0.5]);
        assert_eq!(st.get("momentum/b.weight").unwrap().shape, vec![1, 1]);

        let out2 = dir.path().join("ckpt2.safetensors");
        let mut a = args("mean", vec![d1.clone(), d2.clone()], out2.clone());
        a.outer = Some("nesterov:1,0.5".parse().unwrap());
        a.base = Some(out1.clone());
        a.state_in = Some(state1.clone());
        run(a).unwrap();
        // m = 0.5·0.5 + 0.5 = 0.75; θ2 = 1.75 + (0.5 + 0.5·0.75)
        assert_eq!(read(&out2, None).unwrap().get("a").unwrap().data[0], 2.625);

        // a state of another optimizer is refused
        let mut a = args("mean", vec![d1, d2], dir.path().join("x.safetensors"));
        a.outer = Some("adam:1,0.9,0.99,1e-8".parse().unwrap());
        a.base = Some(out1);
        a.state_in = Some(state1);
        let e = run(a).unwrap_err();
        assert!(format!("{e:#}").contains("optimizer state"), "{e:#}");
    }

    /// The orchestrator's stored outer state and `funetun aggregate
    /// --state-in/--state-out` are one format: the CLI continues a job's
    /// round from the orchestrator's state to the same checkpoint and state
    /// bytes the orchestrator builds.
    #[test]
    fn the_orchestrators_outer_state_continues_in_the_cli() {
        use funetun_ml::Architecture as _;
        use funetun_orchestrator::rounds::{Input, build_checkpoint, initial_checkpoint};
        use funetun_orchestrator::state::JobInfo;

        let spec = funetun_core::JobSpec {
            outer_optimizer: "nesterov:0.7,0.9".into(),
            aggregation: "mean".into(),
            dataset: funetun_ml::DatasetName::Synthetic(0),
            ..funetun_core::JobSpec::default()
        };
        let info = JobInfo::resolve(1, spec, 1, vec![0; 32]).unwrap();
        let exec = Exec::sequential();
        let deltas: Vec<Vec<u8>> = [5u64, 6, 7]
            .iter()
            .map(|&seed| {
                let mut d = funetun_ml::Model::Mlp.init(seed);
                for (_, t) in d.iter_mut() {
                    t.data.iter_mut().for_each(|v| *v *= 0.01);
                }
                encode(&d)
            })
            .collect();
        let inputs = |round: u64| -> Vec<Input> {
            deltas
                .iter()
                .enumerate()
                .map(|(i, d)| Input {
                    index: alloy_primitives::U256::from(i),
                    trainer: alloy_primitives::Address::repeat_byte(i as u8 + 1),
                    update: funetun_core::keccak256(d),
                    base_round: round,
                    base: alloy_primitives::B256::ZERO,
                })
                .collect()
        };
        let theta0 = initial_checkpoint(&info);
        let h = |b: &[u8]| funetun_core::keccak256(b);
        let r0 = build_checkpoint(
            &info,
            0,
            h(&theta0),
            &theta0,
            &inputs(0),
            &deltas,
            None,
            &exec,
        )
        .unwrap();
        let outer = r0.outer_state.as_deref().map(|b| (h(b), b));
        let r1 = build_checkpoint(
            &info,
            1,
            h(&r0.checkpoint),
            &r0.checkpoint,
            &inputs(1),
            &deltas,
            outer,
            &exec,
        )
        .unwrap();

        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("theta1.safetensors");
        std::fs::write(&base, &r0.checkpoint).unwrap();
        let state_in = dir.path().join("theta1.outer.safetensors");
        std::fs::write(&state_in, r0.outer_state.as_deref().unwrap()).unwrap();
        let inputs: Vec<PathBuf> = deltas
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let p = dir.path().join(format!("d{i}.safetensors"));
                std::fs::write(&p, d).unwrap();
                p
            })
            .collect();
        let out = dir.path().join("theta2.safetensors");
        let mut a = args("mean", inputs, out.clone());
        a.outer = Some("nesterov:0.7,0.9".parse().unwrap());
        a.base = Some(base);
        a.state_in = Some(state_in);
        run(a).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), r1.checkpoint);
        let state_out = dir.path().join("theta2.outer.safetensors");
        assert_eq!(
            std::fs::read(state_out).unwrap(),
            r1.outer_state.unwrap(),
            "the CLI writes the state the orchestrator would store"
        );
    }

    #[test]
    fn bench_reports_a_ratio() {
        bench(AggregateBenchArgs {
            rule: "median".parse().unwrap(),
            n: 5,
            d: 1000,
            threads: 1,
            repeat: 1,
            simd: Some("portable".into()),
        })
        .unwrap();
        assert!(
            bench(AggregateBenchArgs {
                rule: "median".parse().unwrap(),
                n: 5,
                d: usize::MAX / 2,
                threads: 1,
                repeat: 1,
                simd: None,
            })
            .is_err()
        );
    }
}
