//! Helpers shared by the benchmark clients: arguments, the output protocol the harness reads
//! (`bench/run.py`), percentiles and memory readings.
//!
//! Every client prints, on stdout, one line each:
//! * `MARK start` right before the measured part begins and `MARK end` right after it (the
//!   harness samples the server's and the client's CPU time at these moments);
//! * `RESULT {json}` with its figures.

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

/// `--key value` arguments.
pub struct Args(HashMap<String, String>);

impl Args {
    pub fn parse() -> Args {
        let mut map = HashMap::new();
        let mut it = std::env::args().skip(1);
        while let Some(k) = it.next() {
            let Some(key) = k.strip_prefix("--") else {
                die(&format!("unexpected argument {k:?}"));
            };
            let v = it
                .next()
                .unwrap_or_else(|| die(&format!("--{key} needs a value")));
            map.insert(key.to_owned(), v);
        }
        Args(map)
    }

    pub fn str(&self, key: &str, default: &str) -> String {
        self.0
            .get(key)
            .cloned()
            .unwrap_or_else(|| default.to_owned())
    }

    pub fn num(&self, key: &str, default: f64) -> f64 {
        match self.0.get(key) {
            None => default,
            Some(v) => v
                .parse()
                .unwrap_or_else(|_| die(&format!("--{key}: not a number: {v}"))),
        }
    }

    pub fn opt_str(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }

    pub fn opt_usize(&self, key: &str) -> Option<usize> {
        self.0.contains_key(key).then(|| self.usize(key, 0))
    }

    pub fn usize(&self, key: &str, default: usize) -> usize {
        self.num(key, default as f64) as usize
    }

    pub fn secs(&self, key: &str, default: f64) -> Duration {
        Duration::from_secs_f64(self.num(key, default))
    }
}

pub fn die(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(1);
}

pub fn mark(what: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "MARK {what}");
    let _ = out.flush();
}

/// A JSON object built by hand (numbers and plain strings only).
#[derive(Default)]
pub struct Json(Vec<(String, String)>);

impl Json {
    pub fn num(mut self, k: &str, v: f64) -> Self {
        let text = if v.is_finite() {
            format!("{v}")
        } else {
            "null".into()
        };
        self.0.push((k.into(), text));
        self
    }
    pub fn int(mut self, k: &str, v: u64) -> Self {
        self.0.push((k.into(), v.to_string()));
        self
    }
    pub fn str(mut self, k: &str, v: &str) -> Self {
        let escaped: String = v
            .chars()
            .flat_map(|c| match c {
                '"' => vec!['\\', '"'],
                '\\' => vec!['\\', '\\'],
                c if (c as u32) < 0x20 => vec![' '],
                c => vec![c],
            })
            .collect();
        self.0.push((k.into(), format!("\"{escaped}\"")));
        self
    }
    pub fn emit(self) {
        let body: Vec<String> = self.0.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "RESULT {{{}}}", body.join(","));
        let _ = out.flush();
    }
}

/// The `p`-th percentile (0..=100) of sorted samples (nearest rank).
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Round-trip samples in nanoseconds → the standard result fields.
pub fn rtt_result(json: Json, mut samples: Vec<u64>, elapsed: Duration) -> Json {
    samples.sort_unstable();
    let n = samples.len() as u64;
    json.int("count", n)
        .num("seconds", elapsed.as_secs_f64())
        .num("rate", n as f64 / elapsed.as_secs_f64())
        .num("p50_us", percentile(&samples, 50.0) as f64 / 1000.0)
        .num("p99_us", percentile(&samples, 99.0) as f64 / 1000.0)
        .num(
            "max_us",
            samples.last().copied().unwrap_or(0) as f64 / 1000.0,
        )
}

/// Throughput fields: messages and payload bytes echoed back within `elapsed`.
pub fn throughput_result(json: Json, messages: u64, bytes: u64, elapsed: Duration) -> Json {
    let s = elapsed.as_secs_f64();
    json.int("count", messages)
        .num("seconds", s)
        .num("rate", messages as f64 / s)
        .num("mbps", bytes as f64 / s / 1e6)
}

/// Resident set size of this process in KiB (VmRSS).
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A payload of `size` bytes: printable ASCII (valid UTF-8 and JSON-safe, so the same bytes
/// serve text, binary and envelope workloads).
pub fn payload(size: usize) -> Vec<u8> {
    (0..size).map(|i| b'a' + (i % 26) as u8).collect()
}

/// Median, in the unit given, of a set of durations in nanoseconds.
pub fn summary(json: Json, prefix: &str, mut ns: Vec<u64>) -> Json {
    ns.sort_unstable();
    json.num(
        &format!("{prefix}_p50_us"),
        percentile(&ns, 50.0) as f64 / 1000.0,
    )
    .num(
        &format!("{prefix}_p90_us"),
        percentile(&ns, 90.0) as f64 / 1000.0,
    )
    .num(
        &format!("{prefix}_max_us"),
        ns.last().copied().unwrap_or(0) as f64 / 1000.0,
    )
    .num(
        &format!("{prefix}_min_us"),
        ns.first().copied().unwrap_or(0) as f64 / 1000.0,
    )
}
