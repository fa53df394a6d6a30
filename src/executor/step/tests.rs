//! Unit tests of a step's life against a scripted fake JOB.

use super::*;
use crate::compile::{RenderError, StepSettings};
use crate::executor::scheduler::RunControl;
use crate::job_api::build::{ApiCall, BuildErrors, HttpMethod};
use crate::job_api::client::{HostLog, HostResult, StepInstanceView, SubmitOutcome, Submitted};
use crate::job_api::types::{HostAddr, Protocol, StepInstanceId};
use crate::plan::model::Plan;
use std::collections::VecDeque;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A fake JOB: statuses are served from a queue (the last one repeats).
struct FakeJob {
    protocol: Protocol,
    statuses: Mutex<VecDeque<JobStatusView>>,
    log: String,
    submits: Mutex<Vec<String>>,
    operations: Mutex<Vec<String>>,
}

impl FakeJob {
    fn new(protocol: Protocol, statuses: Vec<JobStatusView>, log: &str) -> Self {
        FakeJob {
            protocol,
            statuses: Mutex::new(statuses.into()),
            log: log.into(),
            submits: Mutex::new(Vec::new()),
            operations: Mutex::new(Vec::new()),
        }
    }
}

impl JobApi for FakeJob {
    fn protocol(&self) -> Protocol {
        self.protocol
    }
    async fn submit(
        &self,
        call: ApiCall,
        task_name: Option<String>,
    ) -> Result<SubmitOutcome, ClientError> {
        let mut submits = self.submits.lock().unwrap();
        let task_name = task_name.expect("fast tasks are submitted with their task name");
        assert_eq!(call.body["task_name"], task_name.as_str());
        submits.push(task_name);
        Ok(SubmitOutcome {
            submitted: Submitted {
                job_instance_id: JobInstanceId(100 + submits.len() as u64),
                job_instance_name: None,
                step_instance_id: None,
            },
            reconciled: false,
            sent_at: Instant::now(),
        })
    }
    async fn status(&self, _: JobInstanceId) -> Result<JobStatusView, ClientError> {
        let mut q = self.statuses.lock().unwrap();
        if q.len() > 1 {
            Ok(q.pop_front().unwrap())
        } else {
            Ok(q.front().cloned().unwrap())
        }
    }
    async fn logs(
        &self,
        _: JobInstanceId,
        _: crate::job_api::types::StepInstanceId,
        hosts: Vec<HostResult>,
    ) -> Result<Vec<HostLog>, ClientError> {
        Ok(hosts
            .iter()
            .map(|h| HostLog {
                host: h.label(),
                content: self.log.clone(),
            })
            .collect())
    }
    async fn operate_job(&self, job: JobInstanceId, op: JobOperation) -> Result<(), ClientError> {
        self.operations
            .lock()
            .unwrap()
            .push(format!("job {job} op {}", op.code()));
        Ok(())
    }
    async fn operate_step(
        &self,
        job: JobInstanceId,
        _: crate::job_api::types::StepInstanceId,
        op: StepOperation,
    ) -> Result<(), ClientError> {
        self.operations
            .lock()
            .unwrap()
            .push(format!("step {job} op {}", op.code()));
        Ok(())
    }
    fn has_step_operations(&self) -> bool {
        self.protocol != Protocol::V4
    }
}

struct FakePlan(Plan);

impl StepSource for FakePlan {
    fn step_id(&self, index: usize) -> Option<&str> {
        self.0.steps.get(index).map(|s| s.id.as_str())
    }
    fn when(&self, index: usize, _: &RenderInput<'_>) -> Result<bool, RenderError> {
        Ok(self.0.steps[index].when.as_deref() != Some("false"))
    }
    fn render(&self, index: usize, _: &RenderInput<'_>) -> Result<ResolvedStep, RenderError> {
        let step = self.0.steps[index].clone();
        let settings = StepSettings::resolve(&self.0, &step);
        Ok(ResolvedStep { step, settings })
    }
    fn build(&self, _: Protocol, _: &ResolvedStep) -> Result<ApiCall, BuildErrors> {
        Ok(ApiCall {
            api: "fast_execute_script",
            method: HttpMethod::Post,
            path: "/x".into(),
            body: serde_json::json!({"script_content": "ZWNobw=="}),
            sensitive_pointers: vec![],
        })
    }
    fn secret_values(&self) -> Vec<String> {
        vec!["hunter2".into()]
    }
}

fn status(job_status: RunStatus, host_status: u16) -> JobStatusView {
    JobStatusView {
        finished: job_status.is_finished(),
        status: job_status,
        job_ms: None,
        steps: vec![StepInstanceView {
            step_instance_id: StepInstanceId(7),
            step_type: Some(1),
            status: job_status,
            execute_count: 0,
            batch: None,
            hosts: vec![HostResult {
                host_id: None,
                addr: HostAddr::parse("0:10.0.0.1"),
                status: host_status,
                exit_code: Some(if host_status == 9 { 0 } else { 1 }),
                ..HostResult::default()
            }],
        }],
    }
}

fn plan(step_yaml: &str) -> Plan {
    serde_yaml::from_str(&format!("version: 1\nname: demo\nsteps:\n{step_yaml}")).unwrap()
}

async fn run_one(api: FakeJob, plan: Plan) -> (StepEnd<StepOutput>, Arc<FakeJob>, Vec<RunEvent>) {
    run_confirming(api, plan, ConfirmPolicy::Refuse).await
}

async fn run_confirming(
    api: FakeJob,
    plan: Plan,
    confirm: ConfirmPolicy,
) -> (StepEnd<StepOutput>, Arc<FakeJob>, Vec<RunEvent>) {
    let api = Arc::new(api);
    let (sink, mut rx) = EventSink::channel();
    let runner = Arc::new(JobStepRunner::new(StepRunnerSetup {
        api: Arc::clone(&api),
        source: Arc::new(FakePlan(plan)),
        events: sink,
        run_id: "run1".into(),
        hub: None,
        callback_base: None,
        wait: WaitOptions {
            mode: WaitMode::Poll,
            poll_first: Duration::from_millis(2),
            poll_factor: 1.0,
            poll_cap: Duration::from_millis(2),
        },
        confirm,
        masker: Masker::new(vec!["hunter2".into()]),
        gates: Default::default(),
    }));
    let interrupt = CancellationToken::new();
    let ctx = StepContext {
        upstream: Arc::new(BTreeMap::new()),
        ready_at: None,
        control: RunControl {
            abort: interrupt.child_token(),
            interrupt,
            detach: false,
        },
        finished: Arc::new(BTreeMap::new()),
        interrupted: false,
    };
    let end = runner.run(0, ctx).await;
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    (end, api, events)
}

fn finished(events: &[RunEvent]) -> StepFinished {
    events
        .iter()
        .find_map(|e| match e {
            RunEvent::StepFinished { outcome, .. } => Some((**outcome).clone()),
            _ => None,
        })
        .unwrap()
}

#[tokio::test]
async fn success_extracts_outputs_from_logs() {
    let api = FakeJob::new(
        Protocol::V3,
        vec![status(RunStatus::Running, 7), status(RunStatus::Success, 9)],
        "hello\n<BATON_VAR>version:1.2.3</BATON_VAR>\n&lt;SOPS_VAR&gt;pw:hunter2&lt;/SOPS_VAR&gt;\n",
    );
    let (end, api, events) = run_one(api, plan("  - id: a\n    outputs: [version]\n")).await;
    let StepEnd::Succeeded { output, .. } = end else {
        panic!("{end:?}")
    };
    assert_eq!(output.outputs["version"], "1.2.3");
    assert_eq!(
        output.outputs["pw"], "hunter2",
        "later steps get raw values"
    );
    let done = finished(&events);
    assert_eq!(done.outputs["pw"], "******", "events never carry secrets");
    assert_eq!(done.host_outputs["0:10.0.0.1"]["version"], "1.2.3");
    let names = api.submits.lock().unwrap().clone();
    assert_eq!(names, vec!["demo [baton run1 a#1]".to_owned()]);
}

#[tokio::test]
async fn v3_retries_failed_hosts_in_place() {
    let api = FakeJob::new(
        Protocol::V3,
        vec![status(RunStatus::Fail, 104), status(RunStatus::Success, 9)],
        "boom\n",
    );
    let (end, api, events) = run_one(api, plan("  - id: a\n    retries: 1\n")).await;
    assert!(matches!(end, StepEnd::Succeeded { .. }));
    assert_eq!(api.submits.lock().unwrap().len(), 1);
    assert_eq!(
        *api.operations.lock().unwrap(),
        vec!["step 101 op 2".to_owned()]
    );
    assert_eq!(finished(&events).attempts, 2);
}

#[tokio::test]
async fn v4_retries_with_a_fresh_submission() {
    let api = FakeJob::new(
        Protocol::V4,
        vec![status(RunStatus::Fail, 104), status(RunStatus::Success, 9)],
        "boom\n",
    );
    let (end, api, _) = run_one(api, plan("  - id: a\n    retries: 1\n")).await;
    assert!(matches!(end, StepEnd::Succeeded { .. }));
    let names = api.submits.lock().unwrap().clone();
    assert_eq!(names.len(), 2);
    assert!(names[1].ends_with("a#2]"));
}

#[tokio::test]
async fn failure_reports_the_failed_host_log() {
    let api = FakeJob::new(
        Protocol::V2,
        vec![status(RunStatus::Fail, 104)],
        "line1\nerror: disk full & more\n",
    );
    let (end, _, events) = run_one(api, plan("  - id: a\n")).await;
    assert!(matches!(end, StepEnd::Failed));
    let done = finished(&events);
    assert_eq!(done.status, StepStatus::Failed);
    assert_eq!(
        done.hosts[0].log_tail.as_deref(),
        Some("line1\nerror: disk full & more")
    );
    assert!(done.error.unwrap().contains("0:10.0.0.1"));
}

#[tokio::test]
async fn ignore_error_counts_only_when_asked() {
    let api = FakeJob::new(Protocol::V3, vec![status(RunStatus::IgnoreError, 104)], "");
    let (end, _, _) = run_one(api, plan("  - id: a\n")).await;
    assert!(matches!(end, StepEnd::Failed));
    let api = FakeJob::new(Protocol::V3, vec![status(RunStatus::IgnoreError, 104)], "");
    let (end, _, _) = run_one(api, plan("  - id: a\n    ignore_errors: true\n")).await;
    assert!(matches!(end, StepEnd::Succeeded { .. }));
}

#[tokio::test]
async fn deadline_terminates_the_instance() {
    let api = FakeJob::new(Protocol::V3, vec![status(RunStatus::Running, 7)], "");
    let (end, api, _) = run_one(api, plan("  - id: a\n    wait_timeout: 0\n")).await;
    assert!(matches!(end, StepEnd::Failed));
    assert_eq!(
        *api.operations.lock().unwrap(),
        vec!["job 101 op 1".to_owned()]
    );
}

#[tokio::test]
async fn waiting_user_without_tty_fails() {
    let mut waiting = status(RunStatus::WaitingUser, 9);
    waiting.steps[0].step_type = Some(3);
    let api = FakeJob::new(Protocol::V3, vec![waiting], "");
    let (end, api, events) = run_one(api, plan("  - id: a\n")).await;
    assert!(matches!(end, StepEnd::Failed));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, RunEvent::StepWaitingUser { .. }))
    );
    assert_eq!(
        *api.operations.lock().unwrap(),
        vec!["job 101 op 1".to_owned()]
    );
    let error = finished(&events).error.unwrap_or_default();
    assert!(
        error.contains("waited for confirmation") && error.contains("--yes"),
        "{error}"
    );
    assert!(error.contains("terminated job 101"), "{error}");
}

/// A prompter that answers as told and remembers the questions.
struct Scripted {
    answer: bool,
    asked: Mutex<Vec<String>>,
}

impl crate::executor::prompt::Prompter for Scripted {
    fn confirm(&self, question: &str) -> bool {
        self.asked.lock().unwrap().push(question.to_owned());
        self.answer
    }
}

fn manual_then_done() -> Vec<JobStatusView> {
    let mut waiting = status(RunStatus::WaitingUser, 9);
    waiting.steps[0].step_type = Some(3);
    vec![waiting, status(RunStatus::Success, 9)]
}

#[tokio::test]
async fn a_yes_at_the_prompt_confirms_with_operation_6() {
    let prompter = Arc::new(Scripted {
        answer: true,
        asked: Mutex::new(Vec::new()),
    });
    let api = FakeJob::new(Protocol::V3, manual_then_done(), "");
    let policy = ConfirmPolicy::Ask(prompter.clone());
    let (end, api, _) = run_confirming(
        api,
        plan(
            "  - id: a
",
        ),
        policy,
    )
    .await;
    assert!(matches!(end, StepEnd::Succeeded { .. }), "{end:?}");
    assert_eq!(
        *api.operations.lock().unwrap(),
        vec!["step 101 op 6".to_owned()]
    );
    let asked = prompter.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 1);
    assert!(
        asked[0].contains("step a: job 101 waits for a manual confirmation")
            && asked[0].ends_with("[y/N] "),
        "{asked:?}"
    );
}

#[tokio::test]
async fn a_no_at_the_prompt_terminates() {
    let prompter = Arc::new(Scripted {
        answer: false,
        asked: Mutex::new(Vec::new()),
    });
    let api = FakeJob::new(Protocol::V3, manual_then_done(), "");
    let (end, api, events) = run_confirming(
        api,
        plan(
            "  - id: a
",
        ),
        ConfirmPolicy::Ask(prompter),
    )
    .await;
    assert!(matches!(end, StepEnd::Failed));
    assert_eq!(
        *api.operations.lock().unwrap(),
        vec!["job 101 op 1".to_owned()]
    );
    assert!(
        finished(&events)
            .error
            .unwrap_or_default()
            .contains("refused at the prompt")
    );
}

#[tokio::test]
async fn yes_continues_a_rolling_batch_with_operation_13() {
    let mut waiting = status(RunStatus::WaitingUser, 9);
    waiting.steps[0].batch = Some((1, 3));
    let api = FakeJob::new(
        Protocol::V3,
        vec![waiting, status(RunStatus::Success, 9)],
        "",
    );
    let (end, api, events) = run_confirming(
        api,
        plan(
            "  - id: a
",
        ),
        ConfirmPolicy::Yes,
    )
    .await;
    assert!(matches!(end, StepEnd::Succeeded { .. }), "{end:?}");
    assert_eq!(
        *api.operations.lock().unwrap(),
        vec!["step 101 op 13".to_owned()]
    );
    let said = events.iter().find_map(|e| match e {
        RunEvent::StepWaitingUser { prompt, action, .. } => Some(format!("{prompt}: {action}")),
        _ => None,
    });
    assert_eq!(
        said.as_deref(),
        Some("job 101 waits to start the next rolling batch (batch 1/3 done): confirmed (--yes)")
    );
}
