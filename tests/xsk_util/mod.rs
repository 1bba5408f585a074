//! Helpers for root tests of the AF_XDP layer: a network namespace that removes itself on
//! drop (even when the test fails), commands run inside it, and threads that enter it.

#![allow(dead_code)]

use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Whether we run as root (AF_XDP, netns and XDP need it).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Runs a command, panicking with its output if it fails.
pub fn run(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("spawning {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A named network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Creates `xlbt-<tag>-<pid>-<n>`, removing a stale one of the same name first.
    pub fn new(tag: &str) -> Netns {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "xlbt-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// Runs a command inside the namespace (`ip netns exec`, so /sys is the namespace's).
    pub fn exec(&self, args: &[&str]) -> String {
        exec_in(&self.name, args)
    }

    /// A device's MAC address.
    pub fn mac(&self, dev: &str) -> [u8; 6] {
        let s = self.exec(&["cat", &format!("/sys/class/net/{dev}/address")]);
        let mut mac = [0u8; 6];
        for (i, part) in s.trim().split(':').enumerate() {
            mac[i] = u8::from_str_radix(part, 16).expect("mac byte");
        }
        mac
    }

    /// A counter of /sys/class/net/<dev>/statistics.
    pub fn stat(&self, dev: &str, name: &str) -> u64 {
        self.exec(&["cat", &format!("/sys/class/net/{dev}/statistics/{name}")])
            .trim()
            .parse()
            .expect("counter")
    }
}

/// Runs a command inside the named namespace (`ip netns exec`, so /sys is the namespace's).
pub fn exec_in(name: &str, args: &[&str]) -> String {
    let mut full = vec!["ip", "netns", "exec", name];
    full.extend_from_slice(args);
    run(&full)
}

/// Moves the calling thread into the named namespace (for a dedicated thread only).
/// Threads get the name, not the [`Netns`], so the test's own thread always owns the
/// namespace and removes it when it unwinds.
pub fn enter_netns(name: &str) {
    let f = File::open(format!("/var/run/netns/{name}")).expect("open netns");
    // SAFETY: setns on a valid namespace fd only changes this thread's network namespace;
    // the fd stays open for the duration of the call.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}
