//! Phoenix.Tracker.State's own benchmark workload, run on the presence set.
//!
//! Prints the eleven lines of Phoenix's `script/bench.exs` with our time for
//! each (see `shared/bench/phoenix-parity.md`), the ratio against Phoenix's
//! median on the same machine kind, the heap bytes per entry of the merged
//! 2 x SIZE set, and a goals check.
//!
//! Phoenix's figures are the median of three runs of its script, so by
//! default the workload runs three times too, each run in a fresh process
//! (this program starts itself with `--child-run`), and each line is
//! compared by its median across the runs. `--runs N` changes the count;
//! `--runs 1` runs once, in this process.
//!
//! The figures in the file were measured once; a machine of the same kind
//! can be slower or faster on the day. `--phoenix DIR` runs Phoenix's own
//! `script/bench.exs` (with `mix run`, in the phoenix_pubsub checkout DIR)
//! after each of our runs and adds a comparison with those figures, taken
//! on the same machine at the same moment.
//!
//! Lines 1 and 3 write many megabytes of fresh memory, and on Linux each
//! page the process touches for the first time costs a page fault. For
//! those lines the report also prints how many faults they took and what
//! as many first touches of fresh pages cost on their own, timed just after
//! the line, so that the set's own work can be told from the machine's.
//!
//! Lines 1 and 3 also work in a few megabytes, more than a core's own
//! caches hold: they run from the last-level cache, which the core shares
//! with the rest of the host. When other work on the host loads that cache,
//! they slow down by up to two-fold, while code that stays in the core's
//! own caches does not. Just after line 3, each run therefore also times a
//! random walk (one dependent load a step) through 256 KiB, which the
//! core's own cache holds, and through 4 MiB, which only the shared cache
//! can; the report prints both, so that a run on a loaded host can be told
//! from slow code.
//!
//! Just after each run, lines 1 and 3 run again on plain hash tables
//! instead of the set, in a fresh process of their own (`plain.rs` beside
//! this file says what those tables do and leave out). The report prints
//! their times beside the set's and the ratio, so that a line's time can be
//! read against what the host did with plain tables at nearly the same
//! moment (on a noisy host, over several runs: `--runs N`).
//!
//! ```text
//! cargo run --release -p dispatch-core --example phoenix_parity -- --size 100000 --delta-size 100
//! cargo run --release -p dispatch-core --example phoenix_parity -- --quick
//! cargo run --release -p dispatch-core --example phoenix_parity -- --runs 9
//! cargo run --release -p dispatch-core --example phoenix_parity -- --phoenix ../phoenix_pubsub
//! ```

use std::hint::black_box;
use std::time::Instant;

use dispatch_core::presence::{Config, Meta, Presence, ReplicaId};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[path = "phoenix_parity/plain.rs"]
mod plain;

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// Phoenix.Tracker.State medians (ms) per line, and whether the figure is an
/// upper bound ("< 0.01").
const PHOENIX: [(f64, bool); 11] = [
    (2722.0, false),
    (117.0, false),
    (517.0, false),
    (187.0, false),
    (0.05, false),
    (0.02, false),
    (0.01, true),
    (6.6, false),
    (32.7, false),
    (79.0, false),
    (489.0, false),
];

/// How many times faster than Phoenix's median each line must be.
const GOAL_RATIO: f64 = 50.0;

/// Repetitions for the sub-millisecond lines that can be repeated without
/// changing the workload.
const REPEATS: usize = 1001;

/// Further rounds of lines 8 and 9 (fresh deltas of the same shape).
const DELTA_ROUNDS: u64 = 31;

/// One line's figures in one run: its single timing, and where the line
/// could be repeated without changing the workload, the median of those
/// repeats and their count.
#[derive(Clone, Copy)]
struct Line {
    once_ms: f64,
    median: Option<(f64, usize)>,
}

impl Line {
    /// The figure compared with Phoenix: the median of the repeats where
    /// there are repeats, else the single timing.
    fn ours(&self) -> f64 {
        self.median.map_or(self.once_ms, |m| m.0)
    }
}

/// Everything one run of the workload measured.
struct Run {
    lines: Vec<Line>,
    /// (line, page faults, first touches of as many fresh pages in ms).
    faults: Vec<(usize, u64, f64)>,
    /// Nanoseconds a step of the random walks through [`WALKS`], timed just
    /// after line 3.
    walks: [f64; 2],
    memory: Memory,
}

/// The heap of the merged 2 x SIZE set, measured apart from the timings.
struct Memory {
    live: i64,
    string_bytes: i64,
    entries: u64,
    types: u64,
    rss: Option<u64>,
}

impl Memory {
    fn per_entry(&self) -> f64 {
        (self.live - self.string_bytes) as f64 / self.entries as f64
    }
}

/// The first word of the line a child run prints for its parent.
const RUN_TAG: &str = "phoenix-parity-run";

impl Run {
    /// One line of text, read back by [`Run::decode`] in the parent.
    fn encode(&self) -> String {
        let mut out = String::from(RUN_TAG);
        for l in &self.lines {
            match l.median {
                Some((m, n)) => out.push_str(&format!(" L{}/{m}/{n}", l.once_ms)),
                None => out.push_str(&format!(" L{}", l.once_ms)),
            }
        }
        for &(line, n, touch) in &self.faults {
            out.push_str(&format!(" F{line}/{n}/{touch}"));
        }
        let [small, large] = self.walks;
        out.push_str(&format!(" W{small}/{large}"));
        let m = &self.memory;
        out.push_str(&format!(
            " M{}/{}/{}/{}/{}",
            m.live,
            m.string_bytes,
            m.entries,
            m.types,
            m.rss.map_or(-1, |r| r as i64)
        ));
        out
    }

    fn decode(text: &str) -> Option<Run> {
        let line = text.lines().find(|l| l.starts_with(RUN_TAG))?;
        let (mut lines, mut faults, mut walks, mut memory) = (Vec::new(), Vec::new(), None, None);
        for word in line.split_whitespace().skip(1) {
            let (kind, rest) = word.split_at(1);
            let f: Vec<&str> = rest.split('/').collect();
            match (kind, f.as_slice()) {
                ("L", [once]) => lines.push(Line {
                    once_ms: once.parse().ok()?,
                    median: None,
                }),
                ("L", [once, m, n]) => lines.push(Line {
                    once_ms: once.parse().ok()?,
                    median: Some((m.parse().ok()?, n.parse().ok()?)),
                }),
                ("F", [line, n, touch]) => {
                    faults.push((line.parse().ok()?, n.parse().ok()?, touch.parse().ok()?))
                }
                ("W", [small, large]) => walks = Some([small.parse().ok()?, large.parse().ok()?]),
                ("M", [live, strings, entries, types, rss]) => {
                    let rss: i64 = rss.parse().ok()?;
                    memory = Some(Memory {
                        live: live.parse().ok()?,
                        string_bytes: strings.parse().ok()?,
                        entries: entries.parse().ok()?,
                        types: types.parse().ok()?,
                        rss: u64::try_from(rss).ok(),
                    });
                }
                _ => return None,
            }
        }
        (lines.len() == PHOENIX.len()).then_some(())?;
        Some(Run {
            lines,
            faults,
            walks: walks?,
            memory: memory?,
        })
    }
}

/// The median of `v` (the upper one of the middle two for an even count).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn fmt_ratio(r: f64) -> String {
    if r >= 100.0 {
        format!("{r:.0}")
    } else {
        format!("{r:.1}")
    }
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

fn median_of<F: FnMut()>(mut f: F) -> f64 {
    let mut t: Vec<f64> = (0..REPEATS)
        .map(|_| {
            let s = Instant::now();
            f();
            ms(s)
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[REPEATS / 2]
}

fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn config() -> Config {
    Config {
        hash_seed: 0x5eed,
        ..Config::default()
    }
}

/// The decimal pairs "00" to "99", one after another.
const PAIRS: &str = concat!(
    "00010203040506070809101112131415161718192021222324",
    "25262728293031323334353637383940414243444546474849",
    "50515253545556575859606162636465666768697071727374",
    "75767778798081828384858687888990919293949596979899",
);

/// Names made of a fixed prefix and a number (`topic17`, `user42`),
/// written into one reused buffer: the prefix once, the digits per name.
/// The timed lines build a name per operation, as Phoenix's script does;
/// this keeps that cost to the digits rather than to copying the prefix
/// and validating the whole string each time. Most names of the workload
/// number entries in order (`user0`, `user1`, ...): a name whose number
/// follows the last one's rewrites only the digits that change, as a
/// counter does (usually the last one).
struct Namer {
    buf: String,
    prefix: usize,
    /// The number the buffer holds, once a name was written.
    last: Option<u64>,
}

impl Namer {
    fn new(prefix: &str) -> Self {
        let mut buf = String::with_capacity(prefix.len() + 20);
        buf.push_str(prefix);
        Namer {
            buf,
            prefix: prefix.len(),
            last: None,
        }
    }

    /// The prefix followed by the decimal digits of `n`.
    fn name(&mut self, n: u64) -> &str {
        match self.last {
            Some(last) if last.checked_add(1) == Some(n) => self.step(),
            _ => self.write(n),
        }
        self.last = Some(n);
        &self.buf
    }

    /// Adds one to the number the buffer holds: the trailing nines become
    /// zeros and the digit before them goes up (a new leading one if the
    /// number was all nines).
    fn step(&mut self) {
        match self.buf.as_bytes()[self.prefix..] {
            [.., d] if d != b'9' => {
                self.buf.truncate(self.buf.len() - 1);
                self.buf.push(char::from(d + 1));
                return;
            }
            _ => {}
        }
        let digits = &self.buf.as_bytes()[self.prefix..];
        let nines = digits.iter().rev().take_while(|&&d| d == b'9').count();
        let keep = self.buf.len() - nines;
        let up = match digits.len() - nines {
            0 => '1',
            k => char::from(digits[k - 1] + 1),
        };
        self.buf.truncate(keep - usize::from(keep > self.prefix));
        self.buf.push(up);
        for _ in 0..nines {
            self.buf.push('0');
        }
    }

    /// Writes the digits of `n`, two at a time from a table of `&str`
    /// pairs, which need no validation.
    fn write(&mut self, mut n: u64) {
        // The pairs of `n` below its leading one or two digits, last first.
        let mut pairs = [0u8; 10];
        let mut k = pairs.len();
        while n >= 100 {
            k -= 1;
            pairs[k] = (n % 100) as u8;
            n /= 100;
        }
        self.buf.truncate(self.prefix);
        let lead = 2 * n as usize;
        self.buf
            .push_str(&PAIRS[lead + usize::from(n < 10)..lead + 2]);
        for &p in &pairs[k..] {
            let at = 2 * usize::from(p);
            self.buf.push_str(&PAIRS[at..at + 2]);
        }
    }
}

fn s1_type(i: u64, types: u64) -> String {
    format!("topic{}", mix(i) % types)
}

fn create_s1(size: u64, types: u64) -> Presence {
    let mut s1 = Presence::new(ReplicaId::new("s1", 1), config()).expect("default config is valid");
    let (mut ty, mut id) = (Namer::new("topic"), Namer::new("user"));
    for i in 0..size {
        let data = i.to_le_bytes();
        s1.add(
            ty.name(mix(i) % types),
            id.name(i),
            Meta::online(i as u32, &data),
        )
        .expect("within limits");
    }
    s1
}

fn create_s2(size: u64) -> Presence {
    let mut s2 = Presence::new(ReplicaId::new("s2", 1), config()).expect("default config is valid");
    let (mut ty, mut id) = (Namer::new("topic"), Namer::new("user"));
    for i in 0..size {
        let data = i.to_le_bytes();
        s2.add(ty.name(i), id.name(i), Meta::online(i as u32, &data))
            .expect("within limits");
    }
    s2
}

fn live_bytes(region: &Region<'_, std::alloc::System>) -> isize {
    let c = region.change();
    c.bytes_allocated as isize - c.bytes_deallocated as isize
}

/// The page faults this process has taken that needed no disk (Linux).
fn minor_faults() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which ends at the last ')': the
    // state is field 3, the minor fault count field 10.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    rest.split_whitespace().nth(7)?.parse().ok()
}

/// Milliseconds to touch `pages` fresh pages for the first time, each write
/// faulting one in, or `None` where the allocator handed out memory it had
/// touched before (the figure would then mislead).
fn first_touch_ms(pages: u64) -> Option<f64> {
    const PAGE: usize = 4096;
    let pages = usize::try_from(pages).ok()?;
    let mut v = vec![0u8; pages * PAGE];
    let before = minor_faults()?;
    let t = Instant::now();
    for k in 0..pages {
        v[k * PAGE] = 1;
    }
    let took = ms(t);
    black_box(&v);
    let faults = minor_faults()? - before;
    (faults * 2 >= pages as u64).then_some(took)
}

/// The page faults taken since `before`, and what as many first touches of
/// fresh pages cost on their own, timed at once (outside the line's time).
fn faults_since(before: Option<u64>) -> Option<(u64, f64)> {
    let n = minor_faults()? - before?;
    Some((n, first_touch_ms(n)?))
}

/// The sizes of the random walks timed after line 3: one the core's own
/// cache holds, one only the shared cache can.
const WALKS: [usize; 2] = [256 << 10, 4 << 20];

/// Steps of each walk.
const WALK_STEPS: usize = 200_000;

/// Nanoseconds a step of a random walk through `bytes` of memory: each step
/// loads the next position from the current one, so the steps cannot
/// overlap and each costs the latency of the cache that holds the walk.
fn walk_ns(bytes: usize) -> f64 {
    let n = bytes / 4;
    // Sattolo's shuffle of the positions: one cycle through all of them.
    let mut next: Vec<u32> = (0..n as u32).collect();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for k in (1..n).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        next.swap(k, (x % k as u64) as usize);
    }
    let mut at = 0u32;
    let t = Instant::now();
    for _ in 0..WALK_STEPS {
        at = next[at as usize];
    }
    let took = t.elapsed();
    black_box(at);
    took.as_secs_f64() * 1e9 / WALK_STEPS as f64
}

fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// The eleven titles, as Phoenix's script prints them.
fn titles(size: u64, delta: u64) -> [String; 11] {
    [
        format!("Creating 2 {size} element sets"),
        format!("extracting {size} element set"),
        format!("merging 2 {size} element sets"),
        format!("merging again {size} element sets"),
        format!("get_by_topic for 1000 members of 2*{size} element set"),
        format!("get_by_pid/2 for 2*{size} element set"),
        format!("get_by_pid/4 for 2*{size} element set"),
        format!("Creating delta with {delta} joins and leaves"),
        format!("Merging delta with {delta} joins and leaves into 2*{size} element set"),
        format!("replica_down from 2*{size} replica with downed holding {size} elements"),
        format!("remove_down_replicas from 2*{size} replica with downed holding {size} elements"),
    ]
}

struct Args {
    size: u64,
    delta: u64,
    runs: usize,
    /// Set in the processes the parent starts: run once, print one line.
    child: bool,
    /// Set in the processes the parent starts for the plain baseline.
    plain_child: bool,
    /// A phoenix_pubsub checkout whose `script/bench.exs` runs beside ours.
    phoenix: Option<std::path::PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        size: 100_000,
        delta: 100,
        runs: 3,
        child: false,
        plain_child: false,
        phoenix: None,
    };
    let mut it = std::env::args().skip(1);
    let number = |flag: &str, v: Option<String>| -> Result<u64, String> {
        v.as_deref()
            .and_then(|v| v.parse().ok())
            .ok_or(format!("{flag} takes a whole number"))
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--size" => args.size = number("--size", it.next())?,
            "--delta-size" => args.delta = number("--delta-size", it.next())?,
            "--runs" => {
                args.runs = number("--runs", it.next())? as usize;
                if args.runs == 0 {
                    return Err("--runs must be at least 1".into());
                }
            }
            "--quick" => args.size = 10_000,
            "--child-run" => args.child = true,
            "--child-plain" => args.plain_child = true,
            "--phoenix" => {
                let dir = std::path::PathBuf::from(
                    it.next()
                        .ok_or("--phoenix takes the folder of a phoenix_pubsub checkout")?,
                );
                if !dir.join("script/bench.exs").is_file() {
                    return Err(format!(
                        "--phoenix {}: no script/bench.exs there; give the folder of a \
                         phoenix_pubsub checkout",
                        dir.display()
                    ));
                }
                args.phoenix = Some(dir);
            }
            other => {
                return Err(format!(
                    "unknown argument {other}; use --size N, --delta-size N, --runs N, \
                     --phoenix DIR or --quick"
                ))
            }
        }
    }
    args.size = args.size.max(20);
    args.delta = args.delta.clamp(2, args.size);
    Ok(args)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("phoenix_parity: {e}");
            std::process::exit(2);
        }
    };
    if args.child {
        println!("{}", run_once(args.size, args.delta).encode());
        return;
    }
    if args.plain_child {
        println!(
            "{}",
            encode_plain(&plain::run(args.size, types_of(args.size)))
        );
        return;
    }
    // Each run in a fresh process, as Phoenix's three runs were: a run in
    // this process would find the pages the previous one freed. The plain
    // baseline of lines 1 and 3 follows each run, in a fresh process too.
    // With `--phoenix`, a run of Phoenix's own script follows each of ours.
    let mut runs = Vec::new();
    let mut plains = Vec::new();
    let mut phoenix = Vec::new();
    for k in 0..args.runs {
        runs.push(if args.runs == 1 {
            run_once(args.size, args.delta)
        } else {
            child_run(&args, k)
        });
        plains.push(plain_run(&args, k));
        if let Some(dir) = &args.phoenix {
            match phoenix_run(dir, args.size, args.delta) {
                Ok(p) => phoenix.push(p),
                Err(e) => {
                    eprintln!(
                        "phoenix_parity: Phoenix's benchmark in {}: {e}",
                        dir.display()
                    );
                    std::process::exit(1);
                }
            }
        }
    }
    let ours = report(args.size, args.delta, &runs);
    report_plain(&runs, &plains);
    if let Some(dir) = &args.phoenix {
        report_same_run(dir, &ours, &phoenix);
    }
}

/// Run `k` of the workload, in a fresh process of this program.
fn child_run(args: &Args, k: usize) -> Run {
    child(args, k, "--child-run", Run::decode)
}

/// The plain baseline after run `k`, in a fresh process of this program.
fn plain_run(args: &Args, k: usize) -> plain::PlainRun {
    child(args, k, "--child-plain", decode_plain)
}

/// Starts this program with `flag` at the same sizes and reads back what
/// it printed.
fn child<T>(args: &Args, k: usize, flag: &str, decode: fn(&str) -> Option<T>) -> T {
    let exe = std::env::current_exe().expect("the path of this program");
    let out = std::process::Command::new(&exe)
        .args(["--size", &args.size.to_string()])
        .args(["--delta-size", &args.delta.to_string()])
        .arg(flag)
        .output()
        .expect("this program can start itself");
    let text = String::from_utf8_lossy(&out.stdout);
    match decode(&text) {
        Some(run) if out.status.success() => run,
        _ => panic!(
            "run {} of {} ({flag}) failed ({}):\n{text}{}",
            k + 1,
            args.runs,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// The first word of the line a plain baseline run prints for its parent.
const PLAIN_TAG: &str = "phoenix-parity-plain";

/// One line of text, read back by [`decode_plain`] in the parent: per
/// line, its time and its page faults or `-`.
fn encode_plain(run: &plain::PlainRun) -> String {
    let mut out = String::from(PLAIN_TAG);
    for (t, f) in &run.lines {
        match f {
            Some(n) => out.push_str(&format!(" P{t}/{n}")),
            None => out.push_str(&format!(" P{t}/-")),
        }
    }
    out
}

fn decode_plain(text: &str) -> Option<plain::PlainRun> {
    let line = text.lines().find(|l| l.starts_with(PLAIN_TAG))?;
    let mut lines = Vec::new();
    for word in line.split_whitespace().skip(1) {
        let (t, f) = word.strip_prefix('P')?.split_once('/')?;
        let faults = match f {
            "-" => None,
            n => Some(n.parse().ok()?),
        };
        lines.push((t.parse().ok()?, faults));
    }
    Some(plain::PlainRun {
        lines: lines.try_into().ok()?,
    })
}

/// Lines 1 and 3 beside their plain baseline, each the median over the
/// runs, and the set's time over the plain one.
fn report_plain(runs: &[Run], plains: &[plain::PlainRun]) {
    println!(
        "lines 1 and 3 beside the plain baseline (the same entries put into plain hash tables \
         with no duplicate or limit checks, no order among a type's members and no change \
         list, in a fresh process just after each run; for information):"
    );
    for (j, line) in [1, 3].into_iter().enumerate() {
        let ours = median(runs.iter().map(|r| r.lines[line - 1].once_ms).collect());
        let base = median(plains.iter().map(|p| p.lines[j].0).collect());
        let faults = match plains[0].lines[j].1 {
            Some(n) => format!(" with {n} page faults"),
            None => String::new(),
        };
        println!(
            "   line {line:>2}: plain {base:.1} ms{faults}, the set {ours:.1} ms: {:.2}x the plain time",
            ours / base
        );
    }
}

/// One run of Phoenix's own `script/bench.exs`, the way its documentation
/// runs it (`mix run`, in the checkout), at the same sizes: its eleven
/// times in milliseconds, as it prints them (rounded to 0.01 ms).
fn phoenix_run(dir: &std::path::Path, size: u64, delta: u64) -> Result<[f64; 11], String> {
    let out = std::process::Command::new("mix")
        .current_dir(dir)
        .args(["run", "script/bench.exs"])
        .args(["--size", &size.to_string()])
        .args(["--delta-size", &delta.to_string()])
        .output()
        .map_err(|e| format!("could not start `mix` ({e}); install Elixir"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "`mix run script/bench.exs` failed ({}):\n{text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    // Its lines read `   = 517.3ms    0.52s`.
    let times: Vec<f64> = text
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("= "))
        .filter_map(|l| l.split("ms").next()?.trim().parse().ok())
        .collect();
    times
        .try_into()
        .map_err(|t: Vec<f64>| format!("printed {} times, not 11:\n{text}", t.len()))
}

/// The comparison with Phoenix's script run alongside ours, line by line:
/// the same machine at the same moment, so that a slow or a fast machine
/// weighs on both.
/// `ours` is each line's figure, as [`report`] compared it.
fn report_same_run(dir: &std::path::Path, ours: &[f64], phoenix: &[[f64; 11]]) {
    println!(
        "against Phoenix run alongside (`mix run script/bench.exs` in {}, {} runs, each after one of ours):",
        dir.display(),
        phoenix.len()
    );
    for (k, &ours) in ours.iter().enumerate() {
        let p = median(phoenix.iter().map(|t| t[k]).collect());
        // The script rounds to 0.01 ms: a zero is below that.
        let (p, lt) = if p == 0.0 { (0.01, "< ") } else { (p, "") };
        let ratio = p / ours;
        println!(
            "   line {:>2}: Phoenix median {lt}{p:.2}ms, ours {ours:.4}ms: {}x faster{}",
            k + 1,
            fmt_ratio(ratio),
            if ratio >= GOAL_RATIO {
                String::new()
            } else {
                format!(" (under {GOAL_RATIO}x)")
            }
        );
    }
}

/// The number of types of the workload: SIZE / 10.
fn types_of(size: u64) -> u64 {
    (size / 10).max(1)
}

/// Runs Phoenix's workload once and returns what it measured.
fn run_once(size: u64, delta: u64) -> Run {
    let types = types_of(size);
    let mut lines = Vec::new();
    let mut faults = Vec::new();
    let once = |t: f64| Line {
        once_ms: t,
        median: None,
    };
    let repeated = |t: f64, m: f64| Line {
        once_ms: t,
        median: Some((m, REPEATS)),
    };

    let f = minor_faults();
    let t = Instant::now();
    let mut s1 = create_s1(size, types);
    let mut s2 = create_s2(size);
    lines.push(once(ms(t)));
    if let Some((n, touch)) = faults_since(f) {
        faults.push((1, n, touch));
    }

    s1.add("topic-extra", "user-extra", Meta::online(0, b"extra"))
        .expect("within limits");
    let context = s1.context();
    let t = Instant::now();
    let extract = s2.extract(&context);
    lines.push(once(ms(t)));

    let f = minor_faults();
    let t = Instant::now();
    let summary = s1.merge_extract(&extract).expect("a valid extract");
    lines.push(once(ms(t)));
    if let Some((n, touch)) = faults_since(f) {
        faults.push((3, n, touch));
    }
    let walks = WALKS.map(walk_ns);
    assert_eq!(
        summary.joins as u64, size,
        "the merge adds every entry of s2"
    );

    let t = Instant::now();
    let again = s1.merge_extract(&extract).expect("a valid extract");
    let first = ms(t);
    assert_eq!(
        (again.joins, again.leaves),
        (0, 0),
        "merging again changes nothing"
    );
    let m = median_of(|| {
        black_box(
            s1.merge_extract(black_box(&extract))
                .expect("a valid extract"),
        );
    });
    lines.push(repeated(first, m));
    drop(extract);

    let list = |s1: &Presence| {
        s1.entries_of_type(black_box("topic10"))
            .map(|e| e.meta().slot)
            .fold(0u64, |a, x| a + u64::from(x))
    };
    let t = Instant::now();
    black_box(list(&s1));
    let first = ms(t);
    let m = median_of(|| {
        black_box(list(&s1));
    });
    lines.push(repeated(first, m));

    let by_id = |s1: &Presence| s1.entries_of_id(black_box("user10")).count();
    let t = Instant::now();
    let n = black_box(by_id(&s1));
    let first = ms(t);
    assert_eq!(n, 2, "user10 is in s1 and in s2");
    let m = median_of(|| {
        black_box(by_id(&s1));
    });
    lines.push(repeated(first, m));

    let ty10 = s1_type(10, types);
    let one = |s1: &Presence| {
        s1.get(black_box("s1"), black_box(&ty10), black_box("user10"))
            .map(|e| e.meta().slot)
    };
    let t = Instant::now();
    let got = black_box(one(&s1));
    let first = ms(t);
    assert_eq!(got, Some(10));
    let m = median_of(|| {
        black_box(one(&s1));
    });
    lines.push(repeated(first, m));

    assert!(s2.take_delta().is_some(), "s2 had pending operations");
    // Round 0 is Phoenix's single run; the further rounds repeat the same
    // work (DELTA/2 fresh adds and DELTA/2 removes of existing entries, then
    // the merge into s1) for a median.
    let (mut t8, mut t9) = (Vec::new(), Vec::new());
    // Names are written by `Namer`s, as in line 1, so that the timing is
    // the set's work rather than the formatting machinery's.
    let (mut new_id, mut old_ty, mut old_id) =
        (Namer::new("new"), Namer::new("topic"), Namer::new("user"));
    for round in 0..=DELTA_ROUNDS {
        let new_type = format!("topic-new{round}");
        let t = Instant::now();
        for k in 0..delta / 2 {
            let j = round * (delta / 2) + k;
            let data = j.to_le_bytes();
            s2.add(&new_type, new_id.name(j), Meta::online(j as u32, &data))
                .expect("within limits");
            s2.remove(old_ty.name(j), old_id.name(j)).expect("exists");
        }
        let d = s2.take_delta().expect("operations are pending");
        t8.push(ms(t));
        let t = Instant::now();
        let summary = s1.merge_delta(&d).expect("no gap");
        t9.push(ms(t));
        assert_eq!(
            (summary.joins as u64, summary.leaves as u64),
            (delta / 2, delta / 2)
        );
    }
    let rounds = DELTA_ROUNDS as usize;
    lines.push(Line {
        once_ms: t8[0],
        median: Some((median(t8[1..].to_vec()), rounds)),
    });
    lines.push(Line {
        once_ms: t9[0],
        median: Some((median(t9[1..].to_vec()), rounds)),
    });

    let s2_id = s2.me().clone();
    let t = Instant::now();
    let summary = s1.replica_down(&s2_id).expect("s2 is known");
    let first = ms(t);
    assert_eq!(summary.leaves as u64, size);
    // Repeat: up again (not timed), then down (timed).
    let downs: Vec<f64> = (0..DELTA_ROUNDS)
        .map(|_| {
            s1.replica_up(&s2_id).expect("s2 is known");
            let t = Instant::now();
            s1.replica_down(&s2_id).expect("s2 is known");
            ms(t)
        })
        .collect();
    lines.push(Line {
        once_ms: first,
        median: Some((median(downs), rounds)),
    });

    let t = Instant::now();
    s1.remove_down_replica(&s2_id).expect("s2 is down");
    lines.push(once(ms(t)));
    assert_eq!(s1.stats().entries as u64, size + 1);
    drop(s1);
    drop(s2);

    // Memory of the merged 2 x SIZE set, measured apart from the timings.
    let s2 = create_s2(size);
    let region = Region::new(GLOBAL);
    let mut m = create_s1(size, types);
    m.add("topic-extra", "user-extra", Meta::online(0, b"extra"))
        .expect("within limits");
    {
        let x = s2.extract(&m.context());
        m.merge_extract(&x).expect("a valid extract");
    }
    m.replica_up(s2.me()).expect("known"); // a no-op call: clears the change buffer
    let live = live_bytes(&region) as i64;
    let st = m.stats();
    let memory = Memory {
        live,
        string_bytes: st.string_bytes as i64,
        entries: st.entries as u64,
        types: st.types as u64,
        rss: rss_bytes(),
    };
    drop(m);
    Run {
        lines,
        faults,
        walks,
        memory,
    }
}

/// Prints the eleven lines, the memory figure and the goals check, over
/// all runs: each line's figure is its median across the runs. Returns
/// those figures.
fn report(size: u64, delta: u64, runs: &[Run]) -> Vec<f64> {
    let n = runs.len();
    let across = |f: &dyn Fn(&Run) -> f64| median(runs.iter().map(f).collect());
    let mut ours = Vec::new();
    for (k, title) in titles(size, delta).iter().enumerate() {
        let (phoenix, bound) = PHOENIX[k];
        let once = across(&|r| r.lines[k].once_ms);
        let figure = across(&|r| r.lines[k].ours());
        ours.push(figure);
        let mut extra = String::new();
        if n > 1 {
            extra = format!("median of {n} runs");
            match runs[0].lines[k].median {
                Some((_, repeats)) => extra.push_str(&format!(
                    ", each the median of {repeats} repeats: {figure:.4}ms"
                )),
                None => {
                    let (lo, hi) = runs
                        .iter()
                        .map(|r| r.lines[k].once_ms)
                        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), t| {
                            (lo.min(t), hi.max(t))
                        });
                    extra.push_str(&format!(" (min {lo:.2}, max {hi:.2})"));
                }
            }
            extra.push_str("; ");
        } else if let Some((m, repeats)) = runs[0].lines[k].median {
            extra = format!("median of {repeats} runs {m:.4}ms; ");
        }
        let lt = if bound { "< " } else { "" };
        println!("{title}");
        println!(
            "   = {once:.2}ms  ({extra}Phoenix median {lt}{phoenix}ms: {}x faster)",
            fmt_ratio(phoenix / figure)
        );
    }

    // The set and the workload are deterministic: every run's heap is the
    // same, so the first run's figure stands for all.
    let mem = &runs[0].memory;
    let per_entry = mem.per_entry();
    println!(
        "resident bytes per entry of the merged {} entry set: {:.1} (live heap {} bytes, minus {} bytes of ids, data and names = {} bytes; {} types)",
        mem.entries,
        per_entry,
        mem.live,
        mem.string_bytes,
        mem.live - mem.string_bytes,
        mem.types
    );
    if let Some(rss) = mem.rss {
        println!(
            "   process RSS {:.1} MiB (for information: it holds s2 and allocator slack too)",
            rss as f64 / 1048576.0
        );
    }

    if n > 1 {
        println!("goals (on the median of {n} runs, each in a fresh process, as Phoenix's figures are the median of three):");
    } else {
        println!("goals:");
    }
    let mut all = true;
    for (k, &figure) in ours.iter().enumerate() {
        let ratio = PHOENIX[k].0 / figure;
        let ok = ratio >= GOAL_RATIO;
        all &= ok;
        println!(
            "   line {:>2}: {}x faster than Phoenix's median (goal {GOAL_RATIO}x): {}",
            k + 1,
            fmt_ratio(ratio),
            if ok { "ok" } else { "MISSED" }
        );
    }
    let l9_once = across(&|r| r.lines[8].once_ms) * 1000.0;
    let l9 = ours[8] * 1000.0;
    let ok9 = l9 < 100.0;
    all &= ok9;
    println!("   line  9 once: {l9_once:.1} us");
    println!(
        "   line  9 median: {l9:.1} us (goal < 100 us): {}",
        if ok9 { "ok" } else { "MISSED" }
    );
    for &(line, faults, _) in &runs[0].faults {
        let once = across(&|r| r.lines[line - 1].once_ms);
        // A run that could not time the first touches has no figure: the
        // median is of the runs that have one.
        let touches: Vec<f64> = runs
            .iter()
            .filter_map(|r| r.faults.iter().find(|f| f.0 == line).map(|f| f.2))
            .collect();
        let touch = median(touches);
        println!(
            "   line {line:>2}: {once:.1} ms with {faults} page faults; as many first touches of \
             fresh pages alone, timed just after: {touch:.1} ms (for information: the goal \
             is on the whole time)"
        );
    }
    let [small, large] = [0, 1].map(|k| across(&|r| r.walks[k]));
    println!(
        "   host, just after line 3: a random walk takes {small:.1} ns a step through {} KiB \
         (the core's own cache) and {large:.1} ns through {} KiB (the shared cache; for \
         information: the second figure grows several times when other work loads the \
         host's shared cache, and lines 1 and 3 slow down with it)",
        WALKS[0] >> 10,
        WALKS[1] >> 10
    );
    let okm = per_entry < 150.0;
    all &= okm;
    println!(
        "   bytes per entry beside the strings: {per_entry:.1} (goal < 150): {}",
        if okm { "ok" } else { "MISSED" }
    );
    println!(
        "   {}",
        if all {
            "all goals met"
        } else {
            "some goals missed"
        }
    );
    ours
}

#[cfg(test)]
mod tests {
    use super::Namer;

    #[test]
    fn names_are_the_prefix_and_the_decimal_number() {
        let mut n = Namer::new("user");
        // Counting up across every carry to five digits, then jumps, runs
        // after jumps, repeats and the largest numbers.
        let mut seq: Vec<u64> = (0..=10_050).collect();
        seq.extend([99_999, 100_000, 100_001, 7, 7, 8, 1_099, 1_100, 42]);
        seq.extend([u64::MAX - 1, u64::MAX, 0, 1, 9, 10, 999_999, 1_000_000]);
        for k in seq {
            assert_eq!(n.name(k), format!("user{k}"));
        }
        let mut empty = Namer::new("");
        for k in [0, 1, 9, 10, 11, 99, 100, 5] {
            assert_eq!(empty.name(k), k.to_string());
        }
    }
}
