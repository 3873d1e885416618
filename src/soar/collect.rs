//! Phase 6 (spec/soar.md §9): runs the agents in the plan's dependency waves, at most
//! `soar.agents.maxConcurrent` at a time, passing each its direct dependencies' outputs.

use std::sync::Arc;
use std::time::Instant;

use futures_util::future::join_all;
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::soar::agents::{self, AgentOutput, AgentSpec};
use crate::soar::pipeline::Run;
use crate::soar::route::Routing;
use crate::soar::types::{AgentStatus, ContextChunk, PhaseKey};
use crate::soar::verify::VerifiedPlan;

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WaveReport {
    pub index: usize,
    pub subgoals: Vec<usize>,
    pub duration_ms: f64,
}

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CollectStats {
    pub total_duration_ms: f64,
    pub waves_executed: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub timed_out: usize,
    pub skipped: usize,
    pub cancelled: usize,
    pub fallbacks: usize,
    pub max_parallel: usize,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CollectResult {
    /// One per subgoal, by subgoal index (never by completion order).
    pub outputs: Vec<AgentOutput>,
    pub waves: Vec<WaveReport>,
    pub stats: CollectStats,
    pub critical_failure: Option<usize>,
    /// Completion order, for traces.
    pub completion_order: Vec<usize>,
}

impl CollectResult {
    pub fn succeeded(&self) -> usize {
        self.stats.succeeded
    }
}

/// Runs every wave. Cancellation of `run.cancel` (the caller or the deadline) stops new agents and
/// aborts running ones; their outputs say `Cancelled`.
pub async fn collect(
    run: &Run,
    plan: &VerifiedPlan,
    routing: &Routing,
    registry: &[AgentSpec],
    pinned: &[ContextChunk],
) -> CollectResult {
    let started = Instant::now();
    let p = plan.plan();
    let n = p.subgoals.len();
    let mut outputs: Vec<Option<AgentOutput>> = vec![None; n];
    let mut waves = Vec::new();
    let mut completion_order = Vec::new();
    let mut critical_failure = None;
    let semaphore = Arc::new(Semaphore::new(run.config.soar.agents.max_concurrent.max(1) as usize));
    let running = std::sync::atomic::AtomicUsize::new(0);
    let max_parallel = std::sync::atomic::AtomicUsize::new(0);
    let done = std::sync::atomic::AtomicUsize::new(0);
    let wave_count = p.waves.len();
    for (wi, wave) in p.waves.iter().enumerate() {
        if critical_failure.is_some() || run.cancel.is_cancelled() {
            break;
        }
        let wave_started = Instant::now();
        let order = std::sync::Mutex::new(Vec::new());
        let tasks = wave.iter().map(|&i| {
            let sg = &p.subgoals[i];
            let a = &routing.assignments[i];
            let agent = registry.iter().find(|s| s.id == a.agent_id).cloned().expect("routing names registered agents");
            let deps = agents::dependency_block(&run.config.soar, p, sg, &outputs);
            let semaphore = Arc::clone(&semaphore);
            let (running, max_parallel, done, order) = (&running, &max_parallel, &done, &order);
            async move {
                let permit = tokio::select! {
                    p = semaphore.acquire_owned() => p.ok(),
                    () = run.cancel.cancelled() => None,
                };
                let Some(_permit) = permit else {
                    return AgentOutput::new(i, &agent.id, AgentStatus::Cancelled, Some("cancelled".into()));
                };
                let now = running.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                max_parallel.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                run.progress_collect(
                    wi,
                    wave_count,
                    done.load(std::sync::atomic::Ordering::SeqCst),
                    n,
                    &format!("{} started", sg.id),
                );
                let token = run.cancel.child_token();
                let out = agents::run_agent(run, p, sg, &agent, a.hint.as_deref(), deps, pinned, &token).await;
                running.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                let d = done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                order.lock().unwrap_or_else(|e| e.into_inner()).push(i);
                run.progress_collect(wi, wave_count, d, n, &format!("{} finished", sg.id));
                out
            }
        });
        let results = join_all(tasks).await;
        completion_order.extend(order.into_inner().unwrap_or_else(|e| e.into_inner()));
        for out in results {
            let i = out.subgoal_index;
            if p.subgoals[i].is_critical && out.status != AgentStatus::Succeeded && critical_failure.is_none() {
                critical_failure = Some(i);
            }
            outputs[i] = Some(out);
        }
        waves.push(WaveReport {
            index: wi,
            subgoals: wave.clone(),
            duration_ms: wave_started.elapsed().as_secs_f64() * 1000.0,
        });
    }
    let reason = match critical_failure {
        Some(i) => format!("critical subgoal {} failed", p.subgoals[i].id),
        None => "cancelled before it started".to_owned(),
    };
    let outputs: Vec<AgentOutput> = outputs
        .into_iter()
        .enumerate()
        .map(|(i, o)| {
            o.unwrap_or_else(|| {
                AgentOutput::new(i, &routing.assignments[i].agent_id, AgentStatus::Skipped, Some(reason.clone()))
            })
        })
        .collect();
    let mut stats = CollectStats {
        total_duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        waves_executed: waves.len(),
        max_parallel: max_parallel.into_inner(),
        ..CollectStats::default()
    };
    for o in &outputs {
        match o.status {
            AgentStatus::Succeeded => stats.succeeded += 1,
            AgentStatus::Failed => stats.failed += 1,
            AgentStatus::TimedOut => stats.timed_out += 1,
            AgentStatus::Skipped => stats.skipped += 1,
            AgentStatus::Cancelled => stats.cancelled += 1,
        }
        stats.fallbacks += usize::from(o.fallback_used);
    }
    let _ = PhaseKey::Collect;
    CollectResult { outputs, waves, stats, critical_failure, completion_order }
}
