//! Links from a report into JOB's web UI: each job instance's page, in the form
//! bk-sops uses for the same purpose, `{job web}/biz/{bk_biz_id}/execute/task/{id}`
//! (`biz_set/{id}` for a business set).

/// Where JOB's web UI is and which scope the run's jobs live in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobWeb {
    base: String,
    scope_kind: String,
    scope_id: String,
}

impl JobWeb {
    /// `base` is JOB's web address (`https://job.example.com`); `scope_kind` is `biz`
    /// or `biz_set`.
    pub fn new(base: &str, scope_kind: &str, scope_id: &str) -> Self {
        JobWeb {
            base: base.trim_end_matches('/').to_owned(),
            scope_kind: scope_kind.to_owned(),
            scope_id: scope_id.to_owned(),
        }
    }

    /// The page of job instance `job`.
    pub fn instance_url(&self, job: u64) -> String {
        format!(
            "{}/{}/{}/execute/task/{job}",
            self.base, self.scope_kind, self.scope_id
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_pages_follow_the_job_web_ui_form() {
        let web = JobWeb::new("https://job.example.com/", "biz", "2");
        assert_eq!(
            web.instance_url(20931),
            "https://job.example.com/biz/2/execute/task/20931"
        );
    }
}
