//! `dispatch-device`: a Dispatch device on Linux, over a tap device.
//!
//! It runs what a board runs (embassy-executor, embassy-net, the
//! `dispatch-embassy` runner and handle), with embassy-net-tuntap in place
//! of an Ethernet driver: it registers a `sensor` instance, answers calls to
//! it, prints every join and leave it hears, and calls the owner of
//! `file.png` among the instances of `--call` (default `uploader`) when one
//! joins.
//!
//! ```text
//! ip tuntap add name tap0 mode tap && ip addr add 192.168.69.100/24 dev tap0 && ip link set tap0 up
//! dispatch-device --tap tap0 --address 192.168.69.1/24 --seed 192.168.69.100:7000 --name board-1
//! ```
//!
//! Its lines on stdout, one per event, are what the CI test reads; after
//! each it prints the peak heap in use since the node was created, above
//! what the process held before (the node, its runner and these prints).

mod std_udp;

use std::net::{Ipv4Addr, SocketAddr};
use std::process::exit;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dispatch_embassy::dispatch_core::keyring::{Key, Keyring};
use dispatch_embassy::socket::{self, SocketBuffers};
use dispatch_embassy::{Config, Dispatch, Handle, Runner};
use dispatch_embassy_example_sensor::{self as app, App};
use embassy_executor::Spawner;
use embassy_net::udp::UdpSocket;
use embassy_net::{Ipv4Cidr, StackResources, StaticConfigV4};
use embassy_net_tuntap::TunTapDevice;
use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use peak_alloc::PeakAlloc;
use static_cell::{ConstStaticCell, StaticCell};

/// Counts the heap, so that the device can print the peak its node used
/// (the footprint report sizes the boards' heaps from it).
#[global_allocator]
static HEAP: PeakAlloc = PeakAlloc;

type Node = Dispatch<NoopRawMutex>;
type NodeRunner = Runner<'static, NoopRawMutex, UdpSocket<'static>, 16, 8, 8>;
type LoopbackRunner = Runner<'static, NoopRawMutex, std_udp::StdUdp, 16, 8, 8>;
type NodeHandle = Handle<'static, NoopRawMutex, 16, 8, 8>;

/// Where the device's datagrams go.
enum Device {
    /// embassy-net over the tap device, at this address.
    Tap(UdpSocket<'static>, SocketAddr),
    /// The host's UDP stack, bound here.
    Loopback(std_udp::StdUdp, SocketAddr),
}

/// The command line.
struct Args {
    tap: String,
    /// Use the host's UDP stack at this address instead of a tap device.
    udp: Option<SocketAddr>,
    address: Ipv4Cidr,
    port: u16,
    seeds: Vec<SocketAddr>,
    name: String,
    sensor: String,
    call: String,
    heartbeat: Duration,
    down_after: Duration,
    key: Option<[u8; 32]>,
    /// List `--call` instances but never call them.
    no_calls: bool,
}

const USAGE: &str =
    "usage: dispatch-device [--tap NAME | --udp IP:PORT] [--address IPV4/PREFIX] [--port N] \
[--seed IP:PORT]... [--name NAME] [--sensor ID] [--call TYPE] [--heartbeat-ms N] [--down-ms N] \
[--key HEX64] [--no-calls]";

impl Args {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
        let mut a = Args {
            tap: "tap0".into(),
            udp: None,
            address: Ipv4Cidr::new(Ipv4Addr::new(192, 168, 69, 1), 24),
            port: 7000,
            seeds: Vec::new(),
            name: "board-1".into(),
            sensor: "s1".into(),
            call: "uploader".into(),
            heartbeat: Duration::from_secs(1),
            down_after: Duration::from_secs(10),
            key: None,
            no_calls: false,
        };
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or(format!("{flag} needs a value\n{USAGE}"));
            match flag.as_str() {
                "--tap" => a.tap = value()?,
                "--udp" => a.udp = Some(parse(&flag, &value()?)?),
                "--address" => a.address = parse_cidr(&value()?)?,
                "--port" => a.port = parse(&flag, &value()?)?,
                "--seed" => a.seeds.push(parse(&flag, &value()?)?),
                "--name" => a.name = value()?,
                "--sensor" => a.sensor = value()?,
                "--call" => a.call = value()?,
                "--heartbeat-ms" => a.heartbeat = Duration::from_millis(parse(&flag, &value()?)?),
                "--down-ms" => a.down_after = Duration::from_millis(parse(&flag, &value()?)?),
                "--key" => a.key = Some(parse_key(&value()?)?),
                "--no-calls" => a.no_calls = true,
                "--help" | "-h" => return Err(USAGE.into()),
                other => return Err(format!("unknown argument {other}\n{USAGE}")),
            }
        }
        Ok(a)
    }
}

fn parse<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    v.parse().map_err(|e| format!("{flag} {v:?}: {e}\n{USAGE}"))
}

fn parse_cidr(v: &str) -> Result<Ipv4Cidr, String> {
    let (ip, prefix) = app::parse::cidr(v).ok_or_else(|| {
        format!("--address {v:?}: write an IPv4 address and prefix, e.g. 192.168.69.1/24")
    })?;
    Ok(Ipv4Cidr::new(ip, prefix))
}

fn parse_key(v: &str) -> Result<[u8; 32], String> {
    app::parse::key(v).ok_or_else(|| {
        format!(
            "--key: write the cluster key as 64 hex digits (got {} characters)",
            v.len()
        )
    })
}

fn fail(message: &str) -> ! {
    eprintln!("dispatch-device: {message}");
    exit(2)
}

#[embassy_executor::task]
async fn net_task(mut runner: embassy_net::Runner<'static, TunTapDevice>) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn dispatch_task(runner: NodeRunner) {
    runner.run().await
}

#[embassy_executor::task]
async fn loopback_task(runner: LoopbackRunner) {
    runner.run().await
}

/// Twice a second, prints how many instances of `ty` the node knows and
/// the heap peak, when either changed (events may lag; this does not).
#[embassy_executor::task]
async fn heap_task(handle: NodeHandle, ty: String, before: usize) -> ! {
    let mut printed = (0, 0);
    loop {
        embassy_time::Timer::after_millis(500).await;
        let now = (
            handle.services(&ty).len(),
            HEAP.peak_usage().saturating_sub(before),
        );
        if now != printed {
            println!("known {ty} {}", now.0);
            println!("heap peak {} B since the node started", now.1);
            printed = now;
        }
    }
}

/// Answers every call to this device's sensor (the shared application).
#[embassy_executor::task]
async fn answer_task(handle: NodeHandle) -> ! {
    app::answer_calls(handle, stdout).await
}

/// The application's log: a line on standard output.
fn stdout(line: std::fmt::Arguments<'_>) {
    println!("{line}");
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    let args = Args::parse(std::env::args().skip(1)).unwrap_or_else(|e| fail(&e));
    // Made before the heap is counted: the host's reactor is not the node's.
    let socket = match args.udp {
        Some(addr) => {
            let socket = std_udp::StdUdp::bind(addr)
                .unwrap_or_else(|e| fail(&format!("cannot bind {addr}: {e}")));
            let bound = socket.local_addr().unwrap_or(addr);
            Device::Loopback(socket, bound)
        }
        None => Device::Tap(
            tap_socket(spawner, &args),
            SocketAddr::from((args.address.address(), args.port)),
        ),
    };

    let mut config = Config::small();
    config.seed = getrandom::u64().unwrap_or(2);
    config.heartbeat_period = args.heartbeat;
    config.down_after = args.down_after;
    config.keyring = args
        .key
        .map(|k| Keyring::new(Key::new(1, k).unwrap_or_else(|e| fail(&format!("--key: {e}")))));
    // Grows with every start, as peers require; a board reads it from its
    // real-time clock or a boot counter in flash.
    let incarnation = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_micros() as u64);
    // What the process held before the node: not the node's.
    HEAP.reset_peak_usage();
    let heap_before = HEAP.current_usage();
    static DISPATCH: StaticCell<Node> = StaticCell::new();
    let dispatch = DISPATCH.init(
        Dispatch::new(&args.name, incarnation, config).unwrap_or_else(|e| fail(&e.to_string())),
    );
    let (spawned, bound) = match socket {
        Device::Tap(socket, bound) => (
            dispatch_task(dispatch.runner(socket, &args.seeds)).map(|t| spawner.spawn(t)),
            bound,
        ),
        Device::Loopback(socket, bound) => (
            loopback_task(dispatch.runner(socket, &args.seeds)).map(|t| spawner.spawn(t)),
            bound,
        ),
    };
    spawned.unwrap_or_else(|e| fail(&format!("{e:?}")));

    let handle = dispatch.handle();
    if let Err(e) = handle.add_service("sensor", &args.sensor, b"") {
        fail(&format!("cannot register sensor/{}: {e}", args.sensor));
    }
    println!(
        "registered sensor/{} on {} (incarnation {incarnation}) at {bound}",
        args.sensor, args.name
    );
    spawner.spawn(answer_task(handle).unwrap_or_else(|e| fail(&format!("{e:?}"))));
    spawner.spawn(
        heap_task(handle, args.call.clone(), heap_before)
            .unwrap_or_else(|e| fail(&format!("{e:?}"))),
    );

    let me = App {
        name: args.name.clone(),
        sensor: args.sensor.clone(),
        call: args.call.clone(),
        calls: !args.no_calls,
    };
    loop {
        let event = handle.next_event().await;
        app::on_event(handle, &me, event, stdout).await;
        println!(
            "heap peak {} B since the node started",
            HEAP.peak_usage().saturating_sub(heap_before)
        );
    }
}

/// The embassy-net stack over the tap device, and its UDP socket.
fn tap_socket(spawner: Spawner, args: &Args) -> UdpSocket<'static> {
    let device = TunTapDevice::new(&args.tap).unwrap_or_else(|e| {
        fail(&format!(
            "cannot open tap device {}: {e} (create it with `ip tuntap add name {} mode tap`; opening it needs CAP_NET_ADMIN)",
            args.tap, args.tap
        ))
    });
    let net_config = embassy_net::Config::ipv4_static(StaticConfigV4 {
        address: args.address,
        gateway: None,
        dns_servers: Default::default(),
    });
    static NET: StaticCell<StackResources<4>> = StaticCell::new();
    let (stack, net_runner) = embassy_net::new(
        device,
        net_config,
        NET.init(StackResources::new()),
        getrandom::u64().unwrap_or(1),
    );
    spawner.spawn(net_task(net_runner).unwrap_or_else(|e| fail(&format!("{e:?}"))));

    // Twice the boards' buffers: a host has the memory.
    static BUFFERS: ConstStaticCell<SocketBuffers<16, 8192, 4096>> =
        ConstStaticCell::new(SocketBuffers::new());
    socket::bind(stack, BUFFERS.take(), args.port)
        .unwrap_or_else(|e| fail(&format!("cannot bind UDP port {}: {e:?}", args.port)))
}
