//! `baton logs RUN STEP [--host cloud:ip]`: a recorded step's full logs as JOB keeps
//! them (script output per host, file-transfer records), read from JOB with the run's
//! protocol and the job instance its journal recorded. The report keeps only a tail;
//! this is the rest.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::{self, ConfigFlags};
use crate::error::{Error, UsageError};
use crate::executor::events::RunTarget;
use crate::job_api::client::{
    self, HttpJobApi, JobApi, JobCodec, RetryPolicy, Timeouts, Transport,
};
use crate::job_api::types::JobInstanceId;
use crate::mask::Masker;
use crate::report::summary::RunRecord;
use crate::state::journal;
use crate::state::runs::{self, StateDir};

/// `baton logs`.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// The run: its id, a unique prefix of it, or `last`.
    pub run: String,
    /// The step id.
    pub step: String,
    /// Only this host (`cloud:ip`, as the report names it).
    #[arg(long, value_name = "CLOUD:IP")]
    pub host: Option<String>,
    /// JOB base URL (else $BATON_ENDPOINT, the profile, or the one the run recorded).
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Profile name: $XDG_CONFIG_HOME/baton/profiles/NAME.yaml.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Profile file path.
    #[arg(long, value_name = "FILE", conflicts_with = "profile")]
    pub profile_file: Option<PathBuf>,
    /// Folder of run records [default: $XDG_STATE_HOME/baton, else ~/.local/state/baton].
    #[arg(long, value_name = "DIR", env = "BATON_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

/// Runs `baton logs`.
pub fn logs(args: LogsArgs) -> Result<ExitCode, Error> {
    let state = StateDir::resolve(args.state_dir.clone())?;
    let dir = runs::find(&state, &args.run)?;
    let replay = journal::read(&dir.journal_path())?;
    let mut record = RunRecord::default();
    for event in replay.events() {
        record.apply(event);
    }
    let step = record
        .steps
        .iter()
        .find(|s| s.id == args.step)
        .ok_or_else(|| {
            UsageError::NoLogs(format!(
                "run {} has no step `{}` (its steps: {})",
                dir.id(),
                args.step,
                record
                    .steps
                    .iter()
                    .map(|s| s.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
    let job = step.job_instance_id.map(JobInstanceId).ok_or_else(|| {
        UsageError::NoLogs(format!(
            "step `{}` of run {} has no JOB instance ({}): there are no logs to read",
            step.id,
            dir.id(),
            step.status.replace('_', " ")
        ))
    })?;
    let recorded = match &record.target {
        Some(RunTarget::Remote { endpoint }) => Some(endpoint.clone()),
        Some(RunTarget::Emulator { sandbox, .. }) if args.endpoint.is_none() => {
            return Err(UsageError::NoLogs(format!(
                "run {} rehearsed on the local emulator, whose jobs ended with it; the report keeps each failed host's log tail, and the host sandboxes are in {sandbox}",
                dir.id()
            ))
            .into());
        }
        _ => None,
    };
    let protocol = config::parse_protocol(&record.protocol).ok_or_else(|| {
        UsageError::NoLogs(format!(
            "run {} recorded no protocol; it cannot be read back",
            dir.id()
        ))
    })?;
    let scope = crate::plan::load(&dir.plan_copy_path())
        .ok()
        .and_then(|loaded| loaded.plan.scope)
        .ok_or_else(|| {
            UsageError::NoLogs(format!("the plan copy of run {} names no scope", dir.id()))
        })?;
    let env = |name: &str| std::env::var(name).ok();
    let mut flags = ConfigFlags {
        endpoint: args.endpoint.clone(),
        api: Some(protocol),
        profile: args.profile.clone(),
        profile_file: args.profile_file.clone(),
        ..ConfigFlags::default()
    };
    if flags.endpoint.is_none() && env("BATON_ENDPOINT").is_none() {
        flags.endpoint = recorded;
    }
    let config = config::resolve(&flags, &env)?;
    let (Some(endpoint), Some(credentials)) = (config.endpoint, config.credentials) else {
        return Err(UsageError::NoLogs("no JOB endpoint to read the logs from".into()).into());
    };
    let masker = Masker::new(config::credential_secrets(&credentials));
    let runtime = super::runtime::start()?;
    let text = runtime.block_on(async {
        let http = client::build_http_client(&Timeouts::default())?;
        let transport = Transport::new(
            http,
            &endpoint,
            credentials,
            RetryPolicy::default(),
            Timeouts::default(),
        );
        let api = HttpJobApi::new(transport, JobCodec::new(protocol, scope.into()));
        fetch(&api, job, args.host.as_deref()).await
    })?;
    print!("{}", masker.mask(&text));
    Ok(ExitCode::SUCCESS)
}

/// Every step instance of `job`, each host's full log under a heading.
async fn fetch<A: JobApi>(
    api: &A,
    job: JobInstanceId,
    host: Option<&str>,
) -> Result<String, Error> {
    use std::fmt::Write as _;
    let status = api.status(job).await?;
    let mut out = String::new();
    let mut matched = false;
    for step in &status.steps {
        let hosts: Vec<_> = step
            .hosts
            .iter()
            .filter(|h| host.is_none_or(|want| h.label() == want))
            .cloned()
            .collect();
        if hosts.is_empty() {
            continue;
        }
        matched = true;
        let _ = writeln!(
            out,
            "== job {job} step instance {} ({}) ==",
            step.step_instance_id.0,
            step.status.label()
        );
        let logs = api.logs(job, step.step_instance_id, hosts.clone()).await?;
        for result in &hosts {
            let label = result.label();
            let exit = result
                .exit_code
                .map(|c| format!(", exit {c}"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "--- {label}: {}{exit} ---",
                crate::job_api::types::host_status::label(result.status)
            );
            for log in logs.iter().filter(|l| l.host == label) {
                out.push_str(&log.content);
                if !log.content.ends_with('\n') {
                    out.push('\n');
                }
            }
        }
    }
    if !matched {
        return Err(UsageError::NoLogs(match host {
            Some(host) => format!("job {job} ran on no host `{host}`"),
            None => format!("job {job} has no host results yet"),
        })
        .into());
    }
    Ok(out)
}
