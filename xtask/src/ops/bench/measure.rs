//! Measuring one benchmark scenario: wall time and peak memory of a child
//! process tree, and a description of the machine the numbers come from.
//!
//! Every scenario runs as a child process (the xtask itself, or this binary
//! in its hidden baseline/floor mode) that the benchmark reaps with
//! `wait4(2)`. On Linux the `rusage` that `wait4` returns for a child holds
//! in `ru_maxrss` the largest resident set of that child *and of every
//! descendant it waited for* (the kernel folds reaped children's `maxrss`
//! into their parent's). So "peak memory" is the peak of the biggest single
//! process of the scenario (the xtask, or the largest helm or kubeconform it
//! ran), not the sum of processes running at the same moment: with two
//! workers the true machine-wide peak can be up to about twice that.
//! `getrusage(RUSAGE_CHILDREN)` would give the same kind of number but only
//! as a high-water mark over all scenarios of the run, which is why each
//! scenario is reaped on its own instead.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use serde::Serialize;

/// What one finished scenario process cost.
#[derive(Debug, Clone)]
pub struct Measured {
    pub wall: Duration,
    /// User plus system CPU time of the process and every descendant it
    /// waited for: the work done, which other load on the machine changes
    /// far less than it changes wall time.
    pub cpu: Duration,
    /// Peak resident set size in KiB (see the module docs for what it covers).
    pub peak_rss_kib: u64,
    /// Exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Cold runs of one scenario whose median counts: on a shared two-core VM
/// one run of the same work varies by 20 % and more (so does any CPU-bound
/// program on it), and one unlucky run should not decide a figure either way.
pub const COLD_RUNS: usize = 3;

/// The run of median wall time among `runs` (each a measurement and what
/// came with it), and every run's wall time, fastest first.
pub fn median<T>(mut runs: Vec<(Measured, T)>) -> Result<((Measured, T), Vec<Duration>)> {
    anyhow::ensure!(!runs.is_empty(), "no run to take the median of");
    runs.sort_by_key(|(measured, _)| measured.wall);
    let walls = runs.iter().map(|(measured, _)| measured.wall).collect();
    let middle = runs.len() / 2;
    Ok((runs.swap_remove(middle), walls))
}

/// Runs `command` to the end with stdout and stderr captured, and measures it.
///
/// Dirty pages left by whatever ran before are written out first (`sync`),
/// so that a scenario does not pay for the previous one's writeback: right
/// after `ct lint --all` (which writes an archive into every chart folder)
/// the xtask's cold run at N = 200 measured 15.6 s, on its own 12.3 s (2026-12-02).
pub fn run(mut command: Command) -> Result<Measured> {
    settle_disk();
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let shown = format!("{command:?}");
    let started = Instant::now();
    let mut child = command.spawn().with_context(|| format!("cannot start {shown}"))?;
    let pid = child.id();
    let _tracked = crate::exec::process::track(pid);
    // Drain both pipes while the child runs: a child that fills a pipe
    // nobody reads would block forever.
    let out = child.stdout.take().map(drain);
    let err = child.stderr.take().map(drain);
    let (code, rusage) = wait4(pid).with_context(|| format!("lost track of {shown}"))?;
    let wall = started.elapsed();
    let stdout = out.and_then(|h| h.join().ok()).unwrap_or_default();
    let stderr = err.and_then(|h| h.join().ok()).unwrap_or_default();
    // `child` is already reaped by wait4; dropping a std Child neither waits
    // nor kills, so nothing else touches the pid.
    drop(child);
    // ru_maxrss is in KiB on Linux.
    let peak_rss_kib = u64::try_from(rusage.ru_maxrss).unwrap_or(0);
    let cpu = timeval(rusage.ru_utime) + timeval(rusage.ru_stime);
    Ok(Measured { wall, cpu, peak_rss_kib, code, stdout, stderr })
}

/// Writes every dirty page of the machine out and waits for it.
fn settle_disk() {
    // SAFETY: sync(2) takes no arguments, cannot fail and touches no memory of ours.
    unsafe { libc::sync() };
}

fn timeval(t: libc::timeval) -> Duration {
    Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
        + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
}

fn drain<R: Read + Send + 'static>(mut pipe: R) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Waits for `pid` and returns its exit code and resource usage.
fn wait4(pid: u32) -> Result<(Option<i32>, libc::rusage)> {
    let pid = libc::pid_t::try_from(pid).context("process id out of range")?;
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: rusage is plain data, fully written by a successful wait4.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: wait4 on a child we started and have not reaped yet, with
        // valid pointers to a status word and an rusage struct.
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if reaped == pid {
            let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
            return Ok((code, usage));
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err).context("wait4 failed");
        }
    }
}

/// The machine the numbers were taken on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub os: String,
    pub helm: String,
    pub kubeconform: String,
    /// 1-minute load average when the benchmark started and ended: other
    /// work on the machine makes every number slower.
    pub load_before: f64,
    pub load_after: f64,
}

impl Machine {
    pub fn describe(tools: &crate::exec::tools::Toolset) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| std::env::consts::ARCH.to_string());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_gib: memory_kib / 1024.0 / 1024.0,
            os: format!("{} {}", std::env::consts::OS, kernel.trim()),
            helm: tools.helm.version.clone(),
            kubeconform: tools.kubeconform.version.clone(),
            load_before: load_average(),
            load_after: 0.0,
        }
    }
}

/// The 1-minute load average (0 where /proc is not there).
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_a_child_and_its_output() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo out; echo err >&2; exit 3"]);
        let measured = run(command).unwrap();
        assert_eq!(measured.code, Some(3));
        assert_eq!(measured.stdout.trim(), "out");
        assert_eq!(measured.stderr.trim(), "err");
        assert!(measured.peak_rss_kib > 0);
    }

    #[test]
    fn the_median_run_keeps_what_came_with_it() {
        let at = |ms: u64| Measured {
            wall: Duration::from_millis(ms),
            cpu: Duration::ZERO,
            peak_rss_kib: 0,
            code: Some(0),
            stdout: String::new(),
            stderr: String::new(),
        };
        let ((middle, tag), walls) = median(vec![(at(30), "c"), (at(10), "a"), (at(20), "b")]).unwrap();
        assert_eq!((middle.wall, tag), (Duration::from_millis(20), "b"));
        assert_eq!(walls, [10, 20, 30].map(Duration::from_millis));
        assert!(median::<()>(Vec::new()).is_err());
    }
}
