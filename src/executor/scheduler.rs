//! The scheduler: starts every step whose `needs` are done, never more than
//! `max_parallel` at once, and decides what a failure means for the rest of the run.
//!
//! A failed step's dependents (transitively) never run. With `on_failure: stop` (the
//! default) nothing new starts after a failure and running steps finish; with
//! `--abort-running` they are cancelled (their runner terminates the JOB instance).
//! With `on_failure: continue`, independent branches go on. A skipped step (`when:`
//! false) satisfies its dependents. The scheduler knows nothing about JOB: it drives a
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
    /// A fanned-out group's `(group, max_parallel)`: at most that many of the group
    /// run at once.
    pub group: Option<(usize, usize)>,
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
        .filter(|&i| {
            state[i] == State::Pending
                && steps[i].needs.iter().all(|&d| {
                    matches!(
                        state.get(d),
                        Some(State::Done(Final::Succeeded | Final::Skipped)) | None
                    )
                })
        })
        .collect();
    for i in blocked_by {
        mark_downstream(i, &dependents, &mut state, &mut ready, &|d| {
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
        if !stopped && !interrupted {
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
                let ctx = StepContext {
                    upstream: Arc::new(outputs.clone()),
                    ready_at,
                    control: control.clone(),
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
                        mark_downstream(i, &dependents, &mut state, &mut ready, &|d| {
                            events.emit(RunEvent::StepNotRun {
                                step: step_ref(d),
                                reason: NotRunReason::UpstreamFailed { upstream: steps[i].id.clone() },
                            });
                        });
                        if steps[i].on_failure == OnFailure::Stop {
                            stopped = true;
                            if options.abort_running && running > 0 {
                                control.abort.cancel();
                            }
                        }
                    }
                    StepEnd::Interrupted => {
                        state[i] = State::Done(Final::Interrupted);
                        mark_downstream(i, &dependents, &mut state, &mut ready, &|d| {
                            events.emit(RunEvent::StepNotRun {
                                step: step_ref(d),
                                reason: NotRunReason::UpstreamFailed { upstream: steps[i].id.clone() },
                            });
                        });
                    }
                }
            }
            _ = interrupt.cancelled(), if !interrupted => {
                // Running steps see the same token (through `abort`) and wind down
                // themselves; here we only stop starting new ones.
                interrupted = true;
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

/// A finished-ok step releases each dependent whose needs are now all satisfied.
fn release(
    i: usize,
    steps: &[StepNode],
    dependents: &[Vec<usize>],
    state: &[State],
    ready: &mut BTreeSet<usize>,
) {
    for &d in &dependents[i] {
        let satisfied = steps[d].needs.iter().all(|&need| {
            matches!(
                state.get(need),
                Some(State::Done(Final::Succeeded | Final::Skipped)) | None
            )
        });
        if satisfied && state[d] == State::Pending {
            ready.insert(d);
        }
    }
}

/// Marks every pending step downstream of `i` as not run, reporting each once.
fn mark_downstream(
    i: usize,
    dependents: &[Vec<usize>],
    state: &mut [State],
    ready: &mut BTreeSet<usize>,
    report: &dyn Fn(usize),
) {
    let mut stack = dependents[i].clone();
    while let Some(d) = stack.pop() {
        if state[d] == State::Pending {
            state[d] = State::Done(Final::NotRun);
            ready.remove(&d);
            report(d);
            stack.extend(dependents[d].iter().copied());
        }
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
                        if !finished[need] {
                            self.violations
                                .lock()
                                .unwrap()
                                .push(format!("{index} started before its need {need} finished"));
                        }
                    }
                }
                self.started.lock().unwrap().push(index);
                for &need in &self.needs[index] {
                    if !self.skip[need] && ctx.upstream.get(&need) != Some(&need) {
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
}
