//! Runs the `xlb` binary inside a lab namespace for end-to-end tests.
//!
//! `Xlb::start(&lab, "d1", yaml)` writes the config to the lab's run dir, starts
//! `xlb run --config` (the binary cargo built for this test run) in that host's namespace
//! with its output in `run_dir()/xlb-<host>.log`, and `wait_running` waits (bounded)
//! for the daemon's "running:" log line. `stop` sends SIGTERM and returns the exit status
//! and the whole log. Guarantees: the process is never left behind: `Drop` SIGKILLs and
//! reaps it if the test did not stop it (and the lab's teardown ends anything still in
//! its namespaces). Signals go only to the pid this module started.

use super::Lab;
use std::fs;
use std::path::PathBuf;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// The xlb binary cargo built for these tests.
pub const XLB_BIN: &str = env!("CARGO_BIN_EXE_xlb");

/// A running (or stopped) xlb daemon in a lab host.
pub struct Xlb {
    child: Option<Child>,
    log: PathBuf,
    config: PathBuf,
    pid: u32,
}

impl Xlb {
    /// Writes `config_yaml` to `run_dir()/xlb-<host>.yaml` and starts xlb in `host`.
    pub fn start(lab: &Lab, host: &str, config_yaml: &str) -> Xlb {
        let config = lab.run_dir().join(format!("xlb-{host}.yaml"));
        fs::write(&config, config_yaml).unwrap_or_else(|e| panic!("cannot write {config:?}: {e}"));
        let cfg = config.to_string_lossy().into_owned();
        // Plain text logs at info level whatever the caller's environment says.
        let (child, log) = lab.spawn_logged(
            host,
            &[
                "env",
                "-u",
                "RUST_LOG",
                XLB_BIN,
                "--log-level",
                "info",
                "run",
                "--config",
                &cfg,
            ],
            &format!("xlb-{host}.log"),
        );
        let pid = child.id();
        Xlb {
            child: Some(child),
            log,
            config,
            pid,
        }
    }

    /// The pid of the process started (`ip netns exec` and `env` exec, so it is xlb's).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Path of the config file written.
    pub fn config_path(&self) -> &PathBuf {
        &self.config
    }

    /// The log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Waits up to `timeout` for the daemon's "running:" line; panics with the log if it
    /// exits or does not get there in time.
    pub fn wait_running(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().contains("running:") {
                return;
            }
            if !self.is_running() {
                panic!("xlb exited before it was running; its log:\n{}", self.log());
            }
            if Instant::now() >= deadline {
                panic!(
                    "xlb not running after {timeout:?}; its log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM and waits up to 10 s for the exit. Returns the exit status and the
    /// complete log. Panics (after SIGKILL) if xlb does not exit in time.
    pub fn stop(mut self) -> (ExitStatus, String) {
        let mut child = self.child.take().expect("xlb already stopped");
        if matches!(child.try_wait(), Ok(None)) {
            // SAFETY: kill(2) on the pid of our own child, which has not been reaped yet
            // (try_wait said it runs), so the pid cannot have been reused.
            unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return (status, self.log()),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "xlb did not exit within 10 s of SIGTERM; its log:\n{}",
                        self.log()
                    );
                }
            }
        }
    }
}

impl Drop for Xlb {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
