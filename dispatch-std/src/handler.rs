//! What runs when a request reaches one of this node's instances.
//!
//! An instance is registered with a [`Handler`]: any
//! `Fn(Request) -> impl Future<Output = Vec<u8>>` is one (raw bytes in,
//! raw bytes out), and [`typed`] wraps a function of serde types. The
//! reply of a call is the future's output; a cast's output is dropped.
//!
//! The driver polls a handler's future once where the request arrives and
//! spawns it onto the runtime only if it is not ready, so a handler that
//! answers at once costs no task switch. Handlers must therefore not block
//! the thread: do blocking work in `tokio::task::spawn_blocking`.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

pub use dispatch_core::node::{Request, RequestKind};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Answers the requests for one service instance.
pub trait Handler: Send + Sync + 'static {
    /// Handles `request`; for a call, the output is the reply's bytes.
    fn handle(&self, request: Request) -> impl Future<Output = Vec<u8>> + Send + 'static;
}

impl<F, Fut> Handler for F
where
    F: Fn(Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Vec<u8>> + Send + 'static,
{
    fn handle(&self, request: Request) -> impl Future<Output = Vec<u8>> + Send + 'static {
        self(request)
    }
}

/// A handler of serde types, made by [`typed`].
pub struct Typed<F, Req, Resp> {
    f: F,
    _types: PhantomData<fn(Req) -> Resp>,
}

/// A handler that decodes each request as `Req` (postcard), calls `f`, and
/// replies with its `Resp`. Pair it with the typed calls of
/// [`Client`](crate::Client): a request that does not decode as `Req` is
/// answered with an error the caller receives as
/// [`Error::Remote`](crate::Error::Remote).
pub fn typed<Req, Resp, F, Fut>(f: F) -> Typed<F, Req, Resp>
where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    F: Fn(Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Resp> + Send + 'static,
{
    Typed {
        f,
        _types: PhantomData,
    }
}

impl<Req, Resp, F, Fut> Handler for Typed<F, Req, Resp>
where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    F: Fn(Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Resp> + Send + 'static,
{
    fn handle(&self, request: Request) -> impl Future<Output = Vec<u8>> + Send + 'static {
        let started = postcard::from_bytes::<Req>(&request.payload)
            .map(|req| (self.f)(req))
            .map_err(|e| {
                format!(
                    "the request did not decode as {}: {e}",
                    std::any::type_name::<Req>()
                )
            });
        async move {
            let reply: Result<Resp, String> = match started {
                Ok(fut) => Ok(fut.await),
                Err(e) => Err(e),
            };
            encode_reply(&reply)
        }
    }
}

/// The typed reply envelope: `Result<Resp, String>` in postcard.
fn encode_reply<Resp: Serialize>(reply: &Result<Resp, String>) -> Vec<u8> {
    postcard::to_allocvec(reply).unwrap_or_else(|e| {
        let failed: Result<(), String> = Err(format!("the reply did not encode: {e}"));
        postcard::to_allocvec(&failed).unwrap_or_default()
    })
}

/// Decodes a typed reply envelope.
pub(crate) fn decode_reply<Resp: DeserializeOwned>(bytes: &[u8]) -> Result<Resp, crate::Error> {
    match postcard::from_bytes::<Result<Resp, String>>(bytes) {
        Ok(Ok(resp)) => Ok(resp),
        Ok(Err(message)) => Err(crate::Error::Remote(message)),
        Err(e) => Err(crate::Error::Decode(e)),
    }
}

/// A boxed handler future.
pub(crate) type BoxReply = Pin<Box<dyn Future<Output = Vec<u8>> + Send>>;

/// [`Handler`] made object-safe, so that instances of different handler
/// types share one table.
pub(crate) trait ErasedHandler: Send + Sync + 'static {
    fn handle_boxed(&self, request: Request) -> BoxReply;
}

impl<H: Handler> ErasedHandler for H {
    fn handle_boxed(&self, request: Request) -> BoxReply {
        Box::pin(self.handle(request))
    }
}
