//! Running external tools (helm, kubeconform, git, go).
//!
//! Every child process goes through [`run`], which:
//! - captures stdout and stderr, so parallel steps never interleave their logs;
//! - counts processes started (the benchmark reports it: on two cores the
//!   number of processes matters more than parallelism);
//! - remembers running children so Ctrl-C or SIGTERM stops all of them
//!   instead of leaving orphans that keep writing files.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

static STARTED: AtomicUsize = AtomicUsize::new(0);
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static RUNNING: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());
static DEFERRING: AtomicUsize = AtomicUsize::new(0);
/// Folders the interrupt handler removes once the children are gone.
static CLEANUP: Mutex<Vec<std::path::PathBuf>> = Mutex::new(Vec::new());
/// How long the handler waits for stopped children before removing folders.
const INTERRUPT_GRACE: Duration = Duration::from_secs(10);

/// The result of one finished child process.
#[derive(Debug, Clone)]
pub struct Finished {
    /// How the command is shown to people: program and arguments.
    pub display: String,
    pub success: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub duration: Duration,
}

impl Finished {
    /// stdout and stderr together, trimmed, for error messages.
    pub fn combined(&self) -> String {
        let mut text = String::new();
        for part in [self.stdout.trim(), self.stderr.trim()] {
            if !part.is_empty() {
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(part);
            }
        }
        text
    }
}

/// How many child processes this process has started so far.
pub fn started() -> usize {
    STARTED.load(Ordering::Relaxed)
}

/// True once Ctrl-C or SIGTERM was received; long loops check it.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// Installs the Ctrl-C / SIGTERM handler: stop every running child, then exit
/// 130. Files are only ever written through a temporary name and renamed into
/// place ([`crate::util::fs::write_atomic`]), so stopping here leaves nothing
/// half-written.
pub fn install_interrupt_handler() {
    let _ = ctrlc::set_handler(|| {
        let again = INTERRUPTED.swap(true, Ordering::SeqCst);
        if DEFERRING.load(Ordering::SeqCst) > 0 && !again {
            // A server's owner stops it in order and removes its files.
            return;
        }
        let pids: Vec<u32> = RUNNING.lock().map(|r| r.iter().copied().collect()).unwrap_or_default();
        for pid in pids {
            // SAFETY: kill(2) with a pid we started and have not reaped yet.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGTERM);
            }
        }
        eprintln!("interrupted: stopped {} running tool process(es)", RUNNING.lock().map(|r| r.len()).unwrap_or(0));
        let folders: Vec<std::path::PathBuf> = CLEANUP.lock().map(|c| c.clone()).unwrap_or_default();
        if !folders.is_empty() {
            // A server writes its data folder until it has exited; exiting
            // from here runs no destructor, so its owner cannot.
            let deadline = Instant::now() + INTERRUPT_GRACE;
            while RUNNING.lock().is_ok_and(|r| r.iter().any(|&pid| start_time(pid).is_some()))
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            for folder in folders {
                let _ = std::fs::remove_dir_all(folder);
            }
        }
        std::process::exit(130);
    });
}

/// While the returned guard lives, the first Ctrl-C or SIGTERM only sets
/// [`interrupted`]: for a command that serves (`cluster serve`), whose loop
/// notices it, stops its servers in order (the API server before its etcd)
/// and removes their files, which exiting from the handler would leave
/// behind. A second signal stops everything at once, as without the guard.
pub fn defer_interrupts() -> Deferring {
    DEFERRING.fetch_add(1, Ordering::SeqCst);
    Deferring(())
}

/// Returned by [`defer_interrupts`].
pub struct Deferring(());

impl Drop for Deferring {
    fn drop(&mut self) {
        DEFERRING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// When process `pid` started (clock ticks since boot, from
/// `/proc/<pid>/stat`), or `None` when there is no such process or it has
/// exited and awaits its reaping. A pid can be reused after its process
/// ended; a pid with its start time names one process for good, so a
/// recorded pair tells whether the process found now is still ours.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let (_, rest) = stat.rsplit_once(") ")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first().is_none_or(|state| *state == "Z" || *state == "X") {
        return None;
    }
    // Field 22 of stat(5); `rest` starts at field 3.
    fields.get(19)?.parse().ok()
}

/// Stops a server child started outside [`run`]: SIGTERM, up to `grace`
/// for it to exit, then SIGKILL; always reaped, so no zombie is left.
pub fn terminate(child: &mut std::process::Child, grace: Duration) {
    if let Ok(None) = child.try_wait() {
        // SAFETY: kill(2) on our own child, which has not been reaped.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
    }
    let _ = child.wait();
}

/// Blocks until stdin reaches its end: the parent closed it or died. How
/// the `serve` commands learn that the test that started them is done.
pub fn wait_for_stdin_end() {
    let mut sink = [0u8; 256];
    loop {
        match std::io::Read::read(&mut std::io::stdin(), &mut sink) {
            Ok(0) => break,
            Ok(_) => continue,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
}

/// The last `n` lines of a tool's output or log, for error messages.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Registers a child started outside [`run`] (the benchmark starts the xtask
/// itself and reaps it with `wait4` to read its peak memory) so that Ctrl-C
/// or SIGTERM stops it too. The child is not counted as a tool process.
/// Dropping the guard unregisters it.
pub fn track(pid: u32) -> Tracked {
    if let Ok(mut running) = RUNNING.lock() {
        running.insert(pid);
    }
    Tracked(pid)
}

/// Has the Ctrl-C / SIGTERM handler remove `folder` (after stopping the
/// children) while the returned guard lives: for what a `Drop` would
/// remove, since the handler exits without running destructors (a control
/// plane's data, certificates and kubeconfig).
pub fn remove_on_interrupt(folder: &std::path::Path) -> RemovedOnInterrupt {
    if let Ok(mut cleanup) = CLEANUP.lock() {
        cleanup.push(folder.to_path_buf());
    }
    RemovedOnInterrupt(folder.to_path_buf())
}

/// Returned by [`remove_on_interrupt`]; forgets the folder when dropped.
pub struct RemovedOnInterrupt(std::path::PathBuf);

impl Drop for RemovedOnInterrupt {
    fn drop(&mut self) {
        if let Ok(mut cleanup) = CLEANUP.lock() {
            if let Some(at) = cleanup.iter().position(|f| *f == self.0) {
                cleanup.remove(at);
            }
        }
    }
}

/// Returned by [`track`]; unregisters the child when dropped.
pub struct Tracked(u32);

impl Drop for Tracked {
    fn drop(&mut self) {
        if let Ok(mut running) = RUNNING.lock() {
            running.remove(&self.0);
        }
    }
}

/// Runs a command built with `xshell::cmd!`, optionally feeding `stdin`, and
/// waits for it. A command that cannot be started at all is an error; a
/// command that runs and fails is a [`Finished`] with `success == false`.
pub fn run(cmd: xshell::Cmd<'_>, stdin: Option<&[u8]>) -> Result<Finished> {
    let display = cmd.to_string();
    let mut command: Command = cmd.into();
    command.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let (child, started) = spawn(&mut command, &display, stdin)?;
    let pid = child.id();
    let output = child.wait_with_output();
    if let Ok(mut running) = RUNNING.lock() {
        running.remove(&pid);
    }
    let output = output.with_context(|| format!("lost track of `{display}`"))?;
    Ok(Finished {
        display,
        success: output.status.success(),
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        duration: started.elapsed(),
    })
}

/// Starts a child with stdout and stderr captured, counted and tracked for
/// Ctrl-C, and `stdin` fed to it.
fn spawn(command: &mut Command, display: &str, stdin: Option<&[u8]>) -> Result<(std::process::Child, Instant)> {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    if interrupted() {
        anyhow::bail!("interrupted before `{display}` started");
    }
    let started = Instant::now();
    let mut child = command.spawn().with_context(|| format!("cannot start `{display}`"))?;
    STARTED.fetch_add(1, Ordering::Relaxed);
    if let Ok(mut running) = RUNNING.lock() {
        running.insert(child.id());
    }
    if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // Feed stdin from a thread so a child that writes a lot before reading
        // everything cannot deadlock against us.
        let bytes = bytes.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        });
    }
    Ok((child, started))
}

/// Like [`run`], but the child gets until `deadline`: one that has not
/// finished by then is killed, with every process it started (it runs in a
/// process group of its own), and `None` is returned. For helpers that must
/// never hold up their caller, such as a credential helper asked by a lookup
/// with a one-second budget.
pub fn run_until(cmd: xshell::Cmd<'_>, stdin: &[u8], deadline: Instant) -> Result<Option<Finished>> {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    let display = cmd.to_string();
    let mut command: Command = cmd.into();
    command.stdin(Stdio::piped()).process_group(0);
    let (mut child, started) = spawn(&mut command, &display, Some(stdin))?;
    let pid = child.id();
    // Read both pipes from threads, so a child that fills one cannot block,
    // and a grandchild that keeps a pipe open cannot hold us past the deadline.
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        let (sender, receiver) = std::sync::mpsc::channel();
        if let Some(mut pipe) = pipe {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                let _ = pipe.read_to_end(&mut bytes);
                let _ = sender.send(bytes);
            });
        }
        receiver
    };
    let stdout = reader(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let stderr = reader(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => break None,
        }
    };
    let Some(status) = status else {
        // SAFETY: kill(2) of the process group our own unreaped child leads.
        unsafe {
            libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
        }
        let _ = child.kill();
        let _ = child.wait();
        if let Ok(mut running) = RUNNING.lock() {
            running.remove(&pid);
        }
        return Ok(None);
    };
    if let Ok(mut running) = RUNNING.lock() {
        running.remove(&pid);
    }
    let rest = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(50));
    let text = |receiver: std::sync::mpsc::Receiver<Vec<u8>>| {
        String::from_utf8_lossy(&receiver.recv_timeout(rest).unwrap_or_default()).into_owned()
    };
    Ok(Some(Finished {
        display,
        success: status.success(),
        code: status.code(),
        stdout: text(stdout),
        stderr: text(stderr),
        duration: started.elapsed(),
    }))
}

/// Like [`run`], but a failing command is an error carrying its output.
pub fn run_ok(cmd: xshell::Cmd<'_>, stdin: Option<&[u8]>) -> Result<Finished> {
    let finished = run(cmd, stdin)?;
    if !finished.success {
        anyhow::bail!(
            "`{}` failed (exit {}):\n{}",
            finished.display,
            finished.code.map_or("signal".to_string(), |c| c.to_string()),
            finished.combined()
        );
    }
    Ok(finished)
}
