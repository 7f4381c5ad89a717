//! The outer optimizers against PyTorch (values from `outer_reference.py`
//! beside this file), and their state.

use funetun_aggregate::{Error, Exec, Outer, OuterState};

const THETA0: [f32; 6] = [0.5, -1.0, 2.0, 0.0, 1e-3, -7.25];
const DELTAS: [[f32; 6]; 3] = [
    [0.1, -0.2, 0.05, 0.0, 1e-4, 3.0],
    [0.12, 0.3, -0.05, 1e-3, -2e-4, -1.0],
    [-0.4, -0.1, 0.0, 2e-3, 5e-5, 0.5],
];

// torch.optim.SGD(lr=0.7, momentum=0.9, nesterov=True), grad = -delta
const NESTEROV: [[f32; 6]; 3] = [
    [0.633, -1.266, 2.0665, 0.0, 0.001133, -3.2600002],
    [0.8493, -0.9804, 2.0283499, 0.00133, 0.0009237, -2.8890004],
    [
        0.43637002, -1.04536, 2.0255148, 0.004557, 0.00092783, -1.2601007,
    ],
];
// torch.optim.Adam(lr=0.01, betas=(0.9, 0.99), eps=1e-8), grad = -delta
const ADAM: [[f32; 6]; 3] = [
    [0.51, -1.01, 2.01, 0.0, 0.010999001, -7.24],
    [
        0.52000207,
        -1.0075251,
        2.0094736,
        0.007424493,
        0.0073431544,
        -7.2359905,
    ],
    [
        0.5168744,
        -1.0073882,
        2.0090659,
        0.01568032,
        0.0059754523,
        -7.2319207,
    ],
];

fn follow(o: &Outer, want: &[[f32; 6]; 3]) {
    let mut theta = THETA0.to_vec();
    let mut st = o.init_state(6);
    for (round, (delta, want)) in DELTAS.iter().zip(want).enumerate() {
        o.step(&mut theta, delta, &mut st, &Exec::sequential())
            .unwrap();
        for (g, w) in theta.iter().zip(want) {
            assert!(
                (g - w).abs() <= 2e-6 * (1.0 + w.abs()),
                "{o} round {round}: {theta:?} vs {want:?}"
            );
        }
    }
    assert_eq!(st.step, 3);
}

#[test]
fn nesterov_matches_torch() {
    follow(&"nesterov:0.7,0.9".parse().unwrap(), &NESTEROV);
}

#[test]
fn adam_matches_torch() {
    follow(&"adam:0.01,0.9,0.99,1e-8".parse().unwrap(), &ADAM);
}

#[test]
fn sgd_adds_the_scaled_delta() {
    let o: Outer = "sgd:0.5".parse().unwrap();
    let mut theta = THETA0.to_vec();
    let mut st = o.init_state(6);
    o.step(&mut theta, &DELTAS[0], &mut st, &Exec::sequential())
        .unwrap();
    let want: Vec<f32> = THETA0
        .iter()
        .zip(&DELTAS[0])
        .map(|(t, d)| t + 0.5 * d)
        .collect();
    assert_eq!(theta, want);
    assert!(st.slots.is_empty());
}

#[test]
fn a_stored_and_restored_state_continues_the_same_run() {
    let o: Outer = "adam:0.01,0.9,0.99,1e-8".parse().unwrap();
    let mut theta = THETA0.to_vec();
    let mut st = o.init_state(6);
    o.step(&mut theta, &DELTAS[0], &mut st, &Exec::sequential())
        .unwrap();
    // what a caller stores beside the checkpoint, and reads back
    let names: Vec<String> = st.slots.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(names, o.slot_names());
    let restored = OuterState {
        step: st.step,
        slots: st
            .slots
            .iter()
            .map(|(n, b)| (n.clone(), b.clone()))
            .collect(),
    };
    let mut a = theta.clone();
    let mut sa = st;
    let mut b = theta;
    let mut sb = restored;
    for d in &DELTAS[1..] {
        o.step(&mut a, d, &mut sa, &Exec::sequential()).unwrap();
        o.step(&mut b, d, &mut sb, &Exec::with_threads(2).unwrap())
            .unwrap();
    }
    assert_eq!(a, b);
    assert_eq!(sa, sb);
}

#[test]
fn foreign_or_broken_state_is_refused() {
    let o: Outer = "nesterov:0.7,0.9".parse().unwrap();
    let mut theta = THETA0.to_vec();
    let ex = Exec::sequential();
    let mut st = OuterState {
        step: 1,
        slots: vec![("exp_avg".into(), vec![0.0; 6])],
    };
    assert!(matches!(
        o.step(&mut theta, &DELTAS[0], &mut st, &ex),
        Err(Error::State(_))
    ));
    let mut st = OuterState {
        step: 1,
        slots: vec![("momentum".into(), vec![f32::NAN; 6])],
    };
    assert!(matches!(
        o.step(&mut theta, &DELTAS[0], &mut st, &ex),
        Err(Error::State(_))
    ));
    let mut st = o.init_state(5);
    assert!(matches!(
        o.step(&mut theta, &DELTAS[0], &mut st, &ex),
        Err(Error::LengthMismatch { .. })
    ));
    assert_eq!(theta, THETA0.to_vec());
}
