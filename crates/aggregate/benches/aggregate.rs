//! Criterion benches for every rule and outer optimizer, beside the
//! read-once memory baseline measured in the same run.
//!
//! Throughput is the input bytes read (`n * d * 4`), so the `read-once` line
//! is the machine's memory bandwidth and every rule's line compares with it.
//! Sizes are moderate (`d = 2^20`, 4 to 160 MB of inputs) so that
//! `cargo bench -p funetun-aggregate` finishes in a few minutes; use
//! `funetun bench aggregate` for full-size runs.

// `criterion_group!` defines a public function without documentation.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use funetun_aggregate::{Exec, Options, Outer, Rule, membw};

const D: usize = 1 << 20;

fn inputs(n: usize, d: usize) -> Vec<Vec<f32>> {
    let mut s = 0x2545_f491_4f6c_dd1du64;
    (0..n)
        .map(|_| {
            (0..d)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
                })
                .collect()
        })
        .collect()
}

fn rules(c: &mut Criterion) {
    let exec = Exec::current();
    let weights = vec![1.0f64; 64];
    let cases: &[(usize, &[&str])] = &[
        (
            16,
            &[
                "mean",
                "weighted-mean",
                "median",
                "trimmed-mean:2",
                "krum:3",
                "multi-krum:3,8",
                "geometric-median:10,0",
                "centered-clip:1",
                "norm-clip:1/median",
            ],
        ),
        (5, &["median", "trimmed-mean:1"]),
        (40, &["median", "trimmed-mean:8"]),
    ];
    for &(n, names) in cases {
        let data = inputs(n, D);
        let views: Vec<&[f32]> = data.iter().map(|r| r.as_slice()).collect();
        let mut g = c.benchmark_group(format!("aggregate/n={n}/d={D}"));
        g.throughput(Throughput::Bytes((n * D * 4) as u64))
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
        g.bench_function("read-once", |b| {
            b.iter(|| black_box(membw::read_once(&views, &exec)))
        });
        let opts = Options {
            weights: Some(&weights[..n]),
            ..Options::default()
        };
        let mut out = vec![0.0f32; D];
        for name in names {
            let rule: Rule = name.parse().unwrap();
            g.bench_with_input(BenchmarkId::from_parameter(name), &rule, |b, rule| {
                b.iter(|| rule.aggregate_into(&views, &opts, &exec, &mut out).unwrap())
            });
        }
        g.finish();
    }
}

fn outer(c: &mut Criterion) {
    let exec = Exec::current();
    let data = inputs(2, D);
    let mut g = c.benchmark_group(format!("outer/d={D}"));
    // parameters and delta read, parameters written
    g.throughput(Throughput::Bytes((3 * D * 4) as u64))
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for name in ["sgd:1", "nesterov:0.7,0.9", "adam:1e-3,0.9,0.99,1e-8"] {
        let o: Outer = name.parse().unwrap();
        let mut theta = data[0].clone();
        let mut state = o.init_state(D);
        g.bench_function(name, |b| {
            b.iter(|| {
                // keep the parameters bounded across iterations
                theta.copy_from_slice(&data[0]);
                o.step(&mut theta, &data[1], &mut state, &exec).unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, rules, outer);
criterion_main!(benches);
