//! Calls and casts routed by key, raw or typed, with a per-call timeout.

use std::time::Duration;

use dispatch_core::node::{CallError, Service};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::oneshot;
use tracing::{debug, Instrument};

use crate::error::Error;
use crate::handler::decode_reply;
use crate::registry::Registry;
use crate::transport::{Transport, Udp};

/// Sends requests to the instances that own keys: `call` waits for the
/// reply, `cast` does not; the `multi_` forms reach the `n` instances for a
/// key (replicas). Get one with [`Registry::client`].
///
/// Typed methods encode the request with postcard and expect a handler made
/// with [`handler::typed`](crate::handler::typed); the `_raw` methods move
/// bytes as they are.
pub struct Client<T: Transport = Udp> {
    registry: Registry<T>,
    timeout: Option<Duration>,
}

impl<T: Transport> Clone for Client<T> {
    fn clone(&self) -> Self {
        Client {
            registry: self.registry.clone(),
            timeout: self.timeout,
        }
    }
}

impl<T: Transport> Client<T> {
    pub(crate) fn new(registry: Registry<T>) -> Self {
        Client {
            registry,
            timeout: None,
        }
    }

    /// How long each call of this client waits for its reply; by default
    /// the registry's request timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sends `payload` to the online instance of `ty` that owns `key` and
    /// returns its reply: [`Error::NoService`] when there is none,
    /// [`Error::Timeout`] when no reply comes in time.
    pub async fn call_raw(
        &self,
        ty: &str,
        key: impl AsRef<[u8]>,
        payload: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let key = key.as_ref();
        let span = tracing::debug_span!("call", ty, key = %String::from_utf8_lossy(key));
        async {
            let started = std::time::Instant::now();
            let core = self.registry.core();
            let (rx, out) = core.input(|s, now| {
                let id = s.node.call(now, ty, key, payload, self.timeout)?;
                let (tx, rx) = oneshot::channel();
                s.pending.insert(id, tx);
                Ok::<_, CallError>(rx)
            });
            core.flush(out).await;
            let result = match rx {
                Ok(rx) => wait(rx).await,
                Err(e) => Err(e),
            }
            .map_err(|e| Error::from_call(ty, e));
            debug!(
                ok = result.is_ok(),
                elapsed_us = started.elapsed().as_micros() as u64,
                "call done"
            );
            result
        }
        .instrument(span)
        .await
    }

    /// Sends `payload` to the online instance of `ty` that owns `key`,
    /// expecting no reply. It returns once the request is sent; the node
    /// sends it again until the target acknowledges it.
    pub async fn cast_raw(
        &self,
        ty: &str,
        key: impl AsRef<[u8]>,
        payload: &[u8],
    ) -> Result<(), Error> {
        let key = key.as_ref();
        let core = self.registry.core();
        let (r, out) = core.input(|s, now| s.node.cast(now, ty, key, payload));
        core.flush(out).await;
        debug!(ty, key = %String::from_utf8_lossy(key), ok = r.is_ok(), "cast");
        r.map_err(|e| Error::from_call(ty, e))
    }

    /// Calls the `n` online instances for `key` (fewer when fewer exist),
    /// owner first, and returns each one's reply or error.
    pub async fn multi_call_raw(
        &self,
        n: usize,
        ty: &str,
        key: impl AsRef<[u8]>,
        payload: &[u8],
    ) -> Result<Vec<(Service, Result<Vec<u8>, Error>)>, Error> {
        let key = key.as_ref();
        let core = self.registry.core();
        let (calls, out) = core.input(|s, now| {
            let calls = s.node.multi_call(now, n, ty, key, payload, self.timeout)?;
            Ok::<_, CallError>(
                calls
                    .into_iter()
                    .map(|(service, id)| {
                        let (tx, rx) = oneshot::channel();
                        s.pending.insert(id, tx);
                        (service, rx)
                    })
                    .collect::<Vec<_>>(),
            )
        });
        core.flush(out).await;
        let calls = calls.map_err(|e| Error::from_call(ty, e))?;
        debug!(ty, key = %String::from_utf8_lossy(key), n = calls.len(), "multi_call");
        let mut replies = Vec::with_capacity(calls.len());
        // All were sent above; awaiting them in turn waits for the slowest.
        for (service, rx) in calls {
            let reply = wait(rx).await.map_err(|e| Error::from_call(ty, e));
            replies.push((service, reply));
        }
        Ok(replies)
    }

    /// Casts to the `n` online instances for `key`; returns how many it was
    /// sent to.
    pub async fn multi_cast_raw(
        &self,
        n: usize,
        ty: &str,
        key: impl AsRef<[u8]>,
        payload: &[u8],
    ) -> Result<usize, Error> {
        let key = key.as_ref();
        let core = self.registry.core();
        let (r, out) = core.input(|s, now| s.node.multi_cast(now, n, ty, key, payload));
        core.flush(out).await;
        debug!(ty, key = %String::from_utf8_lossy(key), ok = r.is_ok(), "multi_cast");
        r.map_err(|e| Error::from_call(ty, e))
    }

    /// [`call_raw`](Client::call_raw) with a typed request and reply.
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        ty: &str,
        key: impl AsRef<[u8]>,
        request: &Req,
    ) -> Result<Resp, Error> {
        let payload = postcard::to_allocvec(request).map_err(Error::Encode)?;
        decode_reply(&self.call_raw(ty, key, &payload).await?)
    }

    /// [`cast_raw`](Client::cast_raw) with a typed request.
    pub async fn cast<Req: Serialize>(
        &self,
        ty: &str,
        key: impl AsRef<[u8]>,
        request: &Req,
    ) -> Result<(), Error> {
        let payload = postcard::to_allocvec(request).map_err(Error::Encode)?;
        self.cast_raw(ty, key, &payload).await
    }

    /// [`multi_call_raw`](Client::multi_call_raw) with a typed request and
    /// replies.
    pub async fn multi_call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        n: usize,
        ty: &str,
        key: impl AsRef<[u8]>,
        request: &Req,
    ) -> Result<Vec<(Service, Result<Resp, Error>)>, Error> {
        let payload = postcard::to_allocvec(request).map_err(Error::Encode)?;
        let replies = self.multi_call_raw(n, ty, key, &payload).await?;
        Ok(replies
            .into_iter()
            .map(|(service, reply)| (service, reply.and_then(|bytes| decode_reply(&bytes))))
            .collect())
    }

    /// [`multi_cast_raw`](Client::multi_cast_raw) with a typed request.
    pub async fn multi_cast<Req: Serialize>(
        &self,
        n: usize,
        ty: &str,
        key: impl AsRef<[u8]>,
        request: &Req,
    ) -> Result<usize, Error> {
        let payload = postcard::to_allocvec(request).map_err(Error::Encode)?;
        self.multi_cast_raw(n, ty, key, &payload).await
    }
}

/// Waits for a call's completion; the node completes every call exactly
/// once (reply, timeout or failure), so only a stopped driver drops it.
async fn wait(rx: oneshot::Receiver<Result<Vec<u8>, CallError>>) -> Result<Vec<u8>, CallError> {
    rx.await.unwrap_or(Err(CallError::Left))
}

impl<T: Transport> std::fmt::Debug for Client<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("registry", &self.registry)
            .field("timeout", &self.timeout)
            .finish()
    }
}
