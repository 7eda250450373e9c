//! Phoenix.Tracker.State's own benchmark workload, run on the presence set.
//!
//! Prints the eleven lines of Phoenix's `script/bench.exs` with our time for
//! each (see `shared/bench/phoenix-parity.md`), the ratio against Phoenix's
//! median on the same machine kind, the heap bytes per entry of the merged
//! 2 x SIZE set, and a goals check.
//!
//! Lines 1 and 3 write many megabytes of fresh memory, and on Linux each
//! page the process touches for the first time costs a page fault. For
//! those lines the report also prints how many faults they took and what
//! as many first touches of fresh pages cost on their own, timed just after
//! the line, so that the set's own work can be told from the machine's.
//!
//! ```text
//! cargo run --release -p dispatch-core --example phoenix_parity -- --size 100000 --delta-size 100
//! cargo run --release -p dispatch-core --example phoenix_parity -- --quick
//! ```

use std::hint::black_box;
use std::time::Instant;

use dispatch_core::presence::{Config, Meta, Presence, ReplicaId};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

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

/// Repetitions for the sub-millisecond lines that can be repeated without
/// changing the workload.
const REPEATS: usize = 1001;

/// Further rounds of lines 8 and 9 (fresh deltas of the same shape).
const DELTA_ROUNDS: u64 = 31;

struct Bench {
    results: Vec<(f64, Option<f64>)>,
}

impl Bench {
    fn line(&mut self, title: &str, once_ms: f64, median_ms: Option<f64>) {
        self.line_n(title, once_ms, median_ms.map(|m| (m, REPEATS)));
    }

    fn line_n(&mut self, title: &str, once_ms: f64, median: Option<(f64, usize)>) {
        let median_ms = median.map(|m| m.0);
        let n = self.results.len();
        let (phoenix, bound) = PHOENIX[n];
        let ours = median_ms.unwrap_or(once_ms);
        println!("{title}");
        let mut extra = String::new();
        if let Some((m, runs)) = median {
            extra = format!("median of {runs} runs {m:.4}ms; ");
        }
        let lt = if bound { "< " } else { "" };
        println!(
            "   = {once_ms:.2}ms  ({extra}Phoenix median {lt}{phoenix}ms: {}x faster)",
            fmt_ratio(phoenix / ours)
        );
        self.results.push((once_ms, median_ms));
    }
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

/// Writes `prefix` and the decimal digits of `n` into `buf`, reusing its
/// allocation, and returns it.
fn name<'a>(buf: &'a mut String, prefix: &str, mut n: u64) -> &'a str {
    buf.clear();
    buf.push_str(prefix);
    let mut digits = [0u8; 20];
    let mut k = digits.len();
    loop {
        k -= 1;
        digits[k] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.push_str(std::str::from_utf8(&digits[k..]).expect("ASCII digits"));
    buf
}

fn s1_type(i: u64, types: u64) -> String {
    format!("topic{}", mix(i) % types)
}

fn create_s1(size: u64, types: u64) -> Presence {
    let mut s1 = Presence::new(ReplicaId::new("s1", 1), config()).expect("default config is valid");
    let (mut ty, mut id) = (String::new(), String::new());
    for i in 0..size {
        let data = i.to_le_bytes();
        let ty = name(&mut ty, "topic", mix(i) % types);
        s1.add(ty, name(&mut id, "user", i), Meta::online(i as u32, &data))
            .expect("within limits");
    }
    s1
}

fn create_s2(size: u64) -> Presence {
    let mut s2 = Presence::new(ReplicaId::new("s2", 1), config()).expect("default config is valid");
    let (mut ty, mut id) = (String::new(), String::new());
    for i in 0..size {
        let data = i.to_le_bytes();
        let ty = name(&mut ty, "topic", i);
        s2.add(ty, name(&mut id, "user", i), Meta::online(i as u32, &data))
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

fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn main() {
    let mut size: u64 = 100_000;
    let mut delta: u64 = 100;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--size" => {
                size = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--size takes a number")
            }
            "--delta-size" => {
                delta = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--delta-size takes a number")
            }
            "--quick" => size = 10_000,
            other => panic!("unknown argument {other}; use --size N, --delta-size N or --quick"),
        }
    }
    let size = size.max(20);
    // (line, page faults, first touches of as many fresh pages in ms).
    let mut faults: Vec<(usize, u64, f64)> = Vec::new();
    let delta = delta.clamp(2, size);
    let types = (size / 10).max(1);
    let mut b = Bench {
        results: Vec::new(),
    };

    let f = minor_faults();
    let t = Instant::now();
    let mut s1 = create_s1(size, types);
    let mut s2 = create_s2(size);
    b.line(&format!("Creating 2 {size} element sets"), ms(t), None);
    if let Some((n, touch)) = faults_since(f) {
        faults.push((1, n, touch));
    }

    s1.add("topic-extra", "user-extra", Meta::online(0, b"extra"))
        .expect("within limits");
    let context = s1.context();
    let t = Instant::now();
    let extract = s2.extract(&context);
    b.line(&format!("extracting {size} element set"), ms(t), None);

    let f = minor_faults();
    let t = Instant::now();
    let summary = s1.merge_extract(&extract).expect("a valid extract");
    b.line(&format!("merging 2 {size} element sets"), ms(t), None);
    if let Some((n, touch)) = faults_since(f) {
        faults.push((3, n, touch));
    }
    assert_eq!(
        summary.joins as u64, size,
        "the merge adds every entry of s2"
    );

    let t = Instant::now();
    let again = s1.merge_extract(&extract).expect("a valid extract");
    let once = ms(t);
    assert_eq!(
        (again.joins, again.leaves),
        (0, 0),
        "merging again changes nothing"
    );
    let median = median_of(|| {
        black_box(
            s1.merge_extract(black_box(&extract))
                .expect("a valid extract"),
        );
    });
    b.line(
        &format!("merging again {size} element sets"),
        once,
        Some(median),
    );
    drop(extract);

    let list = |s1: &Presence| {
        s1.entries_of_type(black_box("topic10"))
            .map(|e| e.meta().slot)
            .fold(0u64, |a, x| a + u64::from(x))
    };
    let t = Instant::now();
    black_box(list(&s1));
    let once = ms(t);
    let median = median_of(|| {
        black_box(list(&s1));
    });
    b.line(
        &format!("get_by_topic for 1000 members of 2*{size} element set"),
        once,
        Some(median),
    );

    let by_id = |s1: &Presence| s1.entries_of_id(black_box("user10")).count();
    let t = Instant::now();
    let n = black_box(by_id(&s1));
    let once = ms(t);
    assert_eq!(n, 2, "user10 is in s1 and in s2");
    let median = median_of(|| {
        black_box(by_id(&s1));
    });
    b.line(
        &format!("get_by_pid/2 for 2*{size} element set"),
        once,
        Some(median),
    );

    let ty10 = s1_type(10, types);
    let one = |s1: &Presence| {
        s1.get(black_box("s1"), black_box(&ty10), black_box("user10"))
            .map(|e| e.meta().slot)
    };
    let t = Instant::now();
    let got = black_box(one(&s1));
    let once = ms(t);
    assert_eq!(got, Some(10));
    let median = median_of(|| {
        black_box(one(&s1));
    });
    b.line(
        &format!("get_by_pid/4 for 2*{size} element set"),
        once,
        Some(median),
    );

    assert!(s2.take_delta().is_some(), "s2 had pending operations");
    // Round 0 is Phoenix's single run; the further rounds repeat the same
    // work (DELTA/2 fresh adds and DELTA/2 removes of existing entries, then
    // the merge into s1) for a median.
    let (mut t8, mut t9) = (Vec::new(), Vec::new());
    // Names are written into reused buffers, as in line 1, so that the
    // timing is the set's work rather than the formatting machinery's.
    let (mut id_buf, mut ty_buf, mut old_buf) = (String::new(), String::new(), String::new());
    for round in 0..=DELTA_ROUNDS {
        let new_type = format!("topic-new{round}");
        let t = Instant::now();
        for k in 0..delta / 2 {
            let j = round * (delta / 2) + k;
            let data = j.to_le_bytes();
            s2.add(
                &new_type,
                name(&mut id_buf, "new", j),
                Meta::online(j as u32, &data),
            )
            .expect("within limits");
            s2.remove(name(&mut ty_buf, "topic", j), name(&mut old_buf, "user", j))
                .expect("exists");
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
    let median = |t: &[f64]| {
        let mut t = t[1..].to_vec();
        t.sort_by(f64::total_cmp);
        t[t.len() / 2]
    };
    b.line_n(
        &format!("Creating delta with {delta} joins and leaves"),
        t8[0],
        Some((median(&t8), DELTA_ROUNDS as usize)),
    );
    b.line_n(
        &format!("Merging delta with {delta} joins and leaves into 2*{size} element set"),
        t9[0],
        Some((median(&t9), DELTA_ROUNDS as usize)),
    );

    let s2_id = s2.me().clone();
    let t = Instant::now();
    let summary = s1.replica_down(&s2_id).expect("s2 is known");
    let once = ms(t);
    assert_eq!(summary.leaves as u64, size);
    // Repeat: up again (not timed), then down (timed).
    let mut downs: Vec<f64> = (0..DELTA_ROUNDS)
        .map(|_| {
            s1.replica_up(&s2_id).expect("s2 is known");
            let t = Instant::now();
            s1.replica_down(&s2_id).expect("s2 is known");
            ms(t)
        })
        .collect();
    downs.sort_by(f64::total_cmp);
    b.line_n(
        &format!("replica_down from 2*{size} replica with downed holding {size} elements"),
        once,
        Some((downs[downs.len() / 2], DELTA_ROUNDS as usize)),
    );

    let t = Instant::now();
    s1.remove_down_replica(&s2_id).expect("s2 is down");
    b.line(
        &format!("remove_down_replicas from 2*{size} replica with downed holding {size} elements"),
        ms(t),
        None,
    );
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
    let live = live_bytes(&region);
    let st = m.stats();
    let per_entry = (live - st.string_bytes as isize) as f64 / st.entries as f64;
    println!(
        "resident bytes per entry of the merged {} entry set: {:.1} (live heap {} bytes, minus {} bytes of ids, data and names = {} bytes; {} types)",
        st.entries,
        per_entry,
        live,
        st.string_bytes,
        live - st.string_bytes as isize,
        st.types
    );
    if let Some(rss) = rss_bytes() {
        println!(
            "   process RSS {:.1} MiB (for information: it holds s2 and allocator slack too)",
            rss as f64 / 1048576.0
        );
    }

    println!("goals:");
    let mut all = true;
    for (n, &(once, median)) in b.results.iter().enumerate() {
        let ours = median.unwrap_or(once);
        let ratio = PHOENIX[n].0 / ours;
        let ok = ratio >= 50.0;
        all &= ok;
        println!(
            "   line {:>2}: {}x faster than Phoenix's median (goal 50x): {}",
            n + 1,
            fmt_ratio(ratio),
            if ok { "ok" } else { "MISSED" }
        );
    }
    let (l9_once, l9) = (
        b.results[8].0 * 1000.0,
        b.results[8].1.unwrap_or(b.results[8].0) * 1000.0,
    );
    let ok9 = l9 < 100.0;
    all &= ok9;
    println!("   line  9 once: {l9_once:.1} us");
    println!(
        "   line  9 median: {l9:.1} us (goal < 100 us): {}",
        if ok9 { "ok" } else { "MISSED" }
    );
    for &(line, n, touch) in &faults {
        let once = b.results[line - 1].0;
        println!(
            "   line {line:>2}: {once:.1} ms with {n} page faults; as many first touches of \
             fresh pages alone, timed just after: {touch:.1} ms (for information: the goal \
             is on the whole time)"
        );
    }
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
    drop(m);
}
