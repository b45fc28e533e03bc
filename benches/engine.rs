//! The run engine's benchmark: starts a real release `scriptd serve` and prints medians, each
//! against a baseline measured in the same run. Run with `cargo bench --bench engine`.
//! Figures are printed, never asserted.

mod common;

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{median, start_logging_server, start_server, Server, PASSWORD};
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::json;

const REPS: usize = 5;
const SUBSCRIBERS: usize = 1000;

fn start() -> Server {
    start_server(&[
        "--max-concurrent-runs",
        "16",
        "--max-log-bytes",
        "104857600",
    ])
}

impl Server {
    async fn script(&self, code: &str, script: &str) -> String {
        let body = json!({"name": code, "codeIdentifier": code, "type": "bash", "script": script, "concurrency": "parallel"});
        let v = self
            .call(Method::POST, "/api/admin/scripts", Some(&body))
            .await;
        v["id"].as_str().unwrap().to_string()
    }

    async fn run(&self, id: &str) -> String {
        let v = self
            .call(Method::POST, &format!("/api/admin/scripts/{id}/run"), None)
            .await;
        v["runId"].as_str().unwrap().to_string()
    }

    /// Follows a run's stream to `done`; returns the number of log lines received.
    async fn follow(&self, run: &str) -> usize {
        let resp = self
            .client
            .get(format!("{}/api/admin/scripts/runs/{run}/stream", self.base))
            .basic_auth("admin", Some(PASSWORD))
            .send()
            .await
            .unwrap();
        let mut body = resp.bytes_stream();
        let mut lines = 0usize;
        let mut carry = Vec::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.unwrap();
            carry.extend_from_slice(&chunk);
            let cut = carry.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
            let text = std::str::from_utf8(&carry[..cut]).unwrap();
            lines += text.matches("event: log\n").count();
            let done = text.contains("event: done\n");
            carry.drain(..cut);
            if done {
                break;
            }
        }
        lines
    }

    pub fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS:")
    }

    /// The highest RSS since the last `reset_peak_rss`.
    pub fn peak_rss_kib(&self) -> u64 {
        self.status_kib("VmHWM:")
    }

    /// Resets the kernel's peak-RSS mark of the server (`clear_refs`, Linux 4.0+).
    pub fn reset_peak_rss(&self) {
        std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5").unwrap();
    }

    /// CPU time the server process has used, in ms (user + system, from /proc).
    pub fn cpu_ms(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        // /proc counts in USER_HZ, which Linux's ABI fixes at 100 per second.
        ticks as f64 * 10.0
    }

    /// Bytes the server process has caused to be written to storage (`write_bytes` in
    /// /proc/<pid>/io: the database, its WAL and their checkpoints).
    pub fn written_bytes(&self) -> u64 {
        let io = std::fs::read_to_string(format!("/proc/{}/io", self.child.id())).unwrap();
        io.lines()
            .find_map(|l| l.strip_prefix("write_bytes:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .unwrap_or(0)
    }
}

fn time_command(script: &str, home: &std::path::Path) -> f64 {
    let t = Instant::now();
    let status = Command::new("bash")
        .args(["-lc", script])
        .env("HOME", home)
        .status()
        .unwrap();
    assert!(status.success());
    t.elapsed().as_secs_f64() * 1000.0
}

fn row(name: &str, value: f64, unit: &str, baseline: f64) {
    println!(
        "{name:<58} {value:>10.2} {unit:<6} baseline {baseline:>10.2} {unit:<6} ratio {:>6.2}x",
        value / baseline
    );
    let _ = std::io::stdout().flush();
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let server = start();
    let home = tempfile::tempdir().unwrap();
    println!("scriptd engine benchmark (medians of {REPS}; baselines measured in the same run)\n");

    // 1. Trigger -> done latency for `true`, against spawning `bash -lc true` directly, in
    // pairs: the machine's speed drifts between pairs far more than within one, so the
    // median of each pair's difference is the steadier figure of the overhead.
    let t_true = server.script("true-script", "true").await;
    let mut base = Vec::new();
    let mut ours = Vec::new();
    let mut over = Vec::new();
    for _ in 0..(REPS * 20) {
        let raw = time_command("true", home.path());
        let t = Instant::now();
        let run = server.run(&t_true).await;
        server.follow(&run).await;
        let run = t.elapsed().as_secs_f64() * 1000.0;
        base.push(raw);
        ours.push(run);
        over.push(run - raw);
    }
    row(
        "trigger -> done latency, script `true`",
        median(ours),
        "ms",
        median(base),
    );
    println!(
        "{:<58} {:>10.2} ms     (median of {} paired differences)",
        "trigger -> done overhead over a raw spawn",
        median(over),
        REPS * 20
    );

    // 2. Runs per second at concurrency 1 and 8, and the server's CPU per run. The CPU is
    // summed over every repetition: /proc counts it in 10 ms ticks.
    for conc in [1usize, 8] {
        // 96 runs a repetition at either concurrency, 480 in all: a resolution of 0.02 ms.
        let per_task = 96 / conc;
        let mut rates = Vec::new();
        let mut raw = Vec::new();
        let (mut cpu, mut runs) = (0.0, 0);
        for _ in 0..REPS {
            let t = Instant::now();
            let tasks: Vec<_> = (0..conc)
                .map(|_| {
                    let home = home.path().to_path_buf();
                    std::thread::spawn(move || {
                        for _ in 0..per_task {
                            time_command("true", &home);
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.join().unwrap();
            }
            raw.push((conc * per_task) as f64 / t.elapsed().as_secs_f64());
            let t = Instant::now();
            let cpu_before = server.cpu_ms();
            let futs = (0..conc).map(|_| async {
                for _ in 0..per_task {
                    let run = server.run(&t_true).await;
                    server.follow(&run).await;
                }
            });
            futures_util::future::join_all(futs).await;
            rates.push((conc * per_task) as f64 / t.elapsed().as_secs_f64());
            cpu += server.cpu_ms() - cpu_before;
            runs += conc * per_task;
        }
        let raw_rate = median(raw);
        row(
            &format!("runs/s at concurrency {conc}"),
            median(rates),
            "runs/s",
            raw_rate,
        );
        row(
            &format!("server CPU per run at concurrency {conc} (vs a raw spawn's time)"),
            cpu / runs as f64,
            "ms",
            1000.0 / raw_rate,
        );
    }

    // 3. Streaming `seq 2000000` to an SSE client, against `seq 2000000 > /dev/null`.
    let seq = server.script("seq", "seq 2000000").await;
    let mut base = Vec::new();
    let mut ours = Vec::new();
    let mut received = 0;
    let idle = server.rss_kib() as f64 / 1024.0;
    // Clean pages of the binary and its libraries, which the kernel can drop and share: how
    // much of the RSS figures below is the program's own size rather than its memory use.
    row(
        "idle RSS that is file pages (binary, libraries; vs all of it)",
        server.status_kib("RssFile:") as f64 / 1024.0,
        "MiB",
        idle,
    );
    server.reset_peak_rss();
    let mut cpu = Vec::new();
    let mut written = Vec::new();
    let mut finished = String::new();
    for _ in 0..3 {
        base.push(time_command("seq 2000000 > /dev/null", home.path()));
        let t = Instant::now();
        let before = server.cpu_ms();
        let written_before = server.written_bytes();
        finished = server.run(&seq).await;
        received = server.follow(&finished).await;
        ours.push(t.elapsed().as_secs_f64() * 1000.0);
        cpu.push(server.cpu_ms() - before);
        written.push((server.written_bytes() - written_before) as f64 / 1_048_576.0);
    }
    let in_step = median(ours);
    row(
        "stream `seq 2000000` to an SSE client (median of 3)",
        in_step,
        "ms",
        median(base.clone()),
    );
    println!("{:<58} {received} of 2000000 lines received", "");
    // The server's own work, which the wall time above shares with the client on a small
    // machine.
    row(
        "server CPU for one of those streams (median of 3)",
        median(cpu),
        "ms",
        median(base),
    );
    // `seq 2000000` prints 14 888 896 bytes, newlines included.
    row(
        "written to disk for one of those streams (vs the output)",
        median(written),
        "MiB",
        14_888_896.0 / 1_048_576.0,
    );
    row(
        "peak server RSS during those streams (idle RSS as baseline)",
        server.peak_rss_kib() as f64 / 1024.0,
        "MiB",
        idle,
    );

    // 3b. Watchers that are behind the run read the store, against the stream above: one
    // that opens 20 ms after the start (as a browser may), and replays of a finished run.
    let mut late = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let run = server.run(&seq).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        received = server.follow(&run).await;
        late.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    row(
        "the same stream opened 20 ms after the start (median of 3)",
        median(late),
        "ms",
        in_step,
    );
    println!("{:<58} {received} of 2000000 lines received", "");
    let (mut replay, mut replay_cpu) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let t = Instant::now();
        let before = server.cpu_ms();
        received = server.follow(&finished).await;
        replay.push(t.elapsed().as_secs_f64() * 1000.0);
        replay_cpu.push(server.cpu_ms() - before);
    }
    row(
        "replay of a finished 2000000-line run (median of 3)",
        median(replay),
        "ms",
        in_step,
    );
    println!("{:<58} {received} of 2000000 lines received", "");
    row(
        "server CPU for one replay (median of 3)",
        median(replay_cpu),
        "ms",
        in_step,
    );

    // 4. Peak server RSS during a 300 MB output flood (one live subscriber).
    let flood = server
        .script(
            "flood",
            "head -c 300000000 /dev/zero | tr '\\0' x | fold -w 99",
        )
        .await;
    let idle = server.rss_kib() as f64 / 1024.0;
    let mut peaks = Vec::new();
    for _ in 0..3 {
        let run = server.run(&flood).await;
        let follow = server.follow(&run);
        tokio::pin!(follow);
        let mut peak = 0u64;
        loop {
            tokio::select! {
                _ = &mut follow => break,
                _ = tokio::time::sleep(Duration::from_millis(20)) => peak = peak.max(server.rss_kib()),
            }
        }
        peaks.push(peak as f64 / 1024.0);
    }
    row(
        "peak server RSS during a 300 MB flood (median of 3)",
        median(peaks),
        "MiB",
        idle,
    );

    // 5. 1 000 concurrent SSE subscribers on one run.
    let gate_dir = tempfile::tempdir().unwrap();
    let gate = gate_dir.path().join("go");
    let fan = server
        .script(
            "fanout",
            &format!(
                "while [ ! -e {} ]; do sleep 0.01; done; seq 20000",
                gate.display()
            ),
        )
        .await;
    let run = server.run(&fan).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = server.rss_kib();
    let subscribers: Vec<_> = (0..SUBSCRIBERS).map(|_| server.follow(&run)).collect();
    let all = futures_util::future::join_all(subscribers);
    tokio::pin!(all);
    let attached = tokio::select! {
        _ = tokio::time::sleep(Duration::from_secs(2)) => server.rss_kib(),
        _ = &mut all => unreachable!("the run cannot end before the gate opens"),
    };
    let t = Instant::now();
    std::fs::write(&gate, "").unwrap();
    let counts = all.await;
    let elapsed = t.elapsed().as_secs_f64() * 1000.0;
    let complete = counts.iter().filter(|c| **c == 20000).count();
    let per_sub = (attached.saturating_sub(before)) as f64 / SUBSCRIBERS as f64;
    println!(
        "{:<58} {complete}/{SUBSCRIBERS} received all 20000 lines in {elapsed:.0} ms; {per_sub:.1} KiB RSS per subscriber (RSS {:.1} -> {:.1} MiB)",
        format!("{SUBSCRIBERS} SSE subscribers on one run"),
        before as f64 / 1024.0,
        attached as f64 / 1024.0
    );

    // 6. What an idle keep-alive connection costs the server, to compare with a subscriber.
    let before = server.rss_kib();
    let addr = server.base.trim_start_matches("http://").to_string();
    let mut idle = Vec::new();
    for _ in 0..SUBSCRIBERS {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
        conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let _ = conn.read(&mut buf).await.unwrap();
        idle.push(conn);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let per_conn = server.rss_kib().saturating_sub(before) as f64 / SUBSCRIBERS as f64;
    row(
        &format!("{SUBSCRIBERS} idle keep-alive connections, RSS each (vs a subscriber)"),
        per_conn,
        "KiB",
        per_sub,
    );

    // 7. Database statements a run costs (SQLite): a second server logs every statement
    // (sqlx's debug log), and the lines logged while runs of `true` are started and streamed
    // to `done` are counted. Includes what the runs cause now and then (pruning old runs).
    let log = tempfile::NamedTempFile::new().unwrap();
    let counted = start_logging_server(
        &["--max-concurrent-runs", "16"],
        "warn,sqlx::query=debug",
        log.reopen().unwrap().into(),
    );
    let id = counted.script("counted", "true").await;
    // The first run reads the script; later ones start from the definition held since.
    for _ in 0..3 {
        let run = counted.run(&id).await;
        counted.follow(&run).await;
    }
    let statements = || {
        std::fs::read_to_string(log.path())
            .unwrap()
            .matches("sqlx::query:")
            .count()
    };
    let before = statements();
    const COUNTED_RUNS: usize = 40;
    for _ in 0..COUNTED_RUNS {
        let run = counted.run(&id).await;
        counted.follow(&run).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    println!(
        "{:<58} {:>10.2} (SQLite, {COUNTED_RUNS} runs of `true`, each streamed to `done`)",
        "database statements per run",
        (statements() - before) as f64 / COUNTED_RUNS as f64
    );
    // A stream opened once the run has ended: the run and its log, each read once.
    let ended = counted.run(&id).await;
    counted.follow(&ended).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = statements();
    for _ in 0..COUNTED_RUNS {
        counted.follow(&ended).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    println!(
        "{:<58} {:>10.2} (SQLite, {COUNTED_RUNS} streams of an ended run of `true`)",
        "database statements per stream of an ended run",
        (statements() - before) as f64 / COUNTED_RUNS as f64
    );
}
