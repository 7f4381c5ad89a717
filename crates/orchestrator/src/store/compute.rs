//! The `compute_tasks` and `compute_replicas` tables: generic WebAssembly
//! tasks and the replicas workers run (docs/tasks.md).

use alloy_primitives::{Address, B256};
use funetun_core::compute::{
    ComputeStatus, ComputeTaskInfo, Redundancy, ReplicaInfo, ReplicaStatus, RunResult,
};

use super::{Store, StoreTx, to_db, to_u64};
use crate::error::{Error, Result};
use crate::util::{addr_text, hash_text, parse_addr, parse_hash};

/// A task as stored, with its replicas in issue order.
#[derive(Clone, Debug, PartialEq)]
pub struct ComputeTask {
    /// What the API shows.
    pub info: ComputeTaskInfo,
    /// Replicas issued so far (lapsed ones included).
    pub wanted: u32,
    /// Every replica's reported result, by replica number.
    pub results: Vec<(u32, RunResult)>,
    /// Unix second each live lease lapses, by replica number.
    pub expiries: Vec<(u32, u64)>,
    /// A drill's known operation count; 0 for an owner's task.
    pub drill_ops: u64,
}

/// A task to store.
#[derive(Debug)]
pub struct NewComputeTask<'a> {
    /// The persistent id.
    pub task_id: B256,
    /// Who submitted it.
    pub owner: Address,
    /// The module.
    pub module: B256,
    /// The validator module.
    pub validator: Option<B256>,
    /// The input (checked JSON).
    pub input: &'a str,
    /// Redundancy (checked).
    pub redundancy: Redundancy,
    /// Fuel per replica.
    pub fuel: u64,
    /// Unix second of the submission.
    pub created_at: u64,
    /// The task batch that pays it.
    pub batch: Option<u64>,
    /// A drill's known operation count; 0 for an owner's task.
    pub drill_ops: u64,
}

#[derive(sqlx::FromRow)]
struct RawTask {
    task_id: String,
    owner: String,
    module: String,
    validator: Option<String>,
    input: String,
    min_quorum: i64,
    target_nresults: i64,
    max_error_results: i64,
    max_total_results: i64,
    adaptive: i64,
    adapted: i64,
    fuel: i64,
    wanted: i64,
    status: String,
    result: Option<String>,
    reason: Option<String>,
    created_at: i64,
    decided_at: Option<i64>,
    batch_id: Option<i64>,
    settled: i64,
    settle_tx: Option<String>,
    drill_ops: i64,
}

#[derive(sqlx::FromRow)]
struct RawReplica {
    replica: i64,
    worker: String,
    status: String,
    expires_at: i64,
    result: Option<String>,
    digest: Option<String>,
}

/// A replica row with its task's id.
#[derive(sqlx::FromRow)]
struct TaskReplica {
    task_id: String,
    #[sqlx(flatten)]
    replica: RawReplica,
}

const TASK_COLUMNS: &str = "task_id, owner, module, validator, input, min_quorum, target_nresults, \
     max_error_results, max_total_results, adaptive, adapted, fuel, wanted, status, result, reason, created_at, decided_at, \
     batch_id, settled, settle_tx, drill_ops";

const REPLICA_COLUMNS: &str = "replica, worker, status, expires_at, result, digest";

fn count(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

/// Most values bound to one statement here. The backends allow tens of
/// thousands, but the SQLite driver finds each `$n` by name, in time that
/// grows with the square of their number: a few hundred is the sweet spot.
const MAX_BOUND: usize = 256;

/// `$first, $first+1, …` for `n` bound values.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn parse_result(s: &str) -> Result<RunResult> {
    serde_json::from_str(s).map_err(|e| Error::Inconsistent(format!("stored task result: {e}")))
}

fn assemble(raw: RawTask, replicas: Vec<RawReplica>) -> Result<ComputeTask> {
    let status = ComputeStatus::parse(&raw.status)
        .ok_or_else(|| Error::Inconsistent(format!("stored task status `{}`", raw.status)))?;
    let mut infos = Vec::with_capacity(replicas.len());
    let mut results = Vec::new();
    let mut expiries = Vec::new();
    for r in replicas {
        let replica = count(r.replica);
        let rs = ReplicaStatus::parse(&r.status)
            .ok_or_else(|| Error::Inconsistent(format!("stored replica status `{}`", r.status)))?;
        let result = r.result.as_deref().map(parse_result).transpose()?;
        if rs == ReplicaStatus::Leased {
            expiries.push((replica, to_u64(r.expires_at)));
        }
        infos.push(ReplicaInfo {
            replica,
            worker: parse_addr(&r.worker)?,
            status: rs,
            digest: r.digest.as_deref().map(parse_hash).transpose()?,
            error: result.as_ref().and_then(|x| x.error.clone()),
        });
        if let Some(result) = result {
            results.push((replica, result));
        }
    }
    Ok(ComputeTask {
        info: ComputeTaskInfo {
            task_id: parse_hash(&raw.task_id)?,
            owner: parse_addr(&raw.owner)?,
            module: parse_hash(&raw.module)?,
            validator: raw.validator.as_deref().map(parse_hash).transpose()?,
            input: raw.input,
            redundancy: Redundancy {
                min_quorum: count(raw.min_quorum),
                target_nresults: count(raw.target_nresults),
                max_error_results: count(raw.max_error_results),
                max_total_results: count(raw.max_total_results),
                adaptive: raw.adaptive != 0,
            },
            adapted: raw.adapted != 0,
            fuel: to_u64(raw.fuel),
            status,
            result: raw.result.as_deref().map(parse_result).transpose()?,
            reason: raw.reason,
            created_at: to_u64(raw.created_at),
            decided_at: raw.decided_at.map(to_u64),
            replicas: infos,
            batch: raw.batch_id.map(to_u64),
            settled: raw.settled != 0,
            settlement: raw.settle_tx.as_deref().map(parse_hash).transpose()?,
        },
        wanted: count(raw.wanted),
        results,
        expiries,
        drill_ops: to_u64(raw.drill_ops),
    })
}

async fn read_task<'c, E>(conn: E, task_id: B256) -> Result<Option<RawTask>>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    Ok(sqlx::query_as(&format!(
        "SELECT {TASK_COLUMNS} FROM compute_tasks WHERE task_id = $1"
    ))
    .bind(hash_text(task_id))
    .fetch_optional(conn)
    .await?)
}

async fn read_replicas<'c, E>(conn: E, task_id: B256) -> Result<Vec<RawReplica>>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    Ok(sqlx::query_as(&format!(
        "SELECT {REPLICA_COLUMNS} FROM compute_replicas WHERE task_id = $1 ORDER BY replica"
    ))
    .bind(hash_text(task_id))
    .fetch_all(conn)
    .await?)
}

impl Store {
    /// Decided tasks of a batch whose money is not settled on-chain yet,
    /// oldest first (at most `limit`).
    pub async fn unsettled_compute_tasks(&self, limit: u32) -> Result<Vec<B256>> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT task_id FROM compute_tasks
             WHERE batch_id IS NOT NULL AND settled = 0 AND status <> $1
             ORDER BY decided_at, task_id LIMIT $2",
        )
        .bind(ComputeStatus::Open.as_str())
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        ids.iter().map(|s| parse_hash(s)).collect()
    }

    /// The task `task_id` and its replicas.
    pub async fn compute_task(&self, task_id: B256) -> Result<Option<ComputeTask>> {
        let Some(raw) = read_task(&self.read, task_id).await? else {
            return Ok(None);
        };
        let replicas = read_replicas(&self.read, task_id).await?;
        assemble(raw, replicas).map(Some)
    }
}

impl StoreTx {
    /// Stores new tasks, each with `target_nresults` replicas wanted,
    /// [`MAX_BOUND`] values to a statement.
    pub async fn insert_compute_tasks(&mut self, tasks: &[NewComputeTask<'_>]) -> Result<()> {
        // Columns a new task starts with fixed; every other one is bound.
        let fixed = |column: &str| match column {
            "adapted" => Some("0"),
            "result" | "reason" | "decided_at" | "settle_tx" => Some("NULL"),
            _ => None,
        };
        let columns: Vec<&str> = TASK_COLUMNS.split(',').map(str::trim).collect();
        let values = columns.iter().filter(|c| fixed(c).is_none()).count();
        for chunk in tasks.chunks(MAX_BOUND / values) {
            let mut next = 0;
            let rows = (0..chunk.len())
                .map(|_| {
                    let row: Vec<String> = columns
                        .iter()
                        .map(|c| {
                            fixed(c).map_or_else(
                                || {
                                    next += 1;
                                    format!("${next}")
                                },
                                str::to_string,
                            )
                        })
                        .collect();
                    format!("({})", row.join(", "))
                })
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!("INSERT INTO compute_tasks ({TASK_COLUMNS}) VALUES {rows}");
            let mut query = sqlx::query(&sql);
            for t in chunk {
                query = query
                    .bind(hash_text(t.task_id))
                    .bind(addr_text(t.owner))
                    .bind(hash_text(t.module))
                    .bind(t.validator.map(hash_text))
                    .bind(t.input)
                    .bind(i64::from(t.redundancy.min_quorum))
                    .bind(i64::from(t.redundancy.target_nresults))
                    .bind(i64::from(t.redundancy.max_error_results))
                    .bind(i64::from(t.redundancy.max_total_results))
                    .bind(i64::from(t.redundancy.adaptive))
                    .bind(to_db(t.fuel))
                    .bind(i64::from(t.redundancy.target_nresults))
                    .bind(ComputeStatus::Open.as_str())
                    .bind(to_db(t.created_at))
                    .bind(t.batch.map(to_db))
                    // An unpaid task owes nothing on-chain.
                    .bind(i64::from(t.batch.is_none()))
                    .bind(to_db(t.drill_ops));
            }
            query.execute(self.conn()).await?;
        }
        Ok(())
    }

    /// Results the unsettled tasks of batch `batch` may still be paid for
    /// (each task's `max_total_results`): what they hold back of its deposit.
    pub async fn batch_reserve(&mut self, batch: u64) -> Result<u64> {
        // PostgreSQL sums BIGINT to NUMERIC: cast back.
        let n: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(max_total_results), 0) AS BIGINT) FROM compute_tasks
             WHERE batch_id = $1 AND settled = 0",
        )
        .bind(to_db(batch))
        .fetch_one(self.conn())
        .await?;
        Ok(to_u64(n))
    }

    /// Records that task `task_id`'s money is settled on-chain, by
    /// transaction `tx` (none when nothing was owed or the chain already
    /// held it).
    pub async fn mark_settled(&mut self, task_id: B256, tx: Option<B256>) -> Result<()> {
        sqlx::query("UPDATE compute_tasks SET settled = 1, settle_tx = $1 WHERE task_id = $2")
            .bind(tx.map(hash_text))
            .bind(hash_text(task_id))
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// The task `task_id` as this transaction sees it.
    pub async fn compute_task(&mut self, task_id: B256) -> Result<Option<ComputeTask>> {
        let Some(raw) = read_task(self.conn(), task_id).await? else {
            return Ok(None);
        };
        let replicas = read_replicas(self.conn(), task_id).await?;
        assemble(raw, replicas).map(Some)
    }

    /// Marks leases that ran out by `now` lapsed; returns their tasks.
    pub async fn lapse_replicas(&mut self, now: u64) -> Result<Vec<B256>> {
        let ids: Vec<String> = sqlx::query_scalar(
            "UPDATE compute_replicas SET status = $1 WHERE status = $2 AND expires_at <= $3
             RETURNING task_id",
        )
        .bind(ReplicaStatus::Lapsed.as_str())
        .bind(ReplicaStatus::Leased.as_str())
        .bind(to_db(now))
        .fetch_all(self.conn())
        .await?;
        let mut ids = ids
            .iter()
            .map(|s| parse_hash(s))
            .collect::<Result<Vec<_>>>()?;
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// Marks every live lease of `worker` lapsed (it may no longer work);
    /// returns their tasks.
    pub async fn lapse_worker_replicas(&mut self, worker: Address) -> Result<Vec<B256>> {
        let ids: Vec<String> = sqlx::query_scalar(
            "UPDATE compute_replicas SET status = $1 WHERE worker = $2 AND status = $3
             RETURNING task_id",
        )
        .bind(ReplicaStatus::Lapsed.as_str())
        .bind(addr_text(worker))
        .bind(ReplicaStatus::Leased.as_str())
        .fetch_all(self.conn())
        .await?;
        ids.iter().map(|s| parse_hash(s)).collect()
    }

    /// The live replicas `worker` holds, oldest first: (task, replica).
    pub async fn held_replicas(&mut self, worker: Address) -> Result<Vec<(B256, u32)>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT task_id, replica FROM compute_replicas WHERE worker = $1 AND status = $2
             ORDER BY leased_at, task_id, replica",
        )
        .bind(addr_text(worker))
        .bind(ReplicaStatus::Leased.as_str())
        .fetch_all(self.conn())
        .await?;
        rows.into_iter()
            .map(|(t, r)| Ok((parse_hash(&t)?, count(r))))
            .collect()
    }

    /// The `limit` oldest open tasks that want another replica and have
    /// none with `worker`, with their replicas: only drills when `drills`,
    /// else no drills.
    pub async fn open_compute_tasks(
        &mut self,
        worker: Address,
        limit: usize,
        drills: bool,
    ) -> Result<Vec<ComputeTask>> {
        let only = if drills {
            "AND t.drill_ops > 0"
        } else {
            "AND t.drill_ops = 0"
        };
        let raw: Vec<RawTask> = sqlx::query_as(&format!(
            "SELECT {TASK_COLUMNS} FROM compute_tasks t
             WHERE t.status = $1 {only}
               AND (SELECT COUNT(*) FROM compute_replicas r WHERE r.task_id = t.task_id) < t.wanted
               AND NOT EXISTS (SELECT 1 FROM compute_replicas r
                               WHERE r.task_id = t.task_id AND r.worker = $2)
             ORDER BY t.created_at, t.task_id LIMIT $3"
        ))
        .bind(ComputeStatus::Open.as_str())
        .bind(addr_text(worker))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.conn())
        .await?;
        self.with_replicas(raw).await
    }

    /// The unix second `worker` was last leased a replica of a drill.
    pub async fn last_drill(&mut self, worker: Address) -> Result<Option<u64>> {
        let at: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(r.leased_at) FROM compute_replicas r JOIN compute_tasks t
             ON t.task_id = r.task_id WHERE r.worker = $1 AND t.drill_ops > 0",
        )
        .bind(addr_text(worker))
        .fetch_one(self.conn())
        .await?;
        Ok(at.map(to_u64))
    }

    /// The tasks `ids` that exist, with their replicas (two statements
    /// however many).
    pub async fn compute_tasks(&mut self, ids: &[B256]) -> Result<Vec<ComputeTask>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM compute_tasks WHERE task_id IN ({})",
            placeholders(1, ids.len())
        );
        let mut query = sqlx::query_as::<_, RawTask>(&sql);
        for id in ids {
            query = query.bind(hash_text(*id));
        }
        let raw = query.fetch_all(self.conn()).await?;
        self.with_replicas(raw).await
    }

    /// Reads the replicas of `raw`'s tasks in one statement and assembles
    /// each task.
    async fn with_replicas(&mut self, raw: Vec<RawTask>) -> Result<Vec<ComputeTask>> {
        if raw.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT task_id, {REPLICA_COLUMNS} FROM compute_replicas WHERE task_id IN ({})
             ORDER BY task_id, replica",
            placeholders(1, raw.len())
        );
        let mut query = sqlx::query_as::<_, TaskReplica>(&sql);
        for t in &raw {
            query = query.bind(t.task_id.clone());
        }
        let mut by_task: std::collections::HashMap<String, Vec<RawReplica>> =
            std::collections::HashMap::new();
        for row in query.fetch_all(self.conn()).await? {
            by_task.entry(row.task_id).or_default().push(row.replica);
        }
        raw.into_iter()
            .map(|t| {
                let replicas = by_task.remove(&t.task_id).unwrap_or_default();
                assemble(t, replicas)
            })
            .collect()
    }

    /// Issues `worker` the replicas `issued` (task, replica number) until
    /// `expires_at`, in one statement.
    pub async fn insert_replicas(
        &mut self,
        issued: &[(B256, u32)],
        worker: Address,
        now: u64,
        expires_at: u64,
    ) -> Result<()> {
        if issued.is_empty() {
            return Ok(());
        }
        // Worker, status, times once; task and replica per row.
        let rows = (0..issued.len())
            .map(|i| {
                format!(
                    "(${}, ${}, $1, $2, $3, $4, NULL, NULL, NULL)",
                    5 + 2 * i,
                    6 + 2 * i
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO compute_replicas
               (task_id, replica, worker, status, leased_at, expires_at, result, digest, reported_at)
             VALUES {rows}"
        );
        let mut query = sqlx::query(&sql)
            .bind(addr_text(worker))
            .bind(ReplicaStatus::Leased.as_str())
            .bind(to_db(now))
            .bind(to_db(expires_at));
        for (task_id, replica) in issued {
            query = query.bind(hash_text(*task_id)).bind(i64::from(*replica));
        }
        query.execute(self.conn()).await?;
        Ok(())
    }

    /// Stores a replica's reported result and digest, with its status
    /// once judged.
    pub async fn report_replica(
        &mut self,
        task_id: B256,
        replica: u32,
        status: ReplicaStatus,
        result: &RunResult,
        digest: B256,
        now: u64,
    ) -> Result<()> {
        let json = serde_json::to_string(result)
            .map_err(|e| Error::Inconsistent(format!("a run result as JSON: {e}")))?;
        sqlx::query(
            "UPDATE compute_replicas SET status = $1, result = $2, digest = $3, reported_at = $4
             WHERE task_id = $5 AND replica = $6",
        )
        .bind(status.as_str())
        .bind(json)
        .bind(hash_text(digest))
        .bind(to_db(now))
        .bind(hash_text(task_id))
        .bind(i64::from(replica))
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Sets replica `replica`'s status.
    pub async fn set_replica_status(
        &mut self,
        task_id: B256,
        replica: u32,
        status: ReplicaStatus,
    ) -> Result<()> {
        sqlx::query("UPDATE compute_replicas SET status = $1 WHERE task_id = $2 AND replica = $3")
            .bind(status.as_str())
            .bind(hash_text(task_id))
            .bind(i64::from(replica))
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Runs task `task_id` once (adaptive replication): one replica wanted,
    /// a quorum of one.
    pub async fn adapt(&mut self, task_id: B256) -> Result<()> {
        sqlx::query("UPDATE compute_tasks SET adapted = 1, wanted = 1 WHERE task_id = $1")
            .bind(hash_text(task_id))
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// `worker`'s clean record: its valid replicas since its last invalid one.
    pub async fn valid_streak(&mut self, worker: Address) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM compute_replicas
             WHERE worker = $1 AND status = $2 AND reported_at > COALESCE(
               (SELECT MAX(reported_at) FROM compute_replicas WHERE worker = $1 AND status = $3), -1)",
        )
        .bind(addr_text(worker))
        .bind(ReplicaStatus::Valid.as_str())
        .bind(ReplicaStatus::Invalid.as_str())
        .fetch_one(self.conn())
        .await?;
        Ok(to_u64(n))
    }

    /// Raises the replicas a task wants to `wanted`.
    pub async fn set_wanted(&mut self, task_id: B256, wanted: u32) -> Result<()> {
        sqlx::query("UPDATE compute_tasks SET wanted = $1 WHERE task_id = $2")
            .bind(i64::from(wanted))
            .bind(hash_text(task_id))
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Decides a task: `done` with its canonical result, or `failed` with
    /// the reason.
    pub async fn decide_compute_task(
        &mut self,
        task_id: B256,
        outcome: std::result::Result<&RunResult, &str>,
        now: u64,
    ) -> Result<()> {
        let (status, result, reason) = match outcome {
            Ok(r) => (
                ComputeStatus::Done,
                Some(
                    serde_json::to_string(r)
                        .map_err(|e| Error::Inconsistent(format!("a run result as JSON: {e}")))?,
                ),
                None,
            ),
            Err(reason) => (ComputeStatus::Failed, None, Some(reason.to_string())),
        };
        sqlx::query(
            "UPDATE compute_tasks SET status = $1, result = $2, reason = $3, decided_at = $4
             WHERE task_id = $5",
        )
        .bind(status.as_str())
        .bind(result)
        .bind(reason)
        .bind(to_db(now))
        .bind(hash_text(task_id))
        .execute(self.conn())
        .await?;
        Ok(())
    }
}
