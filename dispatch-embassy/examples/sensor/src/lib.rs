//! The Dispatch application every device example runs, the same on each
//! board and on Linux: it registers `sensor/<id>`, answers every call to it
//! with `"<id> read for <the caller's payload>"`, logs the joins and leaves
//! it hears, and when an instance of the type it calls (`uploader`) joins,
//! calls the owner of `file.png` among them and logs the reply.
//!
//! What a device has of its own it passes in: its [`Log`] (stdout,
//! semihosting, or nothing), its [`App`] settings, and for the boards
//! ([`start`], with the `board` feature) its UDP socket, the seed of the
//! node's random choices from its RNG and an incarnation that grows with
//! every boot. With `board`, the node lives in a fixed heap of
//! [`HEAP_BYTES`].
#![no_std]

extern crate alloc;

use alloc::format;
use alloc::string::String;

use dispatch_embassy::{Handle, ServiceEvent};
use embassy_sync::blocking_mutex::raw::RawMutex;

pub mod parse;

#[cfg(feature = "board")]
mod board;
#[cfg(feature = "board")]
pub use board::*;

/// Where the application's lines go: one call a line.
pub type Log = fn(core::fmt::Arguments<'_>);

/// A log that drops every line, for boards with no output.
pub fn no_log(_: core::fmt::Arguments<'_>) {}

/// What the application does.
#[derive(Debug, Clone)]
pub struct App {
    /// The node's name, as the cluster lists it.
    pub name: String,
    /// The id of the device's `sensor` instance.
    pub sensor: String,
    /// The service type it calls when one of its instances joins.
    pub call: String,
    /// Whether it makes those calls.
    pub calls: bool,
}

impl App {
    /// `sensor/s1` on `name`, calling `uploader`.
    pub fn new(name: &str) -> App {
        App {
            name: name.into(),
            sensor: "s1".into(),
            call: "uploader".into(),
            calls: true,
        }
    }
}

/// Answers every request that reaches the device's instances, for ever.
pub async fn answer_calls<M: RawMutex, const E: usize, const R: usize, const C: usize>(
    handle: Handle<'_, M, E, R, C>,
    log: Log,
) -> ! {
    loop {
        let request = handle.next_request().await;
        let mut reply = format!("{} read for ", request.service_id).into_bytes();
        reply.extend_from_slice(&request.payload);
        match handle.reply(&request.id, &reply) {
            Ok(()) => log(format_args!(
                "answered {} from {}",
                request.service_id,
                request.id.caller().name
            )),
            // A cast has nothing to reply.
            Err(e) => log(format_args!(
                "request from {} not answered: {e}",
                request.id.caller().name
            )),
        }
    }
}

/// Logs one event and, for a join of `app.call`, calls the owner of
/// `file.png` among its instances.
pub async fn on_event<M: RawMutex, const E: usize, const R: usize, const C: usize>(
    handle: Handle<'_, M, E, R, C>,
    app: &App,
    event: ServiceEvent,
    log: Log,
) {
    match event {
        ServiceEvent::Joined(s) => {
            log(format_args!(
                "joined {}/{} on {} {:?}",
                s.ty, s.id, s.node.name, s.state
            ));
            if *s.ty == *app.call && app.calls {
                call_owner(handle, app, log).await;
            }
        }
        ServiceEvent::Left(s) => log(format_args!("left {}/{} on {}", s.ty, s.id, s.node.name)),
        ServiceEvent::Lagged(n) => log(format_args!("lagged {n}")),
    }
}

/// Handles every event, for ever: [`on_event`] in a loop.
pub async fn run_events<M: RawMutex, const E: usize, const R: usize, const C: usize>(
    handle: Handle<'_, M, E, R, C>,
    app: &App,
    log: Log,
) -> ! {
    loop {
        let event = handle.next_event().await;
        on_event(handle, app, event, log).await;
    }
}

/// Calls the owner of `file.png` among the instances of `app.call`.
async fn call_owner<M: RawMutex, const E: usize, const R: usize, const C: usize>(
    handle: Handle<'_, M, E, R, C>,
    app: &App,
    log: Log,
) {
    let Ok(owner) = handle.find_service(&app.call, b"file.png") else {
        return;
    };
    let payload = format!("file.png from {}", app.name);
    match handle
        .call(&app.call, b"file.png", payload.as_bytes(), None)
        .await
    {
        Ok(reply) => log(format_args!(
            "called {}/{} on {}: {}",
            owner.ty,
            owner.id,
            owner.node.name,
            String::from_utf8_lossy(&reply)
        )),
        Err(e) => log(format_args!(
            "call to {}/{} failed: {e}",
            owner.ty, owner.id
        )),
    }
}
