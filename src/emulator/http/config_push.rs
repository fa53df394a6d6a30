//! `push_config_file` on ESB v2 (`account`, `ip_list`) and gateway v3 / ESB jobv3
//! (`account_alias` or `account_id`, `target_server`). As JOB does, the files are first
//! saved on JOB's own file-distribution host (here the sandbox of [`JOB_FILE_HOST`],
//! under `/data/bkee/job/data/local/<user>/<unique>/`) and then pushed from there to the
//! targets by an ordinary file task (bk-job `EsbPushConfigFileResourceV3Impl`,
//! `convertConfigFileSource`), so they land in the targets' sandboxes, with JOB's
//! file logs.

use serde_json::Value;

use crate::emulator::http::context::Ctx;
use crate::emulator::http::params::Params;
use crate::emulator::http::shared::{self, FastTask};
use crate::emulator::http::wire;
use crate::emulator::model::inventory::{Account, Host, TargetSpec};
use crate::emulator::model::job_error::JobError;
use crate::emulator::model::jobs::{FileSource, FileStep, StepKind};
use crate::emulator::model::values;
use crate::job_api::types::HostAddr;

/// JOB's own host, where config files wait before they are pushed.
pub const JOB_FILE_HOST: &str = "0:127.0.0.1";

/// Which door asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// ESB v2 `job`.
    V2,
    /// Gateway v3 or ESB jobv3.
    V3,
}

/// `file_list`: names and decoded contents, as JOB checks them.
fn file_list(p: &Params) -> Result<Vec<(String, Vec<u8>)>, JobError> {
    let list = p
        .opt_objects("file_list")?
        .filter(|l| !l.is_empty())
        .ok_or_else(|| JobError::missing_or_illegal("file_list"))?;
    let mut files = Vec::new();
    for file in list {
        let name = file
            .opt_str("file_name")?
            .filter(|n| !n.trim().is_empty())
            .ok_or_else(|| JobError::illegal("file_list.file_name"))?;
        if name.contains('/') {
            return Err(JobError::illegal("file_list.file_name"));
        }
        let content = file
            .opt_str("content")?
            .filter(|c| !c.trim().is_empty())
            .ok_or_else(|| JobError::illegal("file_list.content"))?;
        files.push((name, values::base64_field("file_list.content", &content)?));
    }
    Ok(files)
}

/// Saves the files on JOB's host; their paths there.
fn stage(ctx: &Ctx, files: &[(String, Vec<u8>)]) -> Result<(Host, Vec<String>), JobError> {
    let addr = HostAddr::parse(JOB_FILE_HOST).ok_or_else(JobError::illegal_params)?;
    let folder = format!(
        "/data/bkee/job/data/local/{}/{}",
        ctx.caller.user,
        uuid::Uuid::now_v7().simple()
    );
    let mut paths = Vec::new();
    for (name, content) in files {
        let path = format!("{folder}/{name}");
        let real = ctx
            .app
            .sandboxes
            .resolve(&addr, &path)
            .map_err(|_| JobError::illegal("file_list.file_name"))?;
        let saved = real
            .parent()
            .map(std::fs::create_dir_all)
            .unwrap_or(Ok(()))
            .and_then(|()| std::fs::write(&real, content));
        if saved.is_err() {
            return Err(JobError::new(
                crate::emulator::model::job_error::code::INTERNAL_ERROR,
                "Internal Server Error",
            ));
        }
        paths.push(path);
    }
    Ok((Host { addr, host_id: 0 }, paths))
}

/// Answers `push_config_file`.
pub fn push_config_file(ctx: &Ctx, p: &Params, door: Door) -> Result<Value, JobError> {
    let scope = ctx.scope(p)?;
    let inventory = &ctx.app.inventory;
    let target_path = values::target_path("file_target_path", p.opt_str("file_target_path")?)?;
    let account: Account = match door {
        Door::V2 => {
            let alias = p
                .opt_str("account")?
                .ok_or_else(|| JobError::missing("account"))?;
            inventory.account_by_alias(&alias)?
        }
        Door::V3 => shared::account(inventory, p)?,
    };
    let spec: TargetSpec = match door {
        Door::V2 => wire::v2_target(p)?,
        Door::V3 => {
            let server = p
                .opt_object("target_server")?
                .ok_or_else(|| JobError::missing("target_server"))?;
            wire::v3_server(&server)?
        }
    };
    if spec.is_empty() {
        return Err(JobError::server_empty());
    }
    let targets = inventory.resolve_targets(&spec)?;
    let files = file_list(p)?;
    let name = values::task_name(p.opt_str("task_name")?, "API_PUSH_CONFIG_FILE_")?;
    let callback_url = match door {
        Door::V2 => None,
        Door::V3 => values::callback_url("callback_url", p.opt_str("callback_url")?)?,
    };
    let (job_host, paths) = stage(ctx, &files)?;
    let source_account = inventory
        .account_by_alias("root")
        .unwrap_or_else(|_| account.clone());
    let submitted = shared::submit_fast(
        ctx,
        FastTask {
            scope,
            name,
            kind: StepKind::File(FileStep {
                sources: vec![FileSource {
                    hosts: vec![job_host],
                    files: paths,
                    account: source_account,
                }],
                target_path,
                target_name: None,
                strict: false,
                account,
                timeout_secs: values::DEFAULT_TIMEOUT,
            }),
            targets,
            rolling: None,
            callback_url,
            start: true,
        },
    )?;
    Ok(shared::answer(&submitted, door == Door::V3))
}
