//! The JOB HTTP client: the [`JobApi`] the runner sees, its [`ClientError`], the
//! [`RetryPolicy`], the [`Transport`] and the reqwest-backed [`HttpJobApi`] speaking a
//! [`ProtocolCodec`] ([`JobCodec`]).

mod api;
mod codec;
mod error;
mod http_api;
mod retry;
mod transport;

pub use crate::job_api::types::{HostResult, Submitted};
pub use api::{HostLog, JobApi, JobStatusView, StepInstanceView, SubmitOutcome};
pub use codec::{JobCodec, ProtocolCodec};
pub use error::ClientError;
pub use http_api::{HttpJobApi, task_marker};
pub use retry::RetryPolicy;
pub use transport::{
    HttpAnswer, MAX_IN_FLIGHT, SubmitFailure, Timeouts, Transport, build_http_client,
    install_crypto_provider,
};
