//! Every endpoint and every refusal, through `app(state)` with `oneshot`, on
//! a real dev chain and real SQLite.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use alloy_primitives::{Address, B256, U256};
use alloy_signer_local::PrivateKeySigner;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use funetun_core::api::{
    ErrorBody, JobDetail, JobSummary, ParticipantInfo, RoundInfo, Task, UpdateAck, UpdateInfo,
    ValidationAck, ValidationAssignment,
};
use funetun_core::auth::sign_request;
use funetun_core::protocol::{JobStatus, Role, RoundStatus, UpdateStatus, ValidationMode};
use funetun_core::sync::SyncPolicy;
use funetun_core::{JobSpec, encode, keccak256};
use funetun_ml::{Architecture as _, Model};
use funetun_orchestrator::{AppState, Config, app, driver};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::common::{Env, tiny_spec};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

static NONCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn fresh_nonce() -> String {
    format!(
        "test-{}-{}",
        std::process::id(),
        NONCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

/// A request signed by `key` at `ts` with `nonce`.
fn signed_with(
    key: &PrivateKeySigner,
    method: &str,
    path: &str,
    body: Vec<u8>,
    ts: u64,
    nonce: &str,
) -> Request<Body> {
    let auth = sign_request(key, method, path, &body, ts, nonce);
    let mut req = Request::builder().method(method).uri(path);
    for (name, value) in auth.headers() {
        req = req.header(name, value);
    }
    req.header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap()
}

fn signed(key: &PrivateKeySigner, method: &str, path: &str, body: Vec<u8>) -> Request<Body> {
    signed_with(key, method, path, body, now(), &fresh_nonce())
}

fn post(key: &PrivateKeySigner, path: &str, body: Value) -> Request<Body> {
    signed(key, "POST", path, serde_json::to_vec(&body).unwrap())
}

fn get(path: &str) -> Request<Body> {
    Request::builder().uri(path).body(Body::empty()).unwrap()
}

async fn call(app: &Router, req: Request<Body>) -> (StatusCode, Vec<u8>) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, bytes.to_vec())
}

async fn call_json<T: serde::de::DeserializeOwned>(
    app: &Router,
    req: Request<Body>,
) -> (StatusCode, T) {
    let (status, bytes) = call(app, req).await;
    let value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{status}: {e}: {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(500)])
        )
    });
    (status, value)
}

/// Asserts a refusal's status and code.
async fn refused(app: &Router, req: Request<Body>, status: StatusCode, code: &str) {
    let (got, body): (StatusCode, ErrorBody) = call_json(app, req).await;
    assert_eq!(
        (got, body.error.as_str()),
        (status, code),
        "{}",
        body.detail
    );
    assert!(!body.detail.is_empty());
}

/// A started job (round 0 open) with trainers 2, 3 and validator 4.
struct Fixture {
    env: Env,
    state: Arc<AppState>,
    app: Router,
    job: u64,
    spec: JobSpec,
}

async fn fixture_with(spec: JobSpec, tune: impl FnOnce(&mut Config)) -> Fixture {
    let env = Env::new().await;
    let mut config = env.config();
    tune(&mut config);
    let state = AppState::open(config).await.unwrap();
    let app = app(state.clone());
    let text = spec.to_toml().into_bytes();
    let path = format!("/v1/blobs/{}?kind=spec", keccak256(&text));
    let (status, _) = call(&app, signed(&env.keys[0], "PUT", &path, text)).await;
    assert_eq!(status, StatusCode::CREATED);
    let job = env.create_job(&spec).await;
    env.register_trainer(2).await;
    env.register_trainer(3).await;
    env.register_validator(4).await;
    driver::step(&state).await.unwrap();
    assert_eq!(
        state.job_status(job).await.unwrap(),
        Some(JobStatus::Active)
    );
    // The next step sees checkpoint 0's event.
    driver::step(&state).await.unwrap();
    Fixture {
        env,
        state,
        app,
        job,
        spec,
    }
}

async fn fixture() -> Fixture {
    fixture_with(tiny_spec(1.0), |_| {}).await
}

fn lease_body(job: u64) -> Value {
    json!({ "job_id": job, "capacity": "M" })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_requests_are_refused_for_every_flaw() {
    let f = fixture().await;
    let key = &f.env.keys[2];
    let body = serde_json::to_vec(&lease_body(f.job)).unwrap();

    // Unsigned.
    let req = Request::post("/v1/tasks")
        .body(Body::from(body.clone()))
        .unwrap();
    refused(&f.app, req, StatusCode::UNAUTHORIZED, "unsigned").await;

    // A malformed signature header.
    let mut req = signed(key, "POST", "/v1/tasks", body.clone());
    req.headers_mut()
        .insert("x-funetun-signature", "0x1234".parse().unwrap());
    refused(&f.app, req, StatusCode::UNAUTHORIZED, "bad_signature").await;

    // Signed by another key than the claimed address.
    let mut req = signed(key, "POST", "/v1/tasks", body.clone());
    req.headers_mut().insert(
        "x-funetun-address",
        f.env.keys[3].address().to_string().parse().unwrap(),
    );
    refused(&f.app, req, StatusCode::UNAUTHORIZED, "wrong_signer").await;

    // The body changed after signing.
    let auth = sign_request(key, "POST", "/v1/tasks", b"{}", now(), &fresh_nonce());
    let mut req = Request::post("/v1/tasks");
    for (n, v) in auth.headers() {
        req = req.header(n, v);
    }
    let req = req.body(Body::from(body.clone())).unwrap();
    refused(&f.app, req, StatusCode::UNAUTHORIZED, "wrong_signer").await;

    // Stale and future timestamps.
    let req = signed_with(
        key,
        "POST",
        "/v1/tasks",
        body.clone(),
        now() - 600,
        "nonce-stale",
    );
    refused(&f.app, req, StatusCode::UNAUTHORIZED, "stale_timestamp").await;
    let req = signed_with(
        key,
        "POST",
        "/v1/tasks",
        body.clone(),
        now() + 600,
        "nonce-future",
    );
    refused(&f.app, req, StatusCode::UNAUTHORIZED, "stale_timestamp").await;

    // A replayed nonce.
    let ts = now();
    let req = signed_with(key, "POST", "/v1/tasks", body.clone(), ts, "nonce-replay");
    assert_eq!(call(&f.app, req).await.0, StatusCode::OK);
    let req = signed_with(key, "POST", "/v1/tasks", body.clone(), ts, "nonce-replay");
    refused(&f.app, req, StatusCode::UNAUTHORIZED, "replayed_nonce").await;

    // Bad JSON, and JSON of the wrong shape.
    let req = signed(key, "POST", "/v1/tasks", b"{not json".to_vec());
    refused(&f.app, req, StatusCode::BAD_REQUEST, "bad_json").await;
    let req = post(key, "/v1/tasks", json!({ "job": 1 }));
    refused(&f.app, req, StatusCode::BAD_REQUEST, "bad_json").await;

    // An oversize JSON body.
    let req = signed(key, "POST", "/v1/tasks", vec![b' '; 65 * 1024]);
    refused(&f.app, req, StatusCode::PAYLOAD_TOO_LARGE, "too_large").await;

    // Unknown job.
    let req = post(key, "/v1/tasks", lease_body(999));
    refused(&f.app, req, StatusCode::NOT_FOUND, "unknown_job").await;

    // Wrong role: the validator-only account asks for a task, a trainer asks for checks.
    let req = post(&f.env.keys[4], "/v1/tasks", lease_body(f.job));
    refused(&f.app, req, StatusCode::FORBIDDEN, "not_trainer").await;
    let req = post(key, "/v1/validations/next", json!({}));
    refused(&f.app, req, StatusCode::FORBIDDEN, "not_validator").await;
    let req = post(&f.env.keys[7], "/v1/tasks", lease_body(f.job));
    refused(&f.app, req, StatusCode::FORBIDDEN, "not_trainer").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_answers_429() {
    let f = fixture_with(tiny_spec(1.0), |c| {
        c.auth.rate_per_sec = 0.001;
        c.auth.rate_burst = 3.0;
    })
    .await;
    let key = &f.env.keys[2];
    for _ in 0..3 {
        let (status, _) = call(&f.app, post(key, "/v1/tasks", lease_body(f.job))).await;
        assert_eq!(status, StatusCode::OK);
    }
    refused(
        &f.app,
        post(key, "/v1/tasks", lease_body(f.job)),
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
    )
    .await;
    // Another address has its own bucket.
    let (status, _) = call(&f.app, post(&f.env.keys[3], "/v1/tasks", lease_body(f.job))).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_are_handed_out_per_shard_and_handed_back() {
    let f = fixture_with(
        JobSpec {
            shards: 1,
            ..tiny_spec(1.0)
        },
        |_| {},
    )
    .await;
    let (status, task): (_, Task) =
        call_json(&f.app, post(&f.env.keys[2], "/v1/tasks", lease_body(f.job))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (task.job_id, task.round, task.shard, task.shards),
        (f.job, 0, 0, 1)
    );
    assert_eq!(task.steps, f.spec.steps);
    assert_eq!(
        task.seed,
        funetun_orchestrator::scheduler::task_seed(f.spec.seed, 0, 0)
    );
    assert_eq!(
        task.base_hash,
        keccak256(encode(&Model::Mlp.init(f.spec.seed)))
    );
    // The holder gets the same lease back (through the seeds' alias too).
    let (_, again): (_, Task) =
        call_json(&f.app, post(&f.env.keys[2], "/get_task", lease_body(f.job))).await;
    assert_eq!(again, task);
    // A `sync` job ignores `holding`: the held lease is handed back.
    let holding = json!({ "job_id": f.job, "capacity": "M", "holding": task.task_id });
    let (_, again): (_, Task) = call_json(&f.app, post(&f.env.keys[2], "/v1/tasks", holding)).await;
    assert_eq!(again, task);
    // The only shard is taken: nothing for another trainer.
    let (status, body) = call(&f.app, post(&f.env.keys[3], "/v1/tasks", lease_body(f.job))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(body.is_empty());
    // Under `stale:S` a trainer `holding` its finished task is not handed it
    // back but gets the next shard; asked again, that one.
    let stale = fixture_with(
        JobSpec {
            sync: SyncPolicy::Stale { max: 1 },
            // Outer momentum is refused under `stale:S`.
            outer_optimizer: "sgd".into(),
            ..tiny_spec(1.0)
        },
        |_| {},
    )
    .await;
    let (_, first): (_, Task) = call_json(
        &stale.app,
        post(&stale.env.keys[2], "/v1/tasks", lease_body(stale.job)),
    )
    .await;
    let holding = json!({ "job_id": stale.job, "capacity": "M", "holding": first.task_id });
    let (_, next): (_, Task) = call_json(
        &stale.app,
        post(&stale.env.keys[2], "/v1/tasks", holding.clone()),
    )
    .await;
    assert_ne!(next.task_id, first.task_id);
    assert_ne!(next.shard, first.shard);
    let (_, next_again): (_, Task) =
        call_json(&stale.app, post(&stale.env.keys[2], "/v1/tasks", holding)).await;
    assert_eq!(next_again, next);
    // Capacity L needs a reputation of four full tasks (docs/reputation.md):
    // a new trainer declaring L gets the M task, one declaring S half of it.
    let f2 = fixture().await;
    let (_, big): (_, Task) = call_json(
        &f2.app,
        post(
            &f2.env.keys[2],
            "/v1/tasks",
            json!({ "job_id": f2.job, "capacity": "L" }),
        ),
    )
    .await;
    assert_eq!(big.steps, f2.spec.steps);
    let (_, small): (_, Task) = call_json(
        &f2.app,
        post(
            &f2.env.keys[3],
            "/v1/tasks",
            json!({ "job_id": f2.job, "capacity": "S" }),
        ),
    )
    .await;
    assert_eq!(small.steps, f2.spec.steps.div_ceil(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_task_is_released_and_its_reason_kept() {
    let f = fixture_with(
        JobSpec {
            shards: 1,
            ..tiny_spec(1.0)
        },
        |_| {},
    )
    .await;
    let (_, task): (_, Task) =
        call_json(&f.app, post(&f.env.keys[2], "/v1/tasks", lease_body(f.job))).await;
    // Only the holder may give its task up, with a reason of sensible size.
    let report = |reason: &str| json!({ "task_id": task.task_id, "reason": reason });
    refused(
        &f.app,
        post(&f.env.keys[3], "/v1/failures", report("not mine")),
        StatusCode::FORBIDDEN,
        "not_your_task",
    )
    .await;
    refused(
        &f.app,
        post(&f.env.keys[2], "/v1/failures", report("  ")),
        StatusCode::BAD_REQUEST,
        "invalid_reason",
    )
    .await;
    refused(
        &f.app,
        post(&f.env.keys[2], "/v1/failures", report(&"x".repeat(1001))),
        StatusCode::BAD_REQUEST,
        "invalid_reason",
    )
    .await;
    refused(
        &f.app,
        post(
            &f.env.keys[2],
            "/v1/failures",
            json!({ "task_id": 9_999, "reason": "gone" }),
        ),
        StatusCode::NOT_FOUND,
        "unknown_task",
    )
    .await;
    let (status, ack): (_, Value) = call_json(
        &f.app,
        post(&f.env.keys[2], "/v1/failures", report("mnist not found")),
    )
    .await;
    assert_eq!(
        (status, &ack),
        (StatusCode::OK, &json!({ "released": true }))
    );
    refused(
        &f.app,
        post(&f.env.keys[2], "/v1/failures", report("again")),
        StatusCode::CONFLICT,
        "already_reported",
    )
    .await;
    // The only shard is free again: another trainer gets it at once.
    let (status, other): (_, Task) =
        call_json(&f.app, post(&f.env.keys[3], "/v1/tasks", lease_body(f.job))).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(other.task_id, task.task_id);
    assert_eq!(other.shard, task.shard);
    // The reason is public, for the owner.
    let (status, failures): (_, Vec<funetun_core::api::FailureInfo>) =
        call_json(&f.app, get(&format!("/v1/jobs/{}/failures", f.job))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(
        (
            failures[0].trainer,
            failures[0].reason.as_str(),
            failures[0].count
        ),
        (f.env.keys[2].address(), "mnist not found", 1)
    );
    assert_eq!(failures[0].last_task_id, task.task_id);
    refused(
        &f.app,
        get("/v1/jobs/999/failures"),
        StatusCode::NOT_FOUND,
        "unknown_job",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_are_checked_before_they_are_stored() {
    let f = fixture().await;
    let key = &f.env.keys[2];
    let delta = encode(&Model::Mlp.zeros());
    let hash = keccak256(&delta);
    let put = |path: String, body: Vec<u8>| signed(key, "PUT", &path, body);

    // Hash mismatch.
    let req = put(
        format!("/v1/blobs/{}?job={}", B256::repeat_byte(1), f.job),
        delta.clone(),
    );
    refused(&f.app, req, StatusCode::BAD_REQUEST, "hash_mismatch").await;
    // Not a tensor file of the job's model.
    let junk = b"not a tensor file".to_vec();
    let req = put(
        format!("/v1/blobs/{}?job={}", keccak256(&junk), f.job),
        junk,
    );
    refused(&f.app, req, StatusCode::BAD_REQUEST, "bad_tensor").await;
    let cnn = encode(&Model::Cnn.zeros());
    let req = put(format!("/v1/blobs/{}?job={}", keccak256(&cnn), f.job), cnn);
    refused(&f.app, req, StatusCode::BAD_REQUEST, "bad_tensor").await;
    // Larger than the model allows.
    let big = vec![0u8; funetun_orchestrator::state::blob_limit(Model::Mlp) + 1];
    let req = put(format!("/v1/blobs/{}?job={}", keccak256(&big), f.job), big);
    refused(&f.app, req, StatusCode::PAYLOAD_TOO_LARGE, "too_large").await;
    // Unknown job, bad hash, bad query, wrong role.
    let req = put(format!("/v1/blobs/{hash}?job=999"), delta.clone());
    refused(&f.app, req, StatusCode::NOT_FOUND, "unknown_job").await;
    let req = put(format!("/v1/blobs/0x12?job={}", f.job), delta.clone());
    refused(&f.app, req, StatusCode::BAD_REQUEST, "bad_hash").await;
    let req = put(format!("/v1/blobs/{hash}"), delta.clone());
    refused(&f.app, req, StatusCode::BAD_REQUEST, "bad_query").await;
    let req = put(format!("/v1/blobs/{hash}?job=x"), delta.clone());
    refused(&f.app, req, StatusCode::BAD_REQUEST, "bad_query").await;
    let req = signed(
        &f.env.keys[4],
        "PUT",
        &format!("/v1/blobs/{hash}?job={}", f.job),
        delta.clone(),
    );
    refused(&f.app, req, StatusCode::FORBIDDEN, "not_trainer").await;
    // Unsigned uploads.
    let req = Request::put(format!("/v1/blobs/{hash}?job={}", f.job))
        .body(Body::from(delta.clone()))
        .unwrap();
    refused(&f.app, req, StatusCode::UNAUTHORIZED, "unsigned").await;

    // Nothing was stored; a good upload is, once.
    refused(
        &f.app,
        get(&format!("/v1/blobs/{hash}")),
        StatusCode::NOT_FOUND,
        "unknown_blob",
    )
    .await;
    let (status, _) = call(
        &f.app,
        put(format!("/v1/blobs/{hash}?job={}", f.job), delta.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = call(
        &f.app,
        put(format!("/v1/blobs/{hash}?job={}", f.job), delta.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, bytes) = call(&f.app, get(&format!("/v1/blobs/{hash}"))).await;
    assert_eq!((status, bytes), (StatusCode::OK, delta));

    // Specs: any signer, must parse, at most MAX_SPEC_BYTES.
    let bad = b"rounds = 0".to_vec();
    let req = put(format!("/v1/blobs/{}?kind=spec", keccak256(&bad)), bad);
    refused(&f.app, req, StatusCode::BAD_REQUEST, "bad_spec").await;
    let huge = vec![b'#'; funetun_core::spec::MAX_SPEC_BYTES + 1];
    let req = put(format!("/v1/blobs/{}?kind=spec", keccak256(&huge)), huge);
    refused(&f.app, req, StatusCode::PAYLOAD_TOO_LARGE, "too_large").await;
    let good = JobSpec::default().to_toml().into_bytes();
    let req = signed(
        &f.env.keys[9],
        "PUT",
        &format!("/v1/blobs/{}?kind=spec", keccak256(&good)),
        good,
    );
    assert_eq!(call(&f.app, req).await.0, StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_data_is_streamed_checked_and_a_spec_naming_a_missing_blob_is_refused() {
    let f = fixture_with(tiny_spec(0.0), |c| c.auth.max_data_bytes = 1 << 20).await;
    let owner = &f.env.keys[9];
    let corpus: Vec<u8> = "To be, or not to be, that is the question.\n"
        .repeat(2000)
        .into_bytes();
    let hash = keccak256(&corpus);
    let path = format!("/v1/blobs/{hash}?kind=data");
    let text_spec = |corpus: B256| {
        format!(
            "model = \"gpt\"\ndataset = \"text:{corpus}:byte\"\n[transformer]\nconfig = \"tiny\"\n"
        )
        .into_bytes()
    };

    // A spec naming a blob that is not stored is refused.
    let spec = text_spec(hash);
    let spec_path = format!("/v1/blobs/{}?kind=spec", keccak256(&spec));
    refused(
        &f.app,
        signed(owner, "PUT", &spec_path, spec.clone()),
        StatusCode::BAD_REQUEST,
        "missing_blob",
    )
    .await;

    // Bytes that do not hash to the name are refused and leave nothing.
    let mut damaged = corpus.clone();
    damaged[7] ^= 1;
    let auth =
        funetun_core::auth::sign_hashed_request(owner, "PUT", &path, hash, now(), &fresh_nonce());
    let mut req = Request::put(&path);
    for (name, value) in auth.headers() {
        req = req.header(name, value);
    }
    let req = req.body(Body::from(damaged)).unwrap();
    refused(&f.app, req, StatusCode::BAD_REQUEST, "hash_mismatch").await;
    refused(
        &f.app,
        get(&format!("/v1/blobs/{hash}")),
        StatusCode::NOT_FOUND,
        "unknown_blob",
    )
    .await;
    // Larger than the limit; unsigned.
    let big = vec![b'a'; (1 << 20) + 1];
    let big_path = format!("/v1/blobs/{}?kind=data", keccak256(&big));
    refused(
        &f.app,
        signed(owner, "PUT", &big_path, big),
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
    )
    .await;
    let req = Request::put(&path)
        .body(Body::from(corpus.clone()))
        .unwrap();
    refused(&f.app, req, StatusCode::UNAUTHORIZED, "unsigned").await;

    // The right bytes are stored once and served back whole.
    let (status, _) = call(&f.app, signed(owner, "PUT", &path, corpus.clone())).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = call(&f.app, signed(owner, "PUT", &path, corpus.clone())).await;
    assert_eq!(status, StatusCode::OK);
    let (status, bytes) = call(&f.app, get(&format!("/v1/blobs/{hash}"))).await;
    assert_eq!((status, bytes), (StatusCode::OK, corpus));
    // Now the spec that names it is accepted.
    let (status, _) = call(&f.app, signed(owner, "PUT", &spec_path, spec)).await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_and_votes_are_checked_against_the_chain() {
    let f = fixture().await;
    let trainer = &f.env.keys[2];
    let (_, task): (_, Task) =
        call_json(&f.app, post(trainer, "/v1/tasks", lease_body(f.job))).await;
    let delta = encode(&Model::Mlp.zeros());
    let hash = keccak256(&delta);
    let report = |tx: B256, h: B256| {
        json!({ "task_id": task.task_id, "update_hash": h, "tx_hash": tx,
                "loss_before": 2.3, "loss_after": 2.1 })
    };

    // Unknown task; another trainer's task; the blob not uploaded yet.
    let req = post(
        trainer,
        "/v1/updates",
        json!({ "task_id": 999, "update_hash": hash,
        "tx_hash": B256::ZERO, "loss_before": 1.0, "loss_after": 1.0 }),
    );
    refused(&f.app, req, StatusCode::NOT_FOUND, "unknown_task").await;
    // A loss beyond f32 (infinite once read) is refused, not stored as 0.
    let req = post(
        trainer,
        "/v1/updates",
        json!({ "task_id": task.task_id, "update_hash": hash,
        "tx_hash": B256::ZERO, "loss_before": 1e39, "loss_after": 1.0 }),
    );
    refused(&f.app, req, StatusCode::BAD_REQUEST, "bad_loss").await;
    let req = post(&f.env.keys[3], "/v1/updates", report(B256::ZERO, hash));
    refused(&f.app, req, StatusCode::FORBIDDEN, "not_lease_holder").await;
    let req = post(trainer, "/v1/updates", report(B256::ZERO, hash));
    refused(&f.app, req, StatusCode::CONFLICT, "missing_blob").await;

    let path = format!("/v1/blobs/{hash}?job={}", f.job);
    assert_eq!(
        call(&f.app, signed(trainer, "PUT", &path, delta)).await.0,
        StatusCode::CREATED
    );
    // No such transaction; a transaction that is not this submission.
    let req = post(trainer, "/v1/updates", report(B256::repeat_byte(9), hash));
    refused(&f.app, req, StatusCode::CONFLICT, "tx_not_found").await;
    let other = f.env.register_trainer_tx(5).await;
    let req = post(trainer, "/v1/updates", report(other, hash));
    refused(&f.app, req, StatusCode::BAD_REQUEST, "wrong_tx").await;

    let (_, outcome) = f
        .env
        .ledger(2)
        .submit_update(U256::from(f.job), 0, task.slot, hash)
        .await
        .unwrap();
    // The right transaction but another hash than committed.
    let req = post(
        trainer,
        "/v1/updates",
        report(outcome.tx_hash, B256::repeat_byte(3)),
    );
    let (status, _) = call(&f.app, req).await;
    assert!(status.is_client_error());
    let (status, ack): (_, UpdateAck) = call_json(
        &f.app,
        post(trainer, "/v1/updates", report(outcome.tx_hash, hash)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ack.status, UpdateStatus::Pending);
    assert_eq!(
        ack.update_index,
        funetun_chain::bindings::update_index(0, task.slot, trainer.address())
    );
    // Reporting again (the seeds' alias) is idempotent.
    let (status, again): (_, UpdateAck) = call_json(
        &f.app,
        post(trainer, "/submit_update", report(outcome.tx_hash, hash)),
    )
    .await;
    assert_eq!((status, again), (StatusCode::OK, ack.clone()));
    // The same update with other numbers is refused: the first report stands.
    let mut changed = report(outcome.tx_hash, hash);
    changed["loss_after"] = json!(0.125);
    let req = post(trainer, "/v1/updates", changed);
    refused(&f.app, req, StatusCode::CONFLICT, "conflicting_report").await;
    let (status, again): (_, UpdateAck) = call_json(
        &f.app,
        post(trainer, "/v1/updates", report(outcome.tx_hash, hash)),
    )
    .await;
    assert_eq!((status, again), (StatusCode::OK, ack.clone()));
    // The trainer has submitted for this round: no second task.
    let (status, _) = call(&f.app, post(trainer, "/v1/tasks", lease_body(f.job))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // replay_prob = 1: the validator gets it, the same one again until it votes.
    let validator = &f.env.keys[4];
    let (status, a): (_, ValidationAssignment) =
        call_json(&f.app, post(validator, "/v1/validations/next", json!({}))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (a.update_index, a.update_hash, a.trainer),
        (ack.update_index, hash, trainer.address())
    );
    assert_eq!(a.task, task);
    assert_eq!(a.mode, ValidationMode::Replay);
    let (_, b): (_, ValidationAssignment) = call_json(
        &f.app,
        post(
            validator,
            "/v1/validations/next",
            json!({ "job_id": f.job }),
        ),
    )
    .await;
    assert_eq!(b.update_index, a.update_index);
    // The trainer, also registered as validator, never checks its own update.
    f.env.register_validator(2).await;
    driver::step(&f.state).await.unwrap();
    let (status, _) = call(&f.app, post(trainer, "/v1/validations/next", json!({}))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // Quorum 1 and the assignment is live: nobody else gets it.
    f.env.register_validator(6).await;
    driver::step(&f.state).await.unwrap();
    let (status, _) = call(
        &f.app,
        post(&f.env.keys[6], "/v1/validations/next", json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // A vote report without the vote; an unknown update; then the real one.
    let vote = |tx: B256, index: U256| json!({ "job_id": f.job, "update_index": index, "valid": true, "tx_hash": tx, "detail": "replayed" });
    let req = post(
        validator,
        "/v1/validations",
        vote(outcome.tx_hash, a.update_index),
    );
    refused(&f.app, req, StatusCode::CONFLICT, "vote_not_found").await;
    let req = post(
        validator,
        "/v1/validations",
        vote(outcome.tx_hash, U256::from(5u64)),
    );
    refused(&f.app, req, StatusCode::NOT_FOUND, "unknown_update").await;
    let voted = f
        .env
        .ledger(4)
        .validate_update(U256::from(f.job), a.update_index, true)
        .await
        .unwrap();
    let (status, vack): (_, ValidationAck) = call_json(
        &f.app,
        post(
            validator,
            "/submit_validation",
            vote(voted.tx_hash, a.update_index),
        ),
    )
    .await;
    assert_eq!(
        (status, vack.status),
        (StatusCode::OK, UpdateStatus::Accepted)
    );
    let (status, _) = call(&f.app, post(validator, "/v1/validations/next", json!({}))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    driver::step(&f.state).await.unwrap();
    let (_, updates): (_, Vec<UpdateInfo>) =
        call_json(&f.app, get(&format!("/v1/jobs/{}/updates", f.job))).await;
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].status, UpdateStatus::Accepted);
    assert_eq!(updates[0].votes.len(), 1);
    assert_eq!(updates[0].votes[0].detail, "replayed");
    assert_eq!(updates[0].votes[0].validator, validator.address());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_public_and_refusals_are_json() {
    let f = fixture().await;
    let (status, jobs): (_, Vec<JobSummary>) = call_json(&f.app, get("/v1/jobs")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].status, JobStatus::Active);
    assert_eq!(jobs[0].leader, f.env.leader());
    assert_eq!(jobs[0].owner, f.env.keys[0].address());
    assert_eq!(jobs[0].remaining_wei, U256::from(crate::common::ETH));
    let (_, detail): (_, JobDetail) = call_json(&f.app, get(&format!("/v1/jobs/{}", f.job))).await;
    assert_eq!(detail.spec, f.spec);
    assert_eq!(detail.base_reward_wei, f.spec.base_reward_wei().unwrap());
    let (_, rounds): (_, Vec<RoundInfo>) =
        call_json(&f.app, get(&format!("/v1/jobs/{}/rounds", f.job))).await;
    assert_eq!(rounds.len(), 1);
    assert_eq!(rounds[0].status, RoundStatus::Open);
    assert_eq!(Some(rounds[0].base_hash), jobs[0].latest_checkpoint);
    let (_, updates): (_, Vec<UpdateInfo>) =
        call_json(&f.app, get(&format!("/v1/jobs/{}/updates", f.job))).await;
    assert!(updates.is_empty());
    let (_, people): (_, Vec<ParticipantInfo>) = call_json(&f.app, get("/v1/participants")).await;
    let owner = people
        .iter()
        .find(|p| p.address == f.env.keys[0].address())
        .unwrap();
    assert!(owner.roles.contains(&Role::Owner));
    let v = people
        .iter()
        .find(|p| p.address == f.env.keys[4].address())
        .unwrap();
    assert_eq!(v.roles, vec![Role::Validator]);
    assert_eq!(
        v.stake_wei,
        funetun_chain::ContractParams::default().min_stake
    );
    let (_, graph): (_, funetun_core::api::Graph) = call_json(&f.app, get("/graph")).await;
    assert!(graph.edges.iter().any(|e| e.label == "createJob"));
    assert!(graph.edges.iter().any(|e| e.label == "commitCheckpoint"));
    let (status, doc): (_, Value) = call_json(&f.app, get("/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["paths"]["/v1/tasks"]["post"].is_object());
    assert!(doc["paths"]["/v1/info"]["get"].is_object());
    let (status, info): (_, funetun_core::api::ServiceInfo) =
        call_json(&f.app, get("/v1/info")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info.leader, jobs[0].leader);
    let charts = f
        .app
        .clone()
        .oneshot(get(&format!("/v1/jobs/{}/charts.svg", f.job)))
        .await
        .unwrap();
    assert_eq!(charts.status(), StatusCode::OK);
    assert_eq!(
        charts.headers()["content-type"].to_str().unwrap(),
        "image/svg+xml"
    );
    let page = f.app.clone().oneshot(get("/")).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);

    refused(
        &f.app,
        get("/v1/jobs/999"),
        StatusCode::NOT_FOUND,
        "unknown_job",
    )
    .await;
    refused(
        &f.app,
        get("/v1/jobs/999/rounds"),
        StatusCode::NOT_FOUND,
        "unknown_job",
    )
    .await;
    refused(
        &f.app,
        get("/v1/jobs/999/updates"),
        StatusCode::NOT_FOUND,
        "unknown_job",
    )
    .await;
    refused(
        &f.app,
        get("/v1/jobs/abc"),
        StatusCode::BAD_REQUEST,
        "bad_path",
    )
    .await;
    refused(
        &f.app,
        get("/v1/nothing"),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let req = Request::delete("/v1/jobs").body(Body::empty()).unwrap();
    refused(
        &f.app,
        req,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_naming_another_leader_is_ignored_and_a_bad_spec_is_invalid() {
    let f = fixture().await;
    // Another leader.
    let spec = tiny_spec(0.5);
    let (id, _) = f
        .env
        .owner
        .create_job(&funetun_chain::ledger::NewJob {
            spec_hash: keccak256(spec.to_toml().as_bytes()),
            leader: Address::repeat_byte(0x42),
            base_reward: spec.base_reward_wei().unwrap(),
            bonus_reward: U256::ZERO,
            validation_reward: U256::ZERO,
            rounds: spec.rounds,
            quorum: 1,
            challenge_window: 1,
            deposit: U256::from(crate::common::ETH),
        })
        .await
        .unwrap();
    // Ours, but its spec names an unknown optimizer (uploaded: it parses as
    // a spec; only the orchestrator knows the optimizers).
    let bad = JobSpec {
        optimizer: "rmsprop".into(),
        ..tiny_spec(0.5)
    };
    let text = bad.to_toml().into_bytes();
    let path = format!("/v1/blobs/{}?kind=spec", keccak256(&text));
    assert_eq!(
        call(&f.app, signed(&f.env.keys[0], "PUT", &path, text))
            .await
            .0,
        StatusCode::CREATED
    );
    let bad_id = f.env.create_job(&bad).await;
    // Ours, spec never uploaded: waits.
    let missing = JobSpec {
        seed: 99,
        ..tiny_spec(0.5)
    };
    let missing_id = f.env.create_job(&missing).await;
    driver::step(&f.state).await.unwrap();
    let id: u64 = id.saturating_to();
    refused(
        &f.app,
        get(&format!("/v1/jobs/{id}")),
        StatusCode::NOT_FOUND,
        "unknown_job",
    )
    .await;
    assert_eq!(
        f.state.job_status(bad_id).await.unwrap(),
        Some(JobStatus::Invalid)
    );
    let req = post(&f.env.keys[2], "/v1/tasks", lease_body(bad_id));
    refused(&f.app, req, StatusCode::CONFLICT, "job_invalid").await;
    assert_eq!(
        f.state.job_status(missing_id).await.unwrap(),
        Some(JobStatus::Pending)
    );
    let req = post(&f.env.keys[2], "/v1/tasks", lease_body(missing_id));
    refused(&f.app, req, StatusCode::CONFLICT, "job_not_started").await;
    // Once the spec arrives, the job starts (after its retry pause).
    let text = missing.to_toml().into_bytes();
    let path = format!("/v1/blobs/{}?kind=spec", keccak256(&text));
    assert_eq!(
        call(&f.app, signed(&f.env.keys[0], "PUT", &path, text))
            .await
            .0,
        StatusCode::CREATED
    );
    for _ in 0..100 {
        driver::step(&f.state).await.unwrap();
        if f.state.job_status(missing_id).await.unwrap() == Some(JobStatus::Active) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the job never started after its spec arrived");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonces_survive_a_clean_restart() {
    let f = fixture().await;
    let key = &f.env.keys[2];
    let body = serde_json::to_vec(&lease_body(f.job)).unwrap();
    // Signed a little ahead, so the timestamp is not older than the next start.
    let ts = now() + 5;
    let req = signed_with(key, "POST", "/v1/tasks", body.clone(), ts, "nonce-kept");
    assert_eq!(call(&f.app, req).await.0, StatusCode::OK);
    f.state.flush().await.unwrap();
    f.state.store.close().await;
    let state = AppState::open(f.env.config()).await.unwrap();
    let app = app(state);
    let req = signed_with(key, "POST", "/v1/tasks", body, ts, "nonce-kept");
    refused(&app, req, StatusCode::UNAUTHORIZED, "replayed_nonce").await;
}
