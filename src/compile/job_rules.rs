//! JOB's rules on the plan as written: timeouts within JOB's range (and a warning
//! where the v2 documentation is stricter), host addresses JOB can parse, the
//! lengths JOB stores, and rolling expressions JOB accepts, batch counts included
//! when every host is listed. [`check`] writes every problem into [`Findings`].

use std::collections::HashSet;

use crate::job_api::rules;
use crate::job_api::types::HostAddr;
use crate::job_api::types::Protocol;
use crate::plan::check::step_targets;
use crate::plan::findings::Findings;
use crate::plan::model::{HostSet, Plan, Rolling, Step, Targets};

/// Checks `plan` against JOB's rules for `protocol`.
pub fn check(plan: &Plan, protocol: Protocol, findings: &mut Findings<'_>) {
    let mut checker = Checker { findings, protocol };
    if let Some(defaults) = &plan.defaults
        && let Some(timeout) = defaults.timeout
    {
        checker.timeout("defaults.timeout", timeout.0);
    }
    for (name, set) in &plan.hosts {
        checker.addresses(&format!("hosts.{name}"), set);
    }
    for (i, step) in plan.steps.iter().enumerate() {
        checker.step(plan, i, step);
    }
}

struct Checker<'f, 'a> {
    findings: &'f mut Findings<'a>,
    protocol: Protocol,
}

impl Checker<'_, '_> {
    fn timeout(&mut self, field: &str, seconds: u64) {
        if !rules::TIMEOUT_RANGE.contains(&seconds) {
            self.findings.error(
                field,
                format!(
                    "timeout {seconds}s is outside JOB's range of {}–{} seconds",
                    rules::TIMEOUT_RANGE.start(),
                    rules::TIMEOUT_RANGE.end()
                ),
            );
        } else if self.protocol == Protocol::V2 && !rules::V2_DOC_TIMEOUT_RANGE.contains(&seconds) {
            self.findings.warning(
                field,
                format!(
                    "timeout {seconds}s is outside the v2 documentation's range of {}–{} seconds (JOB 3.x accepts it)",
                    rules::V2_DOC_TIMEOUT_RANGE.start(),
                    rules::V2_DOC_TIMEOUT_RANGE.end()
                ),
            );
        }
    }

    fn addresses(&mut self, field: &str, set: &HostSet) {
        for (k, ip) in set.ips.iter().enumerate() {
            if HostAddr::parse(ip).is_none() {
                self.findings.error(
                    format!("{field}.ips[{k}]"),
                    format!("`{ip}` is not a host address: expected `cloud:ip` (cloud id ≥ 0, IPv4), e.g. `0:10.0.0.1`"),
                );
            }
        }
    }

    fn step(&mut self, plan: &Plan, i: usize, step: &Step) {
        let at = |suffix: &str| format!("steps[{i}].{suffix}");
        for (field, targets) in step_targets(step) {
            if let Targets::Inline(set) = targets {
                self.addresses(&at(&field), set);
            }
        }
        if let Some(timeout) = step.timeout {
            self.timeout(&at("timeout"), timeout.0);
        }
        if let Some(script) = &step.script {
            if let Some(interpreter) = &script.windows_interpreter {
                let chars = interpreter.chars().count();
                if !interpreter.to_ascii_lowercase().ends_with(".exe") {
                    self.findings.error(
                        at("script.windows_interpreter"),
                        "must be the path of an `.exe`",
                    );
                } else if chars > rules::MAX_WINDOWS_INTERPRETER_CHARS {
                    self.findings.error(
                        at("script.windows_interpreter"),
                        format!(
                            "is {chars} characters; JOB allows at most {}",
                            rules::MAX_WINDOWS_INTERPRETER_CHARS
                        ),
                    );
                }
            }
            for (k, password) in script.host_passwords.iter().enumerate() {
                let field = at(&format!("script.host_passwords[{k}]"));
                if let Some(ip) = &password.ip
                    && HostAddr::parse(ip).is_none()
                {
                    self.findings.error(
                        format!("{field}.ip"),
                        format!("`{ip}` is not a host address: expected `cloud:ip`"),
                    );
                }
                let chars = password.encrypted_password.chars().count();
                if chars > rules::MAX_ENCRYPTED_PASSWORD_CHARS {
                    self.findings.error(
                        format!("{field}.encrypted_password"),
                        format!(
                            "is {chars} characters; JOB allows at most {}",
                            rules::MAX_ENCRYPTED_PASSWORD_CHARS
                        ),
                    );
                }
            }
        }
        if let Some(job) = &step.job {
            for (o, over) in job.overrides.iter().enumerate() {
                if let Some(timeout) = over.timeout {
                    self.timeout(&at(&format!("job.overrides[{o}].timeout")), timeout.0);
                }
            }
        }
        if let Some(rolling) = &step.rolling {
            self.rolling(plan, i, step, rolling);
        }
    }

    fn rolling(&mut self, plan: &Plan, i: usize, step: &Step, rolling: &Rolling) {
        let field = format!("steps[{i}].rolling");
        let Some(expression) = &rolling.expression else {
            return;
        };
        let parsed = match rules::RollingExpr::parse(expression) {
            Ok(parsed) => parsed,
            Err(e) => {
                self.findings.error(format!("{field}.expression"), e.to_string())
                    .help = Some("parts are `N`, `N%`, `+N` or `*N`, separated by single spaces, e.g. `10 30% 100%`".into());
                return;
            }
        };
        if let Some(targets) = &step.targets
            && let Some(hosts) = count_hosts(plan, targets)
            && let Err(e) = parsed.batch_sizes(hosts)
        {
            self.findings
                .error(format!("{field}.expression"), e.to_string());
        }
    }
}

/// Number of distinct hosts, when every host is listed (dynamic groups and topology
/// nodes are resolved by JOB, so their size is unknown here).
fn count_hosts(plan: &Plan, targets: &Targets) -> Option<usize> {
    let sets: Vec<&HostSet> = match targets {
        Targets::Named(names) => names.iter().filter_map(|n| plan.hosts.get(n)).collect(),
        Targets::Inline(set) => vec![set],
        Targets::From(from) => {
            let upstream = plan.steps.iter().find(|s| s.id == from.from)?;
            return match &upstream.targets {
                Some(targets @ (Targets::Named(_) | Targets::Inline(_))) => {
                    count_hosts(plan, targets)
                }
                _ => None,
            };
        }
    };
    let mut ips = HashSet::new();
    let mut ids = HashSet::new();
    for set in sets {
        if !set.dynamic_groups.is_empty() || !set.topo_nodes.is_empty() {
            return None;
        }
        ips.extend(
            set.ips
                .iter()
                .filter_map(|ip| HostAddr::parse(ip))
                .map(|h| (h.cloud_id, h.ip)),
        );
        ids.extend(set.host_ids.iter().copied());
    }
    Some(ips.len() + ids.len())
}
