//! The [`Registry`] handle: register instances, read the replicated set,
//! route keys, subscribe to join and leave events.

use std::sync::{Arc, Mutex, PoisonError};

use dispatch_core::keyring::Keyring;
use dispatch_core::node::{Peer, Service};
use dispatch_core::presence::{Ref, ReplicaId};
use dispatch_core::ring::Routing;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::client::Client;
use crate::driver::{Core, IoStats};
use crate::error::Error;
use crate::handler::{ErasedHandler, Handler};
use crate::subscription::Subscription;
use crate::transport::{Transport, Udp};
use crate::Builder;

/// A handle on a running Dispatch node. Cheap to clone; every clone drives
/// the same node. When the last clone is dropped the node leaves the
/// cluster, as with [`Registry::shutdown`] (a handler holding a clone of its
/// own registry keeps it alive: call `shutdown`).
///
/// Reads ([`get_services`](Registry::get_services),
/// [`find_service`](Registry::find_service), ...) answer from this node's
/// replica of the set under a lock the driver holds only while it processes
/// one datagram: they never wait on the network. Commands change the local
/// replica at once and push the change to every peer before they return.
pub struct Registry<T: Transport = Udp> {
    inner: Arc<Inner<T>>,
}

struct Inner<T: Transport> {
    core: Arc<Core<T>>,
    driver: Mutex<Option<JoinHandle<()>>>,
    local_addr: T::Addr,
    id: ReplicaId,
}

impl<T: Transport> Drop for Inner<T> {
    fn drop(&mut self) {
        self.core.request_stop();
    }
}

impl<T: Transport> Clone for Registry<T> {
    fn clone(&self) -> Self {
        Registry {
            inner: Arc::clone(&self.inner),
        }
    }
}

/// Counters of a node: the core's traffic and drops, and the driver's I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// The core node's counters, including dropped datagrams by reason.
    pub node: dispatch_core::node::Stats,
    /// The driver's socket errors.
    pub io: IoStats,
}

impl Registry<Udp> {
    /// A [`Builder`] with the default settings.
    pub fn builder() -> Builder {
        Builder::new()
    }
}

impl<T: Transport> Registry<T> {
    pub(crate) fn new(core: Arc<Core<T>>, driver: JoinHandle<()>, local_addr: T::Addr) -> Self {
        let id = core.lock().node.id().clone();
        Registry {
            inner: Arc::new(Inner {
                core,
                driver: Mutex::new(Some(driver)),
                local_addr,
                id,
            }),
        }
    }

    pub(crate) fn core(&self) -> &Arc<Core<T>> {
        &self.inner.core
    }

    // ---- commands ----

    /// Registers instance `id` of service type `ty` on this node, online,
    /// with `handler` answering its requests. Every node hears of it at
    /// once. Returns the instance's ref.
    pub async fn add_service(
        &self,
        ty: &str,
        id: &str,
        handler: impl Handler,
    ) -> Result<Ref, Error> {
        self.add_service_with_data(ty, id, &[], handler).await
    }

    /// [`add_service`](Registry::add_service) with a few bytes of the
    /// application's own attached to the instance (every node sees them in
    /// [`Service::data`]).
    pub async fn add_service_with_data(
        &self,
        ty: &str,
        id: &str,
        data: &[u8],
        handler: impl Handler,
    ) -> Result<Ref, Error> {
        let handler: Arc<dyn ErasedHandler> = Arc::new(handler);
        let (r, out) = self.inner.core.input(|s, now| {
            let r = s.node.add_service(now, ty, id, data)?;
            s.handlers.insert((ty.into(), id.into()), handler);
            Ok::<_, Error>(r)
        });
        self.inner.core.flush(out).await;
        r
    }

    /// Unregisters an instance of this node; every node hears it leave.
    pub async fn remove_service(&self, ty: &str, id: &str) -> Result<(), Error> {
        self.command(|s, now| {
            s.node.remove_service(now, ty, id)?;
            s.handlers.remove(&(Box::from(ty), Box::from(id)));
            Ok(())
        })
        .await
    }

    /// Marks an instance of this node online: routing picks it again.
    pub async fn enable_service(&self, ty: &str, id: &str) -> Result<(), Error> {
        self.command(|s, now| Ok(s.node.enable_service(now, ty, id)?))
            .await
    }

    /// Marks an instance of this node offline: it stays listed, and routing
    /// skips it unless offline instances are allowed.
    pub async fn disable_service(&self, ty: &str, id: &str) -> Result<(), Error> {
        self.command(|s, now| Ok(s.node.disable_service(now, ty, id)?))
            .await
    }

    /// Replaces the cluster keyring of the running node (`None`: speak in
    /// the clear), for key rotation: each step (add the new key, promote
    /// it, remove the old one) is done on every node before the next, as
    /// [`key_file`](crate::key_file) describes. Takes effect with the next
    /// datagram sent or received.
    pub fn set_keyring(&self, keyring: Option<Keyring>) {
        self.inner.core.lock().node.set_keyring(keyring);
    }

    /// The keyring the node seals with and accepts now, if any.
    pub fn keyring(&self) -> Option<Keyring> {
        self.inner.core.lock().node.keyring().cloned()
    }

    /// Leaves the cluster: peers drop this node's services at once (no
    /// waiting for the down period), subscriptions end, waiting calls fail
    /// with [`Error::Stopped`]. Returns once the leave is sent; every clone
    /// of the handle is stopped.
    pub async fn shutdown(&self) {
        self.inner.core.request_stop();
        let driver = self
            .inner
            .driver
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(driver) = driver {
            // The driver only ends by itself; a panic inside it is the
            // runtime's to report.
            let _ = driver.await;
        }
    }

    // ---- reads ----

    /// This node's name and incarnation.
    pub fn id(&self) -> &ReplicaId {
        &self.inner.id
    }

    /// The address peers reach this node at.
    pub fn local_addr(&self) -> &T::Addr {
        &self.inner.local_addr
    }

    /// Every instance of `ty` in the cluster, online or not, with its node,
    /// state, ref and previous ref; the same order on every node.
    pub fn get_services(&self, ty: &str) -> Vec<Service> {
        let s = self.inner.core.lock();
        s.node
            .services(ty)
            .map(|e| Service::from_entry(&e))
            .collect()
    }

    /// The online instances of `ty`.
    pub fn get_online_services(&self, ty: &str) -> Vec<Service> {
        let s = self.inner.core.lock();
        s.node
            .online_services(ty)
            .map(|e| Service::from_entry(&e))
            .collect()
    }

    /// The instance of `ty` that owns `key`: every node that sees the same
    /// set gives the same answer. Offline instances are considered only with
    /// [`Routing::AllowOffline`].
    pub fn find_service(
        &self,
        ty: &str,
        key: impl AsRef<[u8]>,
        routing: Routing,
    ) -> Result<Service, Error> {
        let s = self.inner.core.lock();
        s.node
            .find_service(ty, key.as_ref(), routing == Routing::AllowOffline)
            .map(|e| Service::from_entry(&e))
            .map_err(|_| Error::NoService { ty: ty.into() })
    }

    /// Up to `n` distinct instances of `ty` for `key` (replicas), owner
    /// first, in an order every node agrees on; fewer only when fewer exist.
    pub fn find_multi_service(
        &self,
        n: usize,
        ty: &str,
        key: impl AsRef<[u8]>,
        routing: Routing,
    ) -> Result<Vec<Service>, Error> {
        let s = self.inner.core.lock();
        s.node
            .find_multi_service(n, ty, key.as_ref(), routing == Routing::AllowOffline)
            .map(|found| found.iter().map(Service::from_entry).collect())
            .map_err(|_| Error::NoService { ty: ty.into() })
    }

    /// A stream of the join and leave events of `ty`, from now on, for
    /// instances on every node. Pair it with
    /// [`get_services`](Registry::get_services) for the instances that were
    /// there before.
    pub fn subscribe(&self, ty: &str) -> Subscription {
        let capacity = self.inner.core.subscription_capacity;
        let mut s = self.inner.core.lock();
        let tx = s
            .subscribers
            .entry(ty.into())
            .or_insert_with(|| broadcast::channel(capacity).0);
        Subscription::new(tx.subscribe())
    }

    /// The peers this node knows, up or down.
    pub fn peers(&self) -> Vec<Peer<T::Addr>> {
        self.inner.core.lock().node.peers().cloned().collect()
    }

    /// Counters of traffic, drops and calls.
    pub fn stats(&self) -> Stats {
        let s = self.inner.core.lock();
        Stats {
            node: s.node.stats().clone(),
            io: s.io,
        }
    }

    // ---- calls ----

    /// A client for calls and casts; set its timeout with
    /// [`Client::timeout`].
    pub fn client(&self) -> Client<T> {
        Client::new(self.clone())
    }

    /// Calls the instance of `ty` that owns `key` with a typed request and
    /// waits for its typed reply, within the configured request timeout.
    /// See [`Client::call`].
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        ty: &str,
        key: impl AsRef<[u8]>,
        request: &Req,
    ) -> Result<Resp, Error> {
        self.client().call(ty, key, request).await
    }

    /// Sends a typed request to the instance of `ty` that owns `key`, with
    /// no reply. See [`Client::cast`].
    pub async fn cast<Req: Serialize>(
        &self,
        ty: &str,
        key: impl AsRef<[u8]>,
        request: &Req,
    ) -> Result<(), Error> {
        self.client().cast(ty, key, request).await
    }

    /// Calls the `n` instances for `key`. See [`Client::multi_call`].
    pub async fn multi_call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        n: usize,
        ty: &str,
        key: impl AsRef<[u8]>,
        request: &Req,
    ) -> Result<Vec<(Service, Result<Resp, Error>)>, Error> {
        self.client().multi_call(n, ty, key, request).await
    }

    /// Casts to the `n` instances for `key`. See [`Client::multi_cast`].
    pub async fn multi_cast<Req: Serialize>(
        &self,
        n: usize,
        ty: &str,
        key: impl AsRef<[u8]>,
        request: &Req,
    ) -> Result<usize, Error> {
        self.client().multi_cast(n, ty, key, request).await
    }

    async fn command(
        &self,
        f: impl FnOnce(
            &mut crate::driver::Shared<T::Addr>,
            dispatch_core::time::Instant,
        ) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let (r, out) = self.inner.core.input(f);
        self.inner.core.flush(out).await;
        r
    }
}

impl<T: Transport> std::fmt::Debug for Registry<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("id", &self.inner.id)
            .field("local_addr", &self.inner.local_addr)
            .finish_non_exhaustive()
    }
}
