//! What can go wrong, as typed errors.

use dispatch_core::node::{CallError, CommandError};

/// Why a [`Registry`](crate::Registry) or [`Client`](crate::Client)
/// operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No instance of the type can take the key (none registered, or all
    /// offline and offline ones were not allowed).
    #[error("no available instance of service type `{ty}`")]
    NoService {
        /// The service type asked for.
        ty: String,
    },
    /// The call got no reply before its timeout.
    #[error("no reply from service type `{ty}` before the timeout")]
    Timeout {
        /// The service type called.
        ty: String,
    },
    /// The call failed otherwise: the target node went down, the instance
    /// left, a message was too large, too many calls were in flight.
    #[error("call failed: {0}")]
    Call(CallError),
    /// The node refused a local command: a duplicate or unknown instance, a
    /// name too long, a full ring.
    #[error("{0}")]
    Command(CommandError),
    /// A typed request did not encode.
    #[error("the request did not encode: {0}")]
    Encode(postcard::Error),
    /// A typed reply did not decode as the type asked for.
    #[error("the reply did not decode: {0}")]
    Decode(postcard::Error),
    /// The handler could not take the request (a typed handler that could
    /// not decode it says so here).
    #[error("the service refused the request: {0}")]
    Remote(String),
    /// The registry has shut down or left the cluster.
    #[error("the registry has shut down")]
    Stopped,
}

impl Error {
    /// The error for a failed call to `ty`.
    pub(crate) fn from_call(ty: &str, e: CallError) -> Self {
        match e {
            CallError::NoService => Error::NoService { ty: ty.into() },
            CallError::Timeout => Error::Timeout { ty: ty.into() },
            CallError::Left => Error::Stopped,
            e => Error::Call(e),
        }
    }
}

impl From<CommandError> for Error {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Left => Error::Stopped,
            e => Error::Command(e),
        }
    }
}

/// Why a [`Builder`](crate::Builder) refused its settings or could not
/// start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The node's settings do not fit together; the message says what to
    /// change.
    #[error("invalid settings: {0}")]
    Node(#[from] dispatch_core::node::ConfigError),
    /// A setting did not parse.
    #[error("{source_name}: {message}")]
    Setting {
        /// Where the setting came from: a file path or an environment
        /// variable.
        source_name: String,
        /// What is wrong and what to change.
        message: String,
    },
    /// The socket could not be bound, or a seed not resolved.
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
}
