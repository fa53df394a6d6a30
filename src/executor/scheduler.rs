//! The scheduler: starts every step whose `needs` are done, never more than
//! `max_parallel` at once, and decides what a failure means for the rest of the run.
//!
//! A failed step's ordinary dependents (transitively) never run. With `on_failure:
//! stop` (the default) no new ordinary step starts after a failure and running steps
//! finish; with `--abort-running` they are cancelled (their runner terminates the JOB
//! instance). With `on_failure: continue`, independent branches go on. A skipped step
//! (`when:` or `if:` false) satisfies its dependents. A handler (an `if:` admitting
//! failure) starts once all of its needs have ended, however, even after a stop; after
//! an interrupt only the handlers that admit one (`always()`, `cancelled()`) start.
//! Handlers get a control of their own, so neither `--abort-running` nor the first
//! interrupt cuts one short. The scheduler knows nothing about JOB: it drives a
//! [`StepRunner`], so a fake runner can prove the ordering rules on random graphs.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::events::{EventSink, NotRunReason, RunEvent, StepRef};
use crate::compile::OnFailure;

/// One node of the step graph, as the scheduler sees it.
#[derive(Debug, Clone)]
pub struct StepNode {
    /// The step id.
    pub id: String,
    /// Indexes of the steps it needs.
    pub needs: Vec<usize>,
    /// What its failure means for the rest of the run.
    pub on_failure: OnFailure,
    /// Whether its `if` admits upstream failures (a handler), and interrupts.
    pub handles: Handles,
    /// A fanned-out group's `(group, max_parallel)`: at most that many of the group
    /// run at once.
    pub group: Option<(usize, usize)>,
}

/// What endings of its needs a step is considered after.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Handles {
    /// Only success (or skip) of every need: an ordinary step.
    #[default]
    Nothing,
    /// Any ending of its needs (`failure()`); not after an interrupt.
    Failure,
    /// Any ending, also after an interrupt (`always()`, `cancelled()`).
    Interrupt,
}

/// Cancellation handed to every running step.
#[derive(Debug, Clone)]
pub struct RunControl {
    /// Cancelled on Ctrl-C / SIGTERM.
    pub interrupt: CancellationToken,
    /// Cancelled on interrupt and on `--abort-running` after a failure: the step must
    /// stop waiting and, unless it is an interrupt with `--detach`, terminate its instance.
    pub abort: CancellationToken,
    /// `--detach`: on interrupt, leave running instances alone.
    pub detach: bool,
}

impl RunControl {
    /// Whether a cancelled step should leave its instance running.
    pub fn should_leave_running(&self) -> bool {
        self.detach && self.interrupt.is_cancelled()
    }
}

/// What a step's runner receives besides its index.
#[derive(Debug, Clone)]
pub struct StepContext<O> {
    /// Outputs of every step that already succeeded, by index.
    pub upstream: Arc<BTreeMap<usize, O>>,
    /// When it could start (for the handoff latency): the last of its needs observed
    /// finished, or, when it then waited for a free slot, the finish that freed one.
    pub ready_at: Option<Instant>,
    /// Cancellation.
    pub control: RunControl,
    /// How every step that has ended so far ended, by index.
    pub finished: Arc<BTreeMap<usize, Final>>,
    /// Whether the run was interrupted before the step started.
    pub interrupted: bool,
}

/// How one step ended, as the scheduler needs to know it.
#[derive(Debug, Clone)]
pub enum StepEnd<O> {
    /// Succeeded; dependents may start.
    Succeeded {
        /// What later steps may read.
        output: O,
        /// When the finish was observed (callback received or poll answered).
        observed_at: Instant,
    },
    /// `when:` was false; dependents may start.
    Skipped,
    /// Failed; dependents never run.
    Failed,
    /// Cancelled while running.
    Interrupted,
}

/// Runs one step. Implemented by the JOB step runner and by test fakes.
pub trait StepRunner: Send + Sync + 'static {
    /// What a succeeded step hands to later steps.
    type Output: Clone + Send + Sync + 'static;

    /// Runs step `index` to its end. Emits its own start/finish events.
    fn run(
        self: Arc<Self>,
        index: usize,
        ctx: StepContext<Self::Output>,
    ) -> impl Future<Output = StepEnd<Self::Output>> + Send + 'static;
}

/// Scheduler settings.
#[derive(Debug, Clone)]
pub struct ScheduleOptions {
    /// Most steps running at once (≥ 1).
    pub max_parallel: usize,
    /// After a failure with `on_failure: stop`, cancel running steps too.
    pub abort_running: bool,
    /// `--detach`.
    pub detach: bool,
}

/// The final state of each step after scheduling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Final {
    /// Succeeded.
    Succeeded,
    /// Skipped by `when:`.
    Skipped,
    /// Failed.
    Failed,
    /// Never started.
    NotRun,
    /// Cancelled while running.
    Interrupted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    Running,
    Done(Final),
}

/// A step's state when scheduling begins: pending for a fresh run; a resumed run
/// starts with the steps its journal settled.
#[derive(Debug, Clone)]
pub enum Initial<O> {
    /// Not run yet: scheduled when its needs are met.
    Pending,
    /// Succeeded earlier, with what later steps may read; not run again.
    Succeeded(O),
    /// Skipped earlier (`when:` false); satisfies its dependents.
    Skipped,
    /// Failed earlier and not selected to run again; its dependents do not run.
    Failed,
    /// Did not run and is not selected to run now; its dependents do not run either.
    NotRun,
}

/// Runs the whole graph. `interrupt` is the user's Ctrl-C token. Returns each step's
/// final state in plan order.
pub async fn run_graph<R: StepRunner>(
    steps: &[StepNode],
    runner: Arc<R>,
    options: &ScheduleOptions,
    interrupt: CancellationToken,
    events: &EventSink,
) -> Vec<Final> {
    run_graph_from(steps, runner, options, interrupt, events, Vec::new()).await
}

/// Runs the graph from pre-set step states (`initial`, in plan order; missing entries
/// are pending). Pre-set steps emit no events here; the steps they block are reported
/// not run, as after a failure.
pub async fn run_graph_from<R: StepRunner>(
    steps: &[StepNode],
    runner: Arc<R>,
    options: &ScheduleOptions,
    interrupt: CancellationToken,
    events: &EventSink,
    initial: Vec<Initial<R::Output>>,
) -> Vec<Final> {
    let n = steps.len();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, step) in steps.iter().enumerate() {
        for &need in &step.needs {
            if need < n {
                dependents[need].push(i);
            }
        }
    }
    let control = RunControl {
        interrupt: interrupt.clone(),
        abort: interrupt.child_token(),
        detach: options.detach,
    };
    let max_parallel = options.max_parallel.max(1);

    let mut state = vec![State::Pending; n];
    let mut outputs: BTreeMap<usize, R::Output> = BTreeMap::new();
    let mut blocked_by: Vec<usize> = Vec::new();
    for (i, preset) in initial.into_iter().enumerate().take(n) {
        state[i] = match preset {
            Initial::Pending => State::Pending,
            Initial::Succeeded(output) => {
                outputs.insert(i, output);
                State::Done(Final::Succeeded)
            }
            Initial::Skipped => State::Done(Final::Skipped),
            Initial::Failed => {
                blocked_by.push(i);
                State::Done(Final::Failed)
            }
            Initial::NotRun => {
                blocked_by.push(i);
                State::Done(Final::NotRun)
            }
        };
    }
    let mut ready: BTreeSet<usize> = (0..n)
        .filter(|&i| state[i] == State::Pending && is_ready(i, steps, &state))
        .collect();
    for i in blocked_by {
        mark_downstream(i, steps, &dependents, &mut state, &mut ready, &|d| {
            events.emit(RunEvent::StepNotRun {
                step: StepRef {
                    index: d,
                    id: steps[d].id.clone(),
                },
                reason: NotRunReason::UpstreamFailed {
                    upstream: steps[i].id.clone(),
                },
            });
        });
    }
    // Handlers run to their end whatever happens to the run meanwhile (a rollback cut
    // in half is worse than either): neither `--abort-running` nor the first Ctrl-C
    // reaches them; the second Ctrl-C still exits at once.
    let handler_control = RunControl {
        interrupt: CancellationToken::new(),
        abort: CancellationToken::new(),
        detach: options.detach,
    };
    let mut observed_at: Vec<Option<Instant>> = vec![None; n];
    // When the latest slot was freed. A ready step waiting for `max_parallel` starts
    // only at a later finish; its handoff counts from that one, since the wait before
    // is the limit's doing, not baton's.
    let mut slot_freed_at: Option<Instant> = None;
    let mut join_set: JoinSet<(usize, StepEnd<R::Output>)> = JoinSet::new();
    let mut task_steps: std::collections::HashMap<tokio::task::Id, usize> =
        std::collections::HashMap::new();
    let mut running = 0usize;
    let mut group_running: std::collections::HashMap<usize, usize> =
        std::collections::HashMap::new();
    let mut stopped = false;
    let mut interrupted = false;

    let step_ref = |i: usize| StepRef {
        index: i,
        id: steps[i].id.clone(),
    };

    loop {
        if !interrupted && interrupt.is_cancelled() {
            // Running steps see the same token (through `abort`) and wind down
            // themselves; here we only stop starting new ones, except the handlers an
            // interrupt calls for.
            interrupted = true;
            settle_all(
                steps,
                &dependents,
                &mut state,
                &mut ready,
                |s| s != Handles::Interrupt,
                &|d| {
                    events.emit(RunEvent::StepNotRun {
                        step: step_ref(d),
                        reason: NotRunReason::Interrupted,
                    });
                },
            );
        }
        {
            while running < max_parallel {
                let room = |i: &usize| {
                    steps[*i].group.is_none_or(|(g, limit)| {
                        group_running.get(&g).copied().unwrap_or(0) < limit
                    })
                };
                let Some(i) = ready.iter().copied().find(room) else {
                    break;
                };
                ready.remove(&i);
                let blocked = match steps[i].handles {
                    Handles::Nothing => stopped || interrupted,
                    Handles::Failure => interrupted,
                    Handles::Interrupt => false,
                };
                if blocked {
                    let reason = if interrupted {
                        NotRunReason::Interrupted
                    } else {
                        NotRunReason::RunStopped
                    };
                    events.emit(RunEvent::StepNotRun {
                        step: step_ref(i),
                        reason,
                    });
                    state[i] = State::Done(Final::NotRun);
                    release(i, steps, &dependents, &state, &mut ready);
                    continue;
                }
                if let Some((g, _)) = steps[i].group {
                    *group_running.entry(g).or_insert(0) += 1;
                }
                state[i] = State::Running;
                running += 1;
                let needs_at = steps[i].needs.iter().filter_map(|&d| observed_at[d]).max();
                let ready_at = match (needs_at, slot_freed_at) {
                    (Some(needs), Some(slot)) => Some(needs.max(slot)),
                    (needs, slot) => needs.or(slot),
                };
                let finished: BTreeMap<usize, Final> = state
                    .iter()
                    .enumerate()
                    .filter_map(|(j, s)| match s {
                        State::Done(f) => Some((j, *f)),
                        _ => None,
                    })
                    .collect();
                let ctx = StepContext {
                    upstream: Arc::new(outputs.clone()),
                    ready_at,
                    control: if steps[i].handles == Handles::Nothing {
                        control.clone()
                    } else {
                        handler_control.clone()
                    },
                    finished: Arc::new(finished),
                    interrupted,
                };
                let runner = Arc::clone(&runner);
                let handle = join_set.spawn(async move { (i, runner.run(i, ctx).await) });
                task_steps.insert(handle.id(), i);
            }
        }
        if running == 0 {
            break;
        }
        tokio::select! {
            joined = join_set.join_next() => {
                let Some(joined) = joined else { break };
                running -= 1;
                slot_freed_at = Some(Instant::now());
                let finished = match &joined {
                    Ok((i, _)) => Some(*i),
                    Err(error) => task_steps.get(&error.id()).copied(),
                };
                if let Some((g, _)) = finished.and_then(|i| steps[i].group)
                    && let Some(count) = group_running.get_mut(&g)
                {
                    *count = count.saturating_sub(1);
                }
                let (i, end) = match joined {
                    Ok(pair) => pair,
                    Err(error) => {
                        // A panicking runner must not take the run down with it; its
                        // step counts as failed.
                        let lost = task_steps.get(&error.id()).copied();
                        events.emit(RunEvent::Warning {
                            step: None,
                            message: format!("a step task ended abnormally: {error}"),
                        });
                        match lost {
                            Some(i) => (i, StepEnd::Failed),
                            None => continue,
                        }
                    }
                };
                match end {
                    StepEnd::Succeeded { output, observed_at: at } => {
                        state[i] = State::Done(Final::Succeeded);
                        observed_at[i] = Some(at);
                        slot_freed_at = Some(at);
                        outputs.insert(i, output);
                        release(i, steps, &dependents, &state, &mut ready);
                    }
                    StepEnd::Skipped => {
                        state[i] = State::Done(Final::Skipped);
                        release(i, steps, &dependents, &state, &mut ready);
                    }
                    StepEnd::Failed => {
                        state[i] = State::Done(Final::Failed);
                        mark_downstream(i, steps, &dependents, &mut state, &mut ready, &|d| {
                            events.emit(RunEvent::StepNotRun {
                                step: step_ref(d),
                                reason: NotRunReason::UpstreamFailed { upstream: steps[i].id.clone() },
                            });
                        });
                        if steps[i].on_failure == OnFailure::Stop && !stopped {
                            stopped = true;
                            if options.abort_running && running > 0 {
                                control.abort.cancel();
                            }
                            settle_all(steps, &dependents, &mut state, &mut ready, |s| s == Handles::Nothing, &|d| {
                                events.emit(RunEvent::StepNotRun {
                                    step: step_ref(d),
                                    reason: NotRunReason::RunStopped,
                                });
                            });
                        }
                    }
                    StepEnd::Interrupted => {
                        state[i] = State::Done(Final::Interrupted);
                        mark_downstream(i, steps, &dependents, &mut state, &mut ready, &|d| {
                            events.emit(RunEvent::StepNotRun {
                                step: step_ref(d),
                                reason: NotRunReason::UpstreamFailed { upstream: steps[i].id.clone() },
                            });
                        });
                    }
                }
            }
            _ = interrupt.cancelled(), if !interrupted => {
                // Handled at the top of the loop, which also sees an interrupt that
                // raced a step's end.
            }
        }
    }

    let reason = if interrupted {
        NotRunReason::Interrupted
    } else {
        NotRunReason::RunStopped
    };
    state
        .iter()
        .enumerate()
        .map(|(i, s)| match s {
            State::Done(f) => *f,
            State::Pending | State::Running => {
                events.emit(RunEvent::StepNotRun {
                    step: step_ref(i),
                    reason: reason.clone(),
                });
                Final::NotRun
            }
        })
        .collect()
}

/// Whether step `i` may start: an ordinary step once every need succeeded or was
/// skipped, a handler once every need has ended, however.
fn is_ready(i: usize, steps: &[StepNode], state: &[State]) -> bool {
    let handler = steps[i].handles != Handles::Nothing;
    steps[i].needs.iter().all(|&need| match state.get(need) {
        Some(State::Done(Final::Succeeded | Final::Skipped)) | None => true,
        Some(State::Done(_)) => handler,
        _ => false,
    })
}

/// A step that ended releases each dependent that may now start.
fn release(
    i: usize,
    steps: &[StepNode],
    dependents: &[Vec<usize>],
    state: &[State],
    ready: &mut BTreeSet<usize>,
) {
    for &d in &dependents[i] {
        if state[d] == State::Pending && is_ready(d, steps, state) {
            ready.insert(d);
        }
    }
}

/// Marks every pending ordinary step downstream of `i` as not run, reporting each
/// once. Handlers are left to decide for themselves once all their needs have ended.
fn mark_downstream(
    i: usize,
    steps: &[StepNode],
    dependents: &[Vec<usize>],
    state: &mut [State],
    ready: &mut BTreeSet<usize>,
    report: &dyn Fn(usize),
) {
    let mut stack = vec![i];
    while let Some(current) = stack.pop() {
        for &d in &dependents[current] {
            if state[d] != State::Pending {
                continue;
            }
            if steps[d].handles != Handles::Nothing {
                if is_ready(d, steps, state) {
                    ready.insert(d);
                }
                continue;
            }
            state[d] = State::Done(Final::NotRun);
            ready.remove(&d);
            report(d);
            stack.push(d);
        }
    }
}

/// Marks every pending step that `will_not_start` says cannot start any more as not
/// run, then lets the handlers that were waiting for them start.
fn settle_all(
    steps: &[StepNode],
    dependents: &[Vec<usize>],
    state: &mut [State],
    ready: &mut BTreeSet<usize>,
    will_not_start: impl Fn(Handles) -> bool,
    report: &dyn Fn(usize),
) {
    let mut ended = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        if state[i] == State::Pending && will_not_start(step.handles) {
            state[i] = State::Done(Final::NotRun);
            ready.remove(&i);
            report(i);
            ended.push(i);
        }
    }
    for i in ended {
        release(i, steps, dependents, state, ready);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Records what the scheduler made it do and checks the rules as it goes.
    struct FakeRunner {
        needs: Vec<Vec<usize>>,
        fail: Vec<bool>,
        skip: Vec<bool>,
        yields: Vec<u8>,
        running: AtomicUsize,
        max_seen: AtomicUsize,
        finished: Mutex<Vec<bool>>,
        started: Mutex<Vec<usize>>,
        violations: Mutex<Vec<String>>,
    }

    impl FakeRunner {
        fn new(needs: Vec<Vec<usize>>, fail: Vec<bool>, skip: Vec<bool>, yields: Vec<u8>) -> Self {
            let n = needs.len();
            FakeRunner {
                needs,
                fail,
                skip,
                yields,
                running: AtomicUsize::new(0),
                max_seen: AtomicUsize::new(0),
                finished: Mutex::new(vec![false; n]),
                started: Mutex::new(Vec::new()),
                violations: Mutex::new(Vec::new()),
            }
        }
    }

    impl StepRunner for FakeRunner {
        type Output = usize;
        async fn run(self: Arc<Self>, index: usize, ctx: StepContext<usize>) -> StepEnd<usize> {
            {
                let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
                self.max_seen.fetch_max(now, Ordering::SeqCst);
                {
                    let finished = self.finished.lock().unwrap();
                    for &need in &self.needs[index] {
                        // A need that ended without running (not run) has ended too.
                        if !finished[need] && !ctx.finished.contains_key(&need) {
                            self.violations
                                .lock()
                                .unwrap()
                                .push(format!("{index} started before its need {need} finished"));
                        }
                    }
                }
                self.started.lock().unwrap().push(index);
                for &need in &self.needs[index] {
                    let succeeded = ctx.finished.get(&need) == Some(&Final::Succeeded);
                    if succeeded && ctx.upstream.get(&need) != Some(&need) {
                        self.violations
                            .lock()
                            .unwrap()
                            .push(format!("{index} did not see the output of {need}"));
                    }
                }
                for _ in 0..self.yields[index] {
                    tokio::task::yield_now().await;
                }
                self.finished.lock().unwrap()[index] = true;
                self.running.fetch_sub(1, Ordering::SeqCst);
                if self.skip[index] {
                    StepEnd::Skipped
                } else if self.fail[index] {
                    StepEnd::Failed
                } else {
                    StepEnd::Succeeded {
                        output: index,
                        observed_at: Instant::now(),
                    }
                }
            }
        }
    }

    fn descendants(needs: &[Vec<usize>], of: usize) -> BTreeSet<usize> {
        let mut out = BTreeSet::new();
        let mut changed = true;
        while changed {
            changed = false;
            for (i, ns) in needs.iter().enumerate() {
                if !out.contains(&i) && ns.iter().any(|&d| d == of || out.contains(&d)) {
                    out.insert(i);
                    changed = true;
                }
            }
        }
        out
    }

    fn dag() -> impl Strategy<Value = (Vec<Vec<usize>>, Vec<bool>, Vec<bool>, Vec<u8>)> {
        (1usize..14).prop_flat_map(|n| {
            (
                proptest::collection::vec(
                    proptest::collection::vec(any::<prop::sample::Index>(), 0..4),
                    n,
                ),
                proptest::collection::vec(proptest::bool::weighted(0.15), n),
                proptest::collection::vec(proptest::bool::weighted(0.15), n),
                proptest::collection::vec(0u8..20, n),
            )
                .prop_map(move |(raw, fail, skip, yields)| {
                    // Edges only point backwards in plan order, so the graph is acyclic.
                    let needs = raw
                        .into_iter()
                        .enumerate()
                        .map(|(i, picks)| {
                            if i == 0 {
                                return Vec::new();
                            }
                            let set: BTreeSet<usize> = picks.iter().map(|p| p.index(i)).collect();
                            set.into_iter().collect()
                        })
                        .collect();
                    (needs, fail, skip, yields)
                })
        })
    }

    fn run(
        needs: &[Vec<usize>],
        fail: &[bool],
        skip: &[bool],
        yields: &[u8],
        max_parallel: usize,
        on_failure: OnFailure,
    ) -> (Arc<FakeRunner>, Vec<Final>) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let nodes: Vec<StepNode> = needs
            .iter()
            .enumerate()
            .map(|(i, ns)| StepNode {
                group: None,
                id: format!("s{i}"),
                needs: ns.clone(),
                on_failure,
                handles: Handles::Nothing,
            })
            .collect();
        let runner = Arc::new(FakeRunner::new(
            needs.to_vec(),
            fail.to_vec(),
            skip.to_vec(),
            yields.to_vec(),
        ));
        let options = ScheduleOptions {
            max_parallel,
            abort_running: false,
            detach: false,
        };
        let (sink, _rx) = EventSink::channel();
        let finals = rt.block_on(run_graph(
            &nodes,
            Arc::clone(&runner),
            &options,
            CancellationToken::new(),
            &sink,
        ));
        (runner, finals)
    }

    /// A fanned-out group's `max_parallel` holds below the run's own limit.
    #[test]
    fn a_group_limit_caps_its_instances() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let n = 5;
        let nodes: Vec<StepNode> = (0..n)
            .map(|i| StepNode {
                group: Some((0, 2)),
                id: format!("deploy[{i}]"),
                needs: Vec::new(),
                on_failure: OnFailure::Stop,
                handles: Handles::Nothing,
            })
            .collect();
        let runner = Arc::new(FakeRunner::new(
            vec![Vec::new(); n],
            vec![false; n],
            vec![false; n],
            vec![50; n],
        ));
        let options = ScheduleOptions {
            max_parallel: 8,
            abort_running: false,
            detach: false,
        };
        let (sink, _rx) = EventSink::channel();
        let finals = rt.block_on(run_graph(
            &nodes,
            Arc::clone(&runner),
            &options,
            CancellationToken::new(),
            &sink,
        ));
        assert!(finals.iter().all(|f| *f == Final::Succeeded), "{finals:?}");
        assert!(runner.max_seen.load(Ordering::SeqCst) <= 2);
        assert_eq!(runner.started.lock().unwrap().len(), n);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn edges_and_parallel_limit_hold(
            (needs, fail, skip, yields) in dag(),
            max_parallel in 1usize..5,
            stop in any::<bool>(),
        ) {
            let on_failure = if stop { OnFailure::Stop } else { OnFailure::Continue };
            let (runner, finals) = run(&needs, &fail, &skip, &yields, max_parallel, on_failure);
            let violations = runner.violations.lock().unwrap().clone();
            prop_assert!(violations.is_empty(), "{violations:?}");
            prop_assert!(runner.max_seen.load(Ordering::SeqCst) <= max_parallel);
            let started = runner.started.lock().unwrap().clone();
            let unique: BTreeSet<usize> = started.iter().copied().collect();
            prop_assert_eq!(unique.len(), started.len(), "a step ran twice");
            for (i, f) in finals.iter().enumerate() {
                prop_assert_eq!(started.contains(&i), *f != Final::NotRun);
                if *f == Final::Failed {
                    for d in descendants(&needs, i) {
                        prop_assert!(!started.contains(&d), "{} ran after {} failed", d, i);
                    }
                }
            }
            if !stop {
                // With `continue`, everything not downstream of a failure runs.
                let mut blocked = BTreeSet::new();
                for (i, f) in finals.iter().enumerate() {
                    if *f == Final::Failed { blocked.extend(descendants(&needs, i)); }
                }
                for (i, f) in finals.iter().enumerate() {
                    prop_assert_eq!(*f == Final::NotRun, blocked.contains(&i));
                }
            }
        }
    }

    #[test]
    fn stop_starts_nothing_new_after_a_failure() {
        // Serial, independent steps: after s1 fails, s2 and s3 must not start.
        let needs = vec![vec![], vec![], vec![], vec![]];
        let (runner, finals) = run(
            &needs,
            &[false, true, false, false],
            &[false; 4],
            &[0; 4],
            1,
            OnFailure::Stop,
        );
        assert_eq!(
            finals,
            vec![
                Final::Succeeded,
                Final::Failed,
                Final::NotRun,
                Final::NotRun
            ]
        );
        assert_eq!(*runner.started.lock().unwrap(), vec![0, 1]);
    }

    #[test]
    fn preset_states_are_honoured() {
        // s0 succeeded earlier (its output must reach s2), s1 failed earlier and is
        // not selected, s2 needs s0, s3 needs s1, s4 is pending.
        let needs = vec![vec![], vec![], vec![0], vec![1], vec![]];
        let nodes: Vec<StepNode> = needs
            .iter()
            .enumerate()
            .map(|(i, ns)| StepNode {
                group: None,
                id: format!("s{i}"),
                needs: ns.clone(),
                on_failure: OnFailure::Continue,
                handles: Handles::Nothing,
            })
            .collect();
        let runner = Arc::new(FakeRunner::new(
            needs.clone(),
            vec![false; 5],
            vec![false; 5],
            vec![0; 5],
        ));
        runner.finished.lock().unwrap()[0] = true;
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (sink, mut rx) = EventSink::channel();
        let finals = rt.block_on(run_graph_from(
            &nodes,
            Arc::clone(&runner),
            &ScheduleOptions {
                max_parallel: 2,
                abort_running: false,
                detach: false,
            },
            CancellationToken::new(),
            &sink,
            vec![
                Initial::Succeeded(0),
                Initial::Failed,
                Initial::Pending,
                Initial::Pending,
                Initial::Pending,
            ],
        ));
        assert_eq!(
            finals,
            vec![
                Final::Succeeded,
                Final::Failed,
                Final::Succeeded,
                Final::NotRun,
                Final::Succeeded
            ]
        );
        let mut started = runner.started.lock().unwrap().clone();
        started.sort();
        assert_eq!(started, vec![2, 4]);
        assert!(runner.violations.lock().unwrap().is_empty());
        let mut not_run = Vec::new();
        while let Ok(event) = rx.try_recv() {
            if let RunEvent::StepNotRun { step, reason } = event {
                not_run.push((step.id, reason));
            }
        }
        assert_eq!(
            not_run,
            vec![(
                "s3".to_owned(),
                NotRunReason::UpstreamFailed {
                    upstream: "s1".into()
                }
            )]
        );
    }

    #[test]
    fn skipped_step_satisfies_dependents() {
        let needs = vec![vec![], vec![0]];
        let (_, finals) = run(
            &needs,
            &[false; 2],
            &[true, false],
            &[0; 2],
            2,
            OnFailure::Stop,
        );
        assert_eq!(finals, vec![Final::Skipped, Final::Succeeded]);
    }

    fn nodes(needs: &[Vec<usize>], handles: &[Handles], on_failure: OnFailure) -> Vec<StepNode> {
        needs
            .iter()
            .enumerate()
            .map(|(i, ns)| StepNode {
                id: format!("s{i}"),
                needs: ns.clone(),
                on_failure,
                handles: handles[i],
                group: None,
            })
            .collect()
    }

    fn run_nodes(
        nodes: &[StepNode],
        runner: Arc<FakeRunner>,
        max_parallel: usize,
        interrupt: CancellationToken,
    ) -> Vec<Final> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (sink, _rx) = EventSink::channel();
        rt.block_on(run_graph(
            nodes,
            runner,
            &ScheduleOptions {
                max_parallel,
                abort_running: false,
                detach: false,
            },
            interrupt,
            &sink,
        ))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn handlers_run_once_every_need_has_ended(
            (needs, fail, skip, yields) in dag(),
            picks in proptest::collection::vec(0u8..3, 14),
            max_parallel in 1usize..5,
        ) {
            let handles: Vec<Handles> = (0..needs.len())
                .map(|i| match picks[i] {
                    0 => Handles::Nothing,
                    1 => Handles::Failure,
                    _ => Handles::Interrupt,
                })
                .collect();
            let runner = Arc::new(FakeRunner::new(needs.clone(), fail.clone(), skip.clone(), yields.clone()));
            let finals = run_nodes(
                &nodes(&needs, &handles, OnFailure::Continue),
                Arc::clone(&runner),
                max_parallel,
                CancellationToken::new(),
            );
            let violations = runner.violations.lock().unwrap().clone();
            prop_assert!(violations.is_empty(), "{violations:?}");
            let started = runner.started.lock().unwrap().clone();
            let unique: BTreeSet<usize> = started.iter().copied().collect();
            prop_assert_eq!(unique.len(), started.len(), "a step ran twice");
            for (i, f) in finals.iter().enumerate() {
                let needs_ok = needs[i]
                    .iter()
                    .all(|&d| matches!(finals[d], Final::Succeeded | Final::Skipped));
                // With `continue` and no interrupt, a handler always gets its turn and
                // an ordinary step runs exactly when its needs went well.
                let should_run = handles[i] != Handles::Nothing || needs_ok;
                prop_assert_eq!(started.contains(&i), should_run, "step {} ended {:?}", i, f);
            }
        }
    }

    #[test]
    fn a_stopped_run_still_runs_the_handlers_a_failure_triggers() {
        // s0 fails (stop); s1 needs it; s2 handles s1; s3 is independent; s4 follows s2.
        let needs = vec![vec![], vec![0], vec![1], vec![], vec![2]];
        let handles = [
            Handles::Nothing,
            Handles::Nothing,
            Handles::Failure,
            Handles::Nothing,
            Handles::Nothing,
        ];
        let runner = Arc::new(FakeRunner::new(
            needs.clone(),
            vec![true, false, false, false, false],
            vec![false; 5],
            vec![0; 5],
        ));
        let finals = run_nodes(
            &nodes(&needs, &handles, OnFailure::Stop),
            Arc::clone(&runner),
            1,
            CancellationToken::new(),
        );
        assert_eq!(
            finals,
            vec![
                Final::Failed,
                Final::NotRun,
                Final::Succeeded,
                Final::NotRun,
                Final::NotRun
            ]
        );
        assert_eq!(*runner.started.lock().unwrap(), vec![0, 2]);
    }

    /// Waits for the interrupt at step 0, then ends it interrupted.
    struct Blocking {
        started: Mutex<Vec<usize>>,
        controls: Mutex<Vec<(usize, bool)>>,
        first_started: tokio::sync::Notify,
    }

    impl StepRunner for Blocking {
        type Output = usize;
        async fn run(self: Arc<Self>, index: usize, ctx: StepContext<usize>) -> StepEnd<usize> {
            self.started.lock().unwrap().push(index);
            self.controls
                .lock()
                .unwrap()
                .push((index, ctx.control.abort.is_cancelled()));
            if index == 0 {
                self.first_started.notify_one();
                ctx.control.abort.cancelled().await;
                return StepEnd::Interrupted;
            }
            StepEnd::Succeeded {
                output: index,
                observed_at: Instant::now(),
            }
        }
    }

    #[test]
    fn after_an_interrupt_only_always_and_cancelled_handlers_run() {
        // s0 runs until interrupted; s1 (`failure()`), s2 (`always()`) and s3 (ordinary)
        // need it.
        let needs = vec![vec![], vec![0], vec![0], vec![0]];
        let handles = [
            Handles::Nothing,
            Handles::Failure,
            Handles::Interrupt,
            Handles::Nothing,
        ];
        let runner = Arc::new(Blocking {
            started: Mutex::new(Vec::new()),
            controls: Mutex::new(Vec::new()),
            first_started: tokio::sync::Notify::new(),
        });
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let interrupt = CancellationToken::new();
        let (sink, mut rx) = EventSink::channel();
        let finals = rt.block_on(async {
            let nodes = nodes(&needs, &handles, OnFailure::Stop);
            let cut = interrupt.clone();
            let waiter = Arc::clone(&runner);
            tokio::spawn(async move {
                waiter.first_started.notified().await;
                cut.cancel();
            });
            run_graph(
                &nodes,
                Arc::clone(&runner),
                &ScheduleOptions {
                    max_parallel: 4,
                    abort_running: false,
                    detach: false,
                },
                interrupt,
                &sink,
            )
            .await
        });
        assert_eq!(
            finals,
            vec![
                Final::Interrupted,
                Final::NotRun,
                Final::Succeeded,
                Final::NotRun
            ]
        );
        assert_eq!(*runner.started.lock().unwrap(), vec![0, 2]);
        // The handler's own control is not cancelled by the interrupt it reacts to.
        assert!(runner.controls.lock().unwrap().contains(&(2, false)));
        let mut reasons = Vec::new();
        while let Ok(event) = rx.try_recv() {
            if let RunEvent::StepNotRun { step, reason } = event {
                reasons.push((step.id, reason));
            }
        }
        // s3 may be reported after its need's end or after the interrupt, whichever the
        // scheduler saw first; s1, a `failure()` handler, is not run for the interrupt.
        assert!(
            reasons.contains(&("s1".to_owned(), NotRunReason::Interrupted)),
            "{reasons:?}"
        );
        assert!(reasons.iter().any(|(id, _)| id == "s3"), "{reasons:?}");
    }

    /// s0 fails at once; s1 (a handler of s0) waits until s2 has failed; s2 fails once
    /// s1 runs. Records whether s1 saw its control cancelled.
    struct AbortProbe {
        handler_running: tokio::sync::Notify,
        other_failed: tokio::sync::Notify,
        handler_cut: Mutex<Option<bool>>,
    }

    impl StepRunner for AbortProbe {
        type Output = usize;
        async fn run(self: Arc<Self>, index: usize, ctx: StepContext<usize>) -> StepEnd<usize> {
            match index {
                1 => {
                    self.handler_running.notify_one();
                    self.other_failed.notified().await;
                    *self.handler_cut.lock().unwrap() = Some(ctx.control.abort.is_cancelled());
                    StepEnd::Succeeded {
                        output: 1,
                        observed_at: Instant::now(),
                    }
                }
                2 => {
                    self.handler_running.notified().await;
                    StepEnd::Failed
                }
                _ => StepEnd::Failed,
            }
        }
    }

    #[test]
    fn abort_running_does_not_cut_a_running_handler() {
        // s3 needs s2, so s2's failure is seen as s3 not running.
        let needs = vec![vec![], vec![0], vec![], vec![2]];
        let handles = [
            Handles::Nothing,
            Handles::Failure,
            Handles::Nothing,
            Handles::Nothing,
        ];
        let probe = Arc::new(AbortProbe {
            handler_running: tokio::sync::Notify::new(),
            other_failed: tokio::sync::Notify::new(),
            handler_cut: Mutex::new(None),
        });
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (sink, mut rx) = EventSink::channel();
        let nodes = nodes(&needs, &handles, OnFailure::Continue);
        let mut nodes = nodes;
        nodes[2].on_failure = OnFailure::Stop;
        let finals = rt.block_on(async {
            let watcher = Arc::clone(&probe);
            let run = run_graph(
                &nodes,
                Arc::clone(&probe),
                &ScheduleOptions {
                    max_parallel: 4,
                    abort_running: true,
                    detach: false,
                },
                CancellationToken::new(),
                &sink,
            );
            tokio::pin!(run);
            // s2's failure shows up as s3 not running; then the handler looks.
            let watch = async {
                loop {
                    tokio::select! {
                        finals = &mut run => break finals,
                        Some(event) = rx.recv() => {
                            if matches!(&event, RunEvent::StepNotRun { step, .. } if step.id == "s3") {
                                watcher.other_failed.notify_one();
                            }
                        }
                    }
                }
            };
            tokio::time::timeout(std::time::Duration::from_secs(30), watch)
                .await
                .expect("the run ends")
        });
        assert_eq!(finals[1], Final::Succeeded);
        assert_eq!(finals[2], Final::Failed);
        assert_eq!(*probe.handler_cut.lock().unwrap(), Some(false));
    }
}
