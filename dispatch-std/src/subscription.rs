//! Join and leave events of one service type, as a stream.

use std::pin::Pin;
use std::task::{Context, Poll};

use dispatch_core::node::Service;
use tokio::sync::broadcast;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::{Stream, StreamExt};

/// Something that happened to an instance of a subscribed type, on any
/// node of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServiceEvent {
    /// An instance joined: added, enabled or disabled (an update is a leave
    /// of the old version and a join of the new), or back with its node.
    Joined(Service),
    /// An instance left: removed, or its node went down, left or restarted.
    Left(Service),
    /// The subscriber fell behind and this many events were dropped; read
    /// [`Registry::get_services`](crate::Registry::get_services) to resync.
    Lagged(u64),
}

/// The events of one service type, from
/// [`Registry::subscribe`](crate::Registry::subscribe). It ends when the
/// registry shuts down.
///
/// Events are buffered up to the builder's `subscription_capacity`; a
/// subscriber that falls further behind gets [`ServiceEvent::Lagged`].
pub struct Subscription {
    inner: BroadcastStream<ServiceEvent>,
}

impl Subscription {
    pub(crate) fn new(rx: broadcast::Receiver<ServiceEvent>) -> Self {
        Subscription {
            inner: BroadcastStream::new(rx),
        }
    }

    /// The next event, or `None` once the registry has shut down.
    pub async fn next(&mut self) -> Option<ServiceEvent> {
        StreamExt::next(self).await
    }
}

impl Stream for Subscription {
    type Item = ServiceEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ServiceEvent>> {
        Pin::new(&mut self.inner).poll_next(cx).map(|item| {
            item.map(|r| match r {
                Ok(event) => event,
                Err(BroadcastStreamRecvError::Lagged(n)) => ServiceEvent::Lagged(n),
            })
        })
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").finish_non_exhaustive()
    }
}
