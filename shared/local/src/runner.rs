//! The in-process pipeline runner: executes infra/pipeline.asl.json over the same stage
//! functions the Lambdas run, from a durable queue. Progress is saved after every Task, so a
//! server killed mid-job resumes at the state it was in after a restart; stages are
//! idempotent, so re-running the interrupted state writes and sends nothing twice.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use domain::model::{from_micros, now, to_micros};
use domain::pipeline::{Stage, StageContext, StageError, run_stage};
use domain::ports::{CompletionEstimate, Pipeline, PipelineRun, RunQueue, Store};
use serde_json::{Value, json};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use uuid::Uuid;

use goviral_adapters::asl::{self, State, StateMachine, Transition};
use tracing::Instrument;

/// How long a claimed run is ours before another runner may take it (a crash leaves it).
const LEASE: Duration = Duration::from_secs(300);
/// Longest sleep between looks at the queue when nothing wakes the runner.
const IDLE_POLL: Duration = Duration::from_millis(500);

pub struct Runner {
    machine: Arc<StateMachine>,
    ctx: Arc<StageContext>,
    queue: Arc<dyn RunQueue>,
    wake: Arc<Notify>,
    slots: Arc<Semaphore>,
    concurrency: usize,
    /// Multiplies every retry delay of the state machine (1.0 = as written).
    retry_delay_scale: f64,
    /// True while the API in the same process is answering requests. Pipeline work is
    /// background work: the runner then runs one job at a time and leaves the cores to the
    /// answers; a burst of submissions slows the jobs down, not the responses.
    foreground_busy: Arc<dyn Fn() -> bool + Send + Sync>,
    /// Stages whose work is limited to so many at once; their Tasks wait for a turn.
    stage_limits: Vec<(Stage, Arc<Semaphore>)>,
    /// Media analyses at once (a decoder and two cores each): an extraction that measures a
    /// video waits for one; one of text does not.
    analyses: Arc<Semaphore>,
    /// Runs one user may have under way at once while others have runs too (alone, all
    /// but this many slots); users take turns for the slots.
    per_user: u32,
    /// `source_url` downloads under way at once. A download holds one of these, not a slot:
    /// a slow server delays its own job only.
    downloads: Arc<Semaphore>,
}

/// How long the runner waits before looking again while it yields to the API.
const YIELD_POLL: Duration = Duration::from_millis(2);

fn now_us() -> i64 {
    to_micros(now())
}

/// What happened to a run in one step.
enum Step {
    /// Saved at a later state or retry time; the queue hands it out again when due.
    Continue,
    Finished(&'static str),
}

impl Runner {
    pub fn new(
        machine: Arc<StateMachine>,
        ctx: Arc<StageContext>,
        queue: Arc<dyn RunQueue>,
        wake: Arc<Notify>,
        concurrency: usize,
    ) -> Self {
        let concurrency = concurrency.max(1);
        Runner {
            machine,
            ctx,
            queue,
            wake,
            slots: Arc::new(Semaphore::new(concurrency)),
            concurrency,
            retry_delay_scale: 1.0,
            foreground_busy: Arc::new(|| false),
            stage_limits: Vec::new(),
            analyses: Arc::new(Semaphore::new(Semaphore::MAX_PERMITS)),
            per_user: u32::MAX,
            downloads: Arc::new(Semaphore::new(4)),
        }
    }

    /// Scales the state machine's retry delays, e.g. to 0.001 where waiting minutes for a
    /// receiver to recover would only slow a test or a demo down. Order and counts stay as written.
    pub fn with_retry_delay_scale(mut self, scale: f64) -> Self {
        self.retry_delay_scale = scale.max(0.0);
        self
    }

    /// At most `at_once` Tasks of `stage` run at a time; the others wait their turn without
    /// their timeout running.
    pub fn limiting(mut self, stage: Stage, at_once: usize) -> Self {
        self.stage_limits.push((stage, Arc::new(Semaphore::new(at_once.max(1)))));
        self
    }

    /// At most `at_once` videos measured at a time; the extractions of others wait their turn
    /// (without their timeout running), and those of text never wait.
    pub fn analysing_at_once(mut self, at_once: usize) -> Self {
        self.analyses = Arc::new(Semaphore::new(at_once.max(1)));
        self
    }

    /// At most `runs` of one user's jobs under way at once (downloads included).
    pub fn per_user(mut self, runs: u32) -> Self {
        self.per_user = runs.max(1);
        self
    }

    /// At most `at_once` `source_url` downloads at a time, made outside the slots.
    pub fn downloading_at_once(mut self, at_once: usize) -> Self {
        self.downloads = Arc::new(Semaphore::new(at_once.max(1)));
        self
    }

    /// Yields to the foreground: while `busy()` says so, one job at a time (the rest wait in
    /// the queue; nothing is dropped).
    pub fn yielding_to(mut self, busy: Arc<dyn Fn() -> bool + Send + Sync>) -> Self {
        self.foreground_busy = busy;
        self
    }

    /// Runs until `shutdown` turns true. In-flight steps finish their current state first.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        // A single local runner: leases left by a previous process are stale.
        if let Err(e) = self.queue.release_leases().await {
            tracing::error!(error = %e, "releasing stale leases failed");
        }
        while !*shutdown.borrow() {
            // A free slot first: a run is claimed (and leased) only when it can start at once.
            let first = tokio::select! {
                permit = self.slots.clone().acquire_owned() => permit.expect("semaphore open"),
                // Stopped (or nobody left who could stop us).
                _ = shutdown.changed() => break,
            };
            let free = if (self.foreground_busy)() {
                if self.slots.available_permits() + 1 < self.concurrency {
                    // Another job is running and the API is busy: wait for it (or for quiet).
                    drop(first);
                    tokio::select! {
                        _ = tokio::time::sleep(YIELD_POLL) => {}
                        _ = shutdown.changed() => {}
                    }
                    continue;
                }
                1
            } else {
                self.slots.available_permits() as u32 + 1
            };
            let now = now_us();
            let mut runs = self.claim(now, free).await;
            if (runs.len() as u32) < free {
                // The started runs ran dry: start runs for queued jobs (in bulk, so this write
                // happens once per batch of jobs, not once per step) and claim again.
                if let Err(e) = self.queue.start_runs_for_queued(&self.machine.start_at, now, 1_000).await {
                    tracing::error!(error = %e, "picking up queued jobs failed");
                }
                if runs.is_empty() {
                    runs = self.claim(now, free).await;
                }
            }
            if runs.is_empty() {
                drop(first);
                let wait = match self.queue.next_due_us().await {
                    Ok(Some(due)) => Duration::from_micros((due - now).max(0) as u64).min(IDLE_POLL),
                    _ => IDLE_POLL,
                };
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            let mut first = Some(first);
            for run in runs {
                let permit = match first.take() {
                    Some(p) => p,
                    None => self.slots.clone().acquire_owned().await.expect("semaphore open"),
                };
                let this = self.clone();
                tokio::spawn(async move { this.advance(run, permit).await });
            }
        }
        // Wait for in-flight steps to save their progress.
        let _ = self.slots.acquire_many(self.concurrency as u32).await;
    }

    async fn claim(&self, now: i64, limit: u32) -> Vec<PipelineRun> {
        // Alone, a user may fill all but `per_user` slots: those stay free for whoever comes.
        let alone = (self.concurrency as u32).saturating_sub(self.per_user).max(self.per_user);
        let shares = domain::ports::RunShares { per_user: self.per_user, alone };
        match self.queue.claim_runs(now, now + LEASE.as_micros() as i64, limit, shares).await {
            Ok(runs) => runs,
            Err(e) => {
                tracing::error!(error = %e, "claiming runs failed");
                Vec::new()
            }
        }
    }

    /// Drives a run through its states until it waits for a retry or ends, holding `slot`
    /// (given back while its video downloads).
    async fn advance(&self, run: PipelineRun, slot: OwnedSemaphorePermit) {
        let span = tracing::info_span!("pipeline", job_id = %run.job_id);
        self.advance_in_span(run, slot).instrument(span).await
    }

    async fn advance_in_span(&self, mut run: PipelineRun, slot: OwnedSemaphorePermit) {
        let mut slot = Some(slot);
        loop {
            match self.step(&mut run, &mut slot).await {
                Ok(Step::Continue) if run.next_run_at_us <= now_us() => continue,
                Ok(Step::Continue) => {
                    if let Err(e) = self.queue.save_run(&run, 0, now_us()).await {
                        tracing::error!(error = %e, "saving run failed");
                    }
                    return;
                }
                Ok(Step::Finished(outcome)) => {
                    if let Err(e) = self.queue.finish_run(run.job_id, outcome, now_us()).await {
                        tracing::error!(error = %e, "finishing run failed");
                    }
                    return;
                }
                Err(e) => {
                    // The queue itself failed; the lease runs out and the run is retried.
                    tracing::error!(error = %e, "runner could not save progress");
                    return;
                }
            }
        }
    }

    /// Executes the run's current state and saves where it goes next.
    async fn step(&self, run: &mut PipelineRun, slot: &mut Option<OwnedSemaphorePermit>) -> domain::Result<Step> {
        let Some(state) = self.machine.states.get(&run.state).cloned() else {
            self.fail_job(run.job_id, "runner", "States.Runtime", &format!("no state named {}", run.state)).await?;
            return Ok(Step::Finished("failed"));
        };
        let next = match state {
            State::Task { stage, result_path, timeout, retry, catch, then } => match self.task(stage, run, timeout, slot).await? {
                Ok(result) => {
                    if let Err(e) = asl::write_path(&mut run.data, result_path.as_deref(), result) {
                        return self.runtime_failure(run, &e).await;
                    }
                    then
                }
                Err((error, cause)) => {
                    tracing::warn!(stage = stage.as_str(), error, cause, attempt = run.attempt, "stage failed");
                    if let Some(retrier) = retry.iter().find(|r| asl::matches(&r.error_equals, &error)) {
                        if run.attempt < retrier.max_attempts {
                            let delay = retrier.delay(run.attempt, rand::random::<f64>()).mul_f64(self.retry_delay_scale);
                            run.attempt += 1;
                            run.next_run_at_us = now_us() + delay.as_micros() as i64;
                            return Ok(Step::Continue);
                        }
                    }
                    match catch.iter().find(|c| asl::matches(&c.error_equals, &error)) {
                        Some(catcher) => {
                            let caught = json!({"Error": error, "Cause": cause});
                            if let Err(e) = asl::write_path(&mut run.data, catcher.result_path.as_deref(), caught) {
                                return self.runtime_failure(run, &e).await;
                            }
                            Transition::Next(catcher.next.clone())
                        }
                        None => {
                            self.fail_job(run.job_id, stage.as_str(), &error, &cause).await?;
                            return Ok(Step::Finished("failed"));
                        }
                    }
                }
            },
            State::Choice { choices, default } => {
                let chosen = choices.iter().find(|c| match (&c.test, asl::read_path(&run.data, &c.variable)) {
                    (asl::Test::BooleanEquals(b), Some(Value::Bool(v))) => b == v,
                    (asl::Test::StringEquals(s), Some(Value::String(v))) => s == v,
                    _ => false,
                });
                match chosen.map(|c| c.next.clone()).or(default) {
                    Some(n) => Transition::Next(n),
                    None => return self.runtime_failure(run, "no choice matched and there is no default").await,
                }
            }
            State::Pass { result, result_path, then } => {
                if let Some(result) = result {
                    if let Err(e) = asl::write_path(&mut run.data, result_path.as_deref(), result) {
                        return self.runtime_failure(run, &e).await;
                    }
                }
                then
            }
            State::Succeed => return Ok(Step::Finished("succeeded")),
            State::Fail { error, cause } => {
                self.fail_job(run.job_id, "pipeline", &error, &cause).await?;
                return Ok(Step::Finished("failed"));
            }
        };
        let after_task = matches!(self.machine.states.get(&run.state), Some(State::Task { .. }));
        match next {
            Transition::End => Ok(Step::Finished("succeeded")),
            Transition::Next(n) => {
                run.state = n;
                run.attempt = 0;
                run.next_run_at_us = now_us();
                // Durable progress after each Task, lease kept: this runner carries on. Choice
                // and Pass states are pure functions of the saved document and need no save.
                if after_task {
                    self.queue.save_run(run, now_us() + LEASE.as_micros() as i64, now_us()).await?;
                }
                Ok(Step::Continue)
            }
        }
    }

    /// Runs a Task. Extraction of a video by URL first downloads it with the slot given
    /// back (in the download pool, which is bounded on its own), then waits for a turn at
    /// media analysis and takes a slot again; waits do not count against the Task's timeout,
    /// as a message waiting in SQS would not make its Lambda time out. The run's lease is
    /// renewed all along, so a long download or stage is never taken for a crashed one and
    /// claimed twice.
    async fn task(
        &self,
        stage: Stage,
        run: &PipelineRun,
        timeout: Option<Duration>,
        slot: &mut Option<OwnedSemaphorePermit>,
    ) -> domain::Result<Result<Value, (String, String)>> {
        let work = async {
            let mut turns = Vec::new();
            if stage == Stage::Extraction {
                let plan = domain::pipeline::plan_extraction(&self.ctx, &run.data)
                    .await
                    .map_err(|e| (e.type_name().to_string(), e.to_string()))?;
                if let Some((job_id, url)) = plan.download {
                    drop(slot.take());
                    let _place = self.downloads.acquire().await.expect("semaphore open");
                    let fetched = domain::pipeline::download_source(&self.ctx, job_id, &url);
                    let fetched = match timeout {
                        Some(t) => tokio::time::timeout(t, fetched)
                            .await
                            .map_err(|_| ("States.Timeout".to_string(), format!("downloading source_url took longer than {t:?}")))?,
                        None => fetched.await,
                    };
                    fetched.map_err(|e| (e.type_name().to_string(), e.to_string()))?;
                }
                if plan.analyses_media {
                    turns.push(self.analyses.clone().acquire_owned().await.expect("semaphore open"));
                }
            }
            if let Some((_, limit)) = self.stage_limits.iter().find(|(s, _)| *s == stage) {
                turns.push(limit.clone().acquire_owned().await.expect("semaphore open"));
            }
            if slot.is_none() {
                *slot = Some(self.slots.clone().acquire_owned().await.expect("semaphore open"));
            }
            self.execute(stage, &run.data, timeout).await
        };
        tokio::pin!(work);
        loop {
            tokio::select! {
                result = &mut work => return Ok(result),
                _ = tokio::time::sleep(LEASE / 3) => self.queue.save_run(run, now_us() + LEASE.as_micros() as i64, now_us()).await?,
            }
        }
    }

    async fn execute(&self, stage: Stage, data: &Value, timeout: Option<Duration>) -> Result<Value, (String, String)> {
        let work = run_stage(&self.ctx, stage, data.clone());
        let result = match timeout {
            Some(t) => tokio::time::timeout(t, work)
                .await
                .map_err(|_| ("States.Timeout".to_string(), format!("{} took longer than {t:?}", stage.as_str())))?,
            None => work.await,
        };
        result.map_err(|e: StageError| (e.type_name().to_string(), e.to_string()))
    }

    async fn runtime_failure(&self, run: &PipelineRun, why: &str) -> domain::Result<Step> {
        self.fail_job(run.job_id, "runner", "States.Runtime", why).await?;
        Ok(Step::Finished("failed"))
    }

    /// The execution failed outright: make sure the job says so (a no-op if it already ended).
    /// A Fail state's own error names no cause of the job's failure: the failure stage has
    /// already credited it back or not.
    async fn fail_job(&self, job_id: Uuid, stage: &str, error: &str, cause: &str) -> domain::Result<()> {
        let errors = json!([{"stage": stage, "error": error, "reason": cause}]);
        domain::pipeline::fail_job(&self.ctx, job_id, &errors, None).await?;
        if stage != "pipeline" && domain::usage::refunded(error) {
            self.ctx.store.reverse_charge(job_id, &format!("{stage}: {error}"), now()).await?;
        }
        Ok(())
    }
}

/// The embedded default's `Pipeline`: a stored queued job is already in the runner's queue
/// (the runner picks up queued jobs), so a hand-off only wakes the runner.
pub struct LocalPipeline {
    wake: Arc<Notify>,
    estimate: CompletionEstimate,
}

impl LocalPipeline {
    pub fn new(wake: Arc<Notify>, store: Arc<dyn Store>) -> Self {
        LocalPipeline { wake, estimate: CompletionEstimate::new(store) }
    }
}

#[async_trait]
impl Pipeline for LocalPipeline {
    async fn enqueue(&self, _job_id: Uuid) -> domain::Result<()> {
        self.wake.notify_one();
        Ok(())
    }

    async fn estimated_completion_secs(&self) -> u32 {
        self.estimate.secs().await
    }
}

/// For logs and tests: when a run is next due.
pub fn due_at(run: &PipelineRun) -> time::OffsetDateTime {
    from_micros(run.next_run_at_us)
}
