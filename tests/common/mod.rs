//! Shared helpers for root integration tests: the network-namespace lab of DESIGN.md §6.
//!
//! `Lab::up(test_name)` builds a private lab with `scripts/lab.sh up` under a prefix that
//! is unique per test and per test process, and `Drop` tears it down with
//! `scripts/lab.sh down`, also when the test panics. A lab left behind by a test process
//! that died (SIGKILL, abort) is found by its owner file and removed at the next
//! `Lab::up` of the same test. Hosts are `c` (client), `d1`, `d2` (directors),
//! `r1`..`r3` (real servers) and `sw` (the bridge); their addresses are the constants
//! below, exactly as `scripts/lab.sh` documents them.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub mod xlb;

/// The IPv4 VIP the real servers hold on `lo`.
pub const VIP4: &str = "10.99.0.100";
/// The IPv6 VIP the real servers hold on `lo`.
pub const VIP6: &str = "fd99::100";

/// Every host of the lab: (name, IPv4, IPv6, MAC of its eth0).
pub const HOSTS: [(&str, &str, &str, &str); 6] = [
    ("c", "10.99.0.10", "fd99::10", "02:99:00:00:00:10"),
    ("d1", "10.99.0.2", "fd99::2", "02:99:00:00:00:02"),
    ("d2", "10.99.0.3", "fd99::3", "02:99:00:00:00:03"),
    ("r1", "10.99.0.11", "fd99::11", "02:99:00:00:00:11"),
    ("r2", "10.99.0.12", "fd99::12", "02:99:00:00:00:12"),
    ("r3", "10.99.0.13", "fd99::13", "02:99:00:00:00:13"),
];

/// The real servers' host names.
pub const REALS: [&str; 3] = ["r1", "r2", "r3"];

/// Every namespace of a lab, by host name.
pub const ALL_HOSTS: [&str; 7] = ["sw", "c", "d1", "d2", "r1", "r2", "r3"];

fn host(name: &str) -> (&'static str, &'static str, &'static str, &'static str) {
    *HOSTS
        .iter()
        .find(|h| h.0 == name)
        .unwrap_or_else(|| panic!("no lab host named {name:?}"))
}

/// IPv4 address of a lab host's eth0.
pub fn ip4(name: &str) -> &'static str {
    host(name).1
}

/// IPv6 address of a lab host's eth0.
pub fn ip6(name: &str) -> &'static str {
    host(name).2
}

/// MAC address of a lab host's eth0.
pub fn mac(name: &str) -> &'static str {
    host(name).3
}

/// The repository root (where Cargo.toml is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Path of a script in `scripts/`.
pub fn script(name: &str) -> PathBuf {
    repo_root().join("scripts").join(name)
}

/// True when running as root. Otherwise prints why the calling test is skipped.
pub fn require_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid == 0 {
        return true;
    }
    eprintln!(
        "SKIPPED: this test builds network namespaces and needs root (run: sudo scripts/test.sh)"
    );
    false
}

/// A lab prefix: a letter and four base-36 characters from a hash of (test name, pid),
/// so parallel tests and parallel test processes never share a lab, and namespace and
/// interface names stay short.
fn prefix_for(name: &str, pid: u32) -> String {
    let mut h = DefaultHasher::new(); // fixed keys: the same on every run
    name.hash(&mut h);
    pid.hash(&mut h);
    let mut v = h.finish();
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut p = String::from("t");
    for _ in 0..4 {
        p.push(digits[(v % 36) as usize] as char);
        v /= 36;
    }
    p
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

const OWNER_FILE: &str = "xlb-test-owner";

/// Remove labs that an earlier, dead process of the same test left behind.
fn remove_orphans(name: &str) {
    let Ok(entries) = fs::read_dir("/tmp") else {
        return;
    };
    for e in entries.flatten() {
        let Ok(text) = fs::read_to_string(e.path().join(OWNER_FILE)) else {
            continue;
        };
        let mut lines = text.lines();
        let (Some(pid), Some(test)) = (lines.next(), lines.next()) else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if test != name || pid_alive(pid) {
            continue;
        }
        let prefix = e.file_name().to_string_lossy().into_owned();
        eprintln!("lab: removing orphaned lab {prefix} of dead test process {pid}");
        let _ = lab_sh(&prefix, &["down"]);
    }
}

fn lab_sh(prefix: &str, args: &[&str]) -> Output {
    Command::new(script("lab.sh"))
        .args(args)
        .env("XLB_LAB", prefix)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run scripts/lab.sh: {e}"))
}

fn describe(what: &str, out: &Output) -> String {
    format!(
        "{what}: {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A running lab; dropping it tears it down.
pub struct Lab {
    prefix: String,
}

impl Lab {
    /// Build a fresh lab for the test `name` (removing a stale one with the same prefix
    /// and orphans of dead processes of this test). Panics when the lab cannot be built.
    pub fn up(name: &str) -> Lab {
        remove_orphans(name);
        let prefix = prefix_for(name, std::process::id());
        let out = lab_sh(&prefix, &["up"]);
        if !out.status.success() {
            let _ = lab_sh(&prefix, &["down"]);
            panic!("{}", describe("scripts/lab.sh up failed", &out));
        }
        let lab = Lab { prefix };
        let owner = format!("{}\n{}\n", std::process::id(), name);
        if let Err(e) = fs::write(lab.run_dir().join(OWNER_FILE), owner) {
            panic!("cannot write the lab's owner file: {e}");
        }
        lab
    }

    /// The name prefix of this lab's namespaces (`XLB_LAB`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The network namespace name of `host` (c, d1, d2, r1, r2, r3, sw).
    pub fn netns(&self, host: &str) -> String {
        assert!(ALL_HOSTS.contains(&host), "no lab host named {host:?}");
        format!("{}-{}", self.prefix, host)
    }

    /// Where lab.sh keeps this lab's pid files and logs (`/tmp/<prefix>`).
    pub fn run_dir(&self) -> PathBuf {
        PathBuf::from("/tmp").join(&self.prefix)
    }

    fn command(&self, host: &str, args: &[&str]) -> Command {
        assert!(!args.is_empty(), "exec needs a command");
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.netns(host)]).args(args);
        c
    }

    /// Run a command in `host`'s namespace and wait for it; stdin is /dev/null.
    pub fn exec(&self, host: &str, args: &[&str]) -> Output {
        self.command(host, args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {args:?} in {host}: {e}"))
    }

    /// Like `exec`, but panics (with stdout and stderr) unless the command succeeds;
    /// returns its stdout.
    pub fn exec_ok(&self, host: &str, args: &[&str]) -> String {
        let out = self.exec(host, args);
        if !out.status.success() {
            panic!("{}", describe(&format!("{args:?} in {host}"), &out));
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Start a command in `host`'s namespace without waiting. stdin is /dev/null,
    /// stdout and stderr are piped: read them, or the child blocks once a pipe fills
    /// (use `spawn_logged` for chatty children). `Drop` of the lab ends every process
    /// still inside the lab's namespaces.
    pub fn spawn(&self, host: &str, args: &[&str]) -> Child {
        self.command(host, args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {args:?} in {host}: {e}"))
    }

    /// Start a command in `host`'s namespace with stdout and stderr going to
    /// `run_dir()/<log>`. Returns the child and the log's path.
    pub fn spawn_logged(&self, host: &str, args: &[&str], log: &str) -> (Child, PathBuf) {
        let path = self.run_dir().join(log);
        let file =
            fs::File::create(&path).unwrap_or_else(|e| panic!("cannot create {path:?}: {e}"));
        let err = file
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot dup {path:?}: {e}"));
        let child = self
            .command(host, args)
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {args:?} in {host}: {e}"));
        (child, path)
    }

    /// Run `scripts/lab.sh ARGS...` for this lab (e.g. `["status"]`, `["traffic", "4", "2"]`).
    pub fn lab_sh(&self, args: &[&str]) -> Output {
        lab_sh(&self.prefix, args)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let out = lab_sh(&self.prefix, &["down"]);
        if !out.status.success() {
            eprintln!("{}", describe("scripts/lab.sh down failed", &out));
        }
    }
}
