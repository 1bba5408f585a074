//! End-to-end VRRP in network namespaces (root; CI is root): a switch namespace with a
//! bridge, and two router namespaces `a` and `b` each on a veth to it. Each router runs
//! the xlb VRRP task on a thread that entered its namespace (setns) with its own
//! current-thread tokio runtime, or runs real keepalived (interop).
//!
//! Assertions are on the order and causes of transitions, never on timing; waits are
//! bounded. Namespaces are unique per test and removed on drop, even on failure.

use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc as smpsc;
use std::time::{Duration, Instant};

use xlb::config::{Notify, VrrpInstance};
use xlb::control::vrrp::{self, State, VrrpCounters, VrrpEvent};

fn sh(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn must(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect(args[0]);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// Three namespaces: `sw` (bridge), `a` (port a0, 10.77.0.2), `b` (port b0, 10.77.0.3).
struct Lab {
    sw: String,
    a: String,
    b: String,
}

impl Lab {
    fn new(tag: &str) -> Option<Lab> {
        if !sh(&["ip", "netns", "list"]) || unsafe_geteuid() != 0 {
            eprintln!("SKIP: needs root and iproute2");
            return None;
        }
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let base = format!("xv{tag}{}-{n}", std::process::id());
        let lab = Lab {
            sw: format!("{base}s"),
            a: format!("{base}a"),
            b: format!("{base}b"),
        };
        for ns in [&lab.sw, &lab.a, &lab.b] {
            sh(&["ip", "netns", "del", ns]); // stale from an earlier crash
            must(&["ip", "netns", "add", ns]);
        }
        must(&["ip", "-n", &lab.sw, "link", "add", "br0", "type", "bridge"]);
        must(&["ip", "-n", &lab.sw, "link", "set", "br0", "up"]);
        for (ns, dev, port, v4, v6) in [
            (&lab.a, "a0", "pa", "10.77.0.2/24", "fd77::2/64"),
            (&lab.b, "b0", "pb", "10.77.0.3/24", "fd77::3/64"),
        ] {
            for k in ["all", "default"] {
                must(&[
                    "ip",
                    "netns",
                    "exec",
                    ns,
                    "sysctl",
                    "-qw",
                    &format!("net.ipv6.conf.{k}.accept_dad=0"),
                ]);
            }
            must(&[
                "ip", "-n", &lab.sw, "link", "add", port, "type", "veth", "peer", "name", dev,
                "netns", ns,
            ]);
            must(&[
                "ip", "-n", &lab.sw, "link", "set", port, "master", "br0", "up",
            ]);
            must(&["ip", "-n", ns, "link", "set", "lo", "up"]);
            must(&["ip", "-n", ns, "addr", "add", v4, "dev", dev]);
            must(&["ip", "-n", ns, "addr", "add", v6, "dev", dev, "nodad"]);
            must(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
        // Wait (bounded) for the link-local addresses the IPv6 instances send from.
        for (ns, dev) in [(&lab.a, "a0"), (&lab.b, "b0")] {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let out = Command::new("ip")
                    .args(["-n", ns, "-6", "addr", "show", "dev", dev, "scope", "link"])
                    .output()
                    .unwrap();
                let text = String::from_utf8_lossy(&out.stdout);
                if text.contains("fe80") && !text.contains("tentative") {
                    break;
                }
                assert!(Instant::now() < deadline, "no link-local on {dev}: {text}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Some(lab)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b, &self.sw] {
            sh(&["ip", "netns", "del", ns]);
        }
    }
}

fn link_local(ns: &str, dev: &str) -> String {
    let out = Command::new("ip")
        .args([
            "-n", ns, "-6", "-o", "addr", "show", "dev", dev, "scope", "link",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let addr = text
        .split_whitespace()
        .skip_while(|w| *w != "inet6")
        .nth(1)
        .unwrap();
    addr.split('/').next().unwrap().to_string()
}

fn unsafe_geteuid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// What a router thread reports.
#[derive(Debug)]
enum Msg {
    Event(&'static str, VrrpEvent),
    Stopped(&'static str, [u64; 4]),
}

enum Cmd {
    Start(Box<VrrpInstance>, Vec<IpAddr>),
    Stop,
}

/// An xlb VRRP router on a thread inside a namespace.
struct Router {
    cmd: tokio::sync::mpsc::UnboundedSender<Cmd>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Router {
    fn new(node: &'static str, ns: &str, out: smpsc::Sender<Msg>) -> Router {
        let (cmd, mut cmd_rx) = tokio::sync::mpsc::unbounded_channel::<Cmd>();
        let path = format!("/run/netns/{ns}");
        let thread = std::thread::spawn(move || {
            let f = std::fs::File::open(&path).expect("netns file");
            // SAFETY: setns on this thread only, with a valid namespace descriptor.
            let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let (etx, mut erx) = tokio::sync::mpsc::channel::<VrrpEvent>(64);
                let mut handle: Option<vrrp::VrrpHandle> = None;
                loop {
                    tokio::select! {
                        cmd = cmd_rx.recv() => match cmd {
                            Some(Cmd::Start(inst, vips)) => {
                                handle = Some(vrrp::spawn(&inst, vips, etx.clone()).expect("spawn"));
                            }
                            Some(Cmd::Stop) | None => {
                                let stop = cmd.is_none();
                                if let Some(h) = handle.take() {
                                    let c = h.counters();
                                    h.shutdown().await;
                                    let drops = [&c.bad_ttl, &c.truncated, &c.bad_version, &c.bad_type,
                                        &c.bad_checksum, &c.wrong_vrid, &c.auth_mismatch,
                                        &c.interval_mismatch, &c.address_mismatch]
                                        .iter().map(|x| VrrpCounters::get(x)).sum();
                                    while let Ok(ev) = erx.try_recv() {
                                        let _ = out.send(Msg::Event(node, ev));
                                    }
                                    let _ = out.send(Msg::Stopped(node, [
                                        VrrpCounters::get(&c.adverts_rx),
                                        VrrpCounters::get(&c.adverts_tx),
                                        drops,
                                        VrrpCounters::get(&c.garps_tx),
                                    ]));
                                }
                                if stop { break; }
                            }
                        },
                        Some(ev) = erx.recv() => { let _ = out.send(Msg::Event(node, ev)); }
                    }
                }
            });
        });
        Router {
            cmd,
            thread: Some(thread),
        }
    }

    fn start(&self, inst: &VrrpInstance, vips: &[IpAddr]) {
        self.cmd
            .send(Cmd::Start(Box::new(inst.clone()), vips.to_vec()))
            .unwrap();
    }

    fn stop(&self) {
        self.cmd.send(Cmd::Stop).unwrap();
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        let (dead, _) = tokio::sync::mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.cmd, dead));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn instance(name: &str, dev: &str, version: u8, priority: u8, interval: Duration) -> VrrpInstance {
    VrrpInstance {
        name: name.into(),
        interface: dev.into(),
        vrid: 51,
        priority,
        version,
        advert_interval: interval,
        preempt: true,
        preempt_delay: Duration::ZERO,
        unicast_peers: vec![],
        unicast_src_ip: None,
        auth_pass: None,
        v3_checksum_as_v2: false,
        garp_master_repeat: 5,
        garp_master_refresh_delay: Duration::ZERO,
        track_interfaces: vec![dev.into()],
        notify: Notify::default(),
    }
}

/// Collects messages until `done` holds for the collected list; panics after `limit`.
fn collect_until(
    rx: &smpsc::Receiver<Msg>,
    limit: Duration,
    done: impl Fn(&[Msg]) -> bool,
) -> Vec<Msg> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    while !done(&got) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(m) => got.push(m),
            Err(_) => panic!("timed out after {limit:?}; got {got:#?}"),
        }
    }
    got
}

fn events<'a>(msgs: &'a [Msg], node: &str) -> Vec<(State, &'a str)> {
    msgs.iter()
        .filter_map(|m| match m {
            Msg::Event(n, e) if *n == node => Some((e.state, e.reason.as_str())),
            _ => None,
        })
        .collect()
}

fn has(msgs: &[Msg], node: &str, state: State) -> bool {
    events(msgs, node).iter().any(|(s, _)| *s == state)
}

fn drain(rx: &smpsc::Receiver<Msg>, quiet: Duration) -> Vec<Msg> {
    let mut got = Vec::new();
    while let Ok(m) = rx.recv_timeout(quiet) {
        got.push(m);
    }
    got
}

fn states(v: &[(State, &str)]) -> Vec<State> {
    v.iter().map(|(s, _)| *s).collect()
}

/// Two xlb routers, priorities 150 (a) / 100 (b): election, clean handover on shutdown,
/// preemption back on restart, FAULT on link loss and recovery, notify scripts.
fn xlb_pair(tag: &str, version: u8, v6: bool, interval: Duration) {
    let Some(lab) = Lab::new(tag) else { return };
    let (tx, rx) = smpsc::channel();
    let ra = Router::new("a", &lab.a, tx.clone());
    let rb = Router::new("b", &lab.b, tx);
    let vips: Vec<IpAddr> = vec![if v6 { "fd77::100" } else { "10.77.0.100" }
        .parse()
        .unwrap()];
    let dir = std::env::temp_dir().join(format!("xlb-vrrp-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let notify_file = dir.join("notify");
    let _ = std::fs::remove_file(&notify_file);
    let mut ia = instance("lb1", "a0", version, 150, interval);
    ia.notify.master = Some(format!("echo >> {}", notify_file.display()));
    ia.notify.backup = Some(format!("echo >> {}", notify_file.display()));
    let ib = instance("lb2", "b0", version, 100, interval);
    let (a_ip, b_ip) = if v6 {
        (link_local(&lab.a, "a0"), link_local(&lab.b, "b0"))
    } else {
        ("10.77.0.2".to_string(), "10.77.0.3".to_string())
    };
    let long = interval * 40 + Duration::from_secs(3);

    // 1. a alone becomes master by silence.
    ra.start(&ia, &vips);
    let m = collect_until(&rx, long, |m| has(m, "a", State::Master));
    assert_eq!(
        events(&m, "a"),
        vec![
            (State::Backup, "startup"),
            (State::Master, "master down interval expired")
        ]
    );
    // 2. b joins as backup and stays there.
    rb.start(&ib, &vips);
    let mut m = collect_until(&rx, long, |m| has(m, "b", State::Backup));
    m.extend(drain(&rx, interval * 10));
    assert_eq!(events(&m, "b"), vec![(State::Backup, "startup")]);
    assert!(events(&m, "a").is_empty(), "a stays master: {m:?}");

    // 3. Clean shutdown of a: priority 0, b takes over after Skew_Time.
    ra.stop();
    let m = collect_until(&rx, long, |m| {
        has(m, "b", State::Master) && m.iter().any(|x| matches!(x, Msg::Stopped("a", _)))
    });
    assert_eq!(events(&m, "a"), vec![(State::Initialize, "shutdown")]);
    let reason = format!("master {a_ip} sent priority 0, skew time expired");
    assert_eq!(events(&m, "b"), vec![(State::Master, reason.as_str())]);
    let stopped = m.iter().find_map(|x| match x {
        Msg::Stopped("a", c) => Some(*c),
        _ => None,
    });
    let [rx_a, tx_a, drops_a, garps_a] = stopped.expect("a's counters");
    assert!(
        rx_a == 0 && tx_a > 3,
        "a heard nothing from b (backup), sent {tx_a}"
    );
    assert_eq!(drops_a, 0);
    assert_eq!(garps_a, 5, "one burst of 5 at the transition");

    // 4. Restart of a: it preempts b.
    ra.start(&ia, &vips);
    let m = collect_until(&rx, long, |m| {
        has(m, "a", State::Master) && has(m, "b", State::Backup)
    });
    let preempting = format!("preempting lower priority 100 from {b_ip}");
    assert_eq!(
        events(&m, "a"),
        vec![
            (State::Backup, "startup"),
            (State::Master, preempting.as_str())
        ]
    );
    let higher = format!("higher priority 150 from {a_ip}");
    assert_eq!(events(&m, "b"), vec![(State::Backup, higher.as_str())]);

    // 5. a loses its link: FAULT; b takes over after Master_Down_Interval. Link back: a
    //    restarts as backup and preempts again.
    must(&["ip", "-n", &lab.sw, "link", "set", "pa", "down"]);
    let m = collect_until(&rx, long, |m| {
        has(m, "a", State::Fault) && has(m, "b", State::Master)
    });
    assert_eq!(
        events(&m, "a"),
        vec![(State::Fault, "tracked interface a0 down")]
    );
    assert_eq!(
        events(&m, "b"),
        vec![(State::Master, "master down interval expired")]
    );
    must(&["ip", "-n", &lab.sw, "link", "set", "pa", "up"]);
    let m = collect_until(&rx, long, |m| {
        has(m, "a", State::Master) && has(m, "b", State::Backup)
    });
    assert_eq!(
        states(&events(&m, "a")),
        vec![State::Backup, State::Master],
        "{m:?}"
    );
    assert_eq!(events(&m, "a")[0].1, "tracked interface a0 up");
    assert_eq!(events(&m, "b"), vec![(State::Backup, higher.as_str())]);

    // 6. Stop both; counters and notify scripts.
    ra.stop();
    rb.stop();
    let m = collect_until(&rx, long, |m| {
        m.iter().filter(|x| matches!(x, Msg::Stopped(..))).count() == 2
    });
    for x in &m {
        if let Msg::Stopped(node, [rx_n, tx_n, drops, _]) = x {
            assert!(*rx_n > 0 && *tx_n > 0, "{node} exchanged adverts: {x:?}");
            assert_eq!(*drops, 0, "{node} dropped nothing");
        }
    }
    // a was master three times and backup three times: six notify lines, in order.
    let want: Vec<String> = ["BACKUP", "MASTER", "BACKUP", "MASTER", "BACKUP", "MASTER"]
        .iter()
        .map(|s| format!("INSTANCE lb1 {s} 150"))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(&notify_file).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines == want || Instant::now() > deadline {
            assert_eq!(lines, want);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn xlb_pair_v3_ipv4_100ms() {
    xlb_pair("3", 3, false, Duration::from_millis(100));
}

#[test]
fn xlb_pair_v3_ipv6_100ms() {
    xlb_pair("6", 3, true, Duration::from_millis(100));
}

#[test]
fn xlb_pair_v2_ipv4_1s() {
    xlb_pair("2", 2, false, Duration::from_secs(1));
}

/// Real keepalived (VRRP-only mode) in a namespace, killed on drop.
struct Keepalived {
    vip: String,
    child: Option<Child>,
    ns: String,
    conf: std::path::PathBuf,
    dir: std::path::PathBuf,
}

impl Keepalived {
    fn new(
        ns: &str,
        tag: &str,
        version: u8,
        priority: u8,
        advert_int: &str,
        vip: &str,
    ) -> Keepalived {
        Keepalived::with_extra(ns, tag, version, priority, advert_int, vip, "")
    }

    /// Like `new`, with `extra` lines added to the instance (e.g. unicast peers).
    fn with_extra(
        ns: &str,
        tag: &str,
        version: u8,
        priority: u8,
        advert_int: &str,
        vip: &str,
        extra: &str,
    ) -> Keepalived {
        let dir = std::env::temp_dir().join(format!("xlb-ka-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("keepalived.conf");
        std::fs::write(
            &conf,
            format!(
                "global_defs {{\n  router_id ka_{tag}\n}}\n\
                 vrrp_instance VI_1 {{\n  state BACKUP\n  interface b0\n  virtual_router_id 51\n  \
                 priority {priority}\n  advert_int {advert_int}\n  version {version}\n  \
                 {extra}virtual_ipaddress {{\n    {vip}\n  }}\n}}\n"
            ),
        )
        .unwrap();
        let mut k = Keepalived {
            vip: vip.to_string(),
            child: None,
            ns: ns.to_string(),
            conf,
            dir,
        };
        k.start();
        k
    }

    fn start(&mut self) {
        assert!(self.child.is_none());
        let log = std::fs::File::create(self.dir.join("log")).unwrap();
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns,
                "keepalived",
                "-n",
                "-l",
                "-D",
                "-P",
                "-f",
            ])
            .arg(&self.conf)
            .arg("-p")
            .arg(self.dir.join("pid"))
            .arg("-r")
            .arg(self.dir.join("vrrp.pid"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("keepalived");
        self.child = Some(child);
    }

    /// Sends `sig` to the keepalived we started and waits (bounded) for it to exit.
    fn stop(&mut self, sig: i32) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let vrrp_pid: Option<i32> = std::fs::read_to_string(self.dir.join("vrrp.pid"))
            .ok()
            .and_then(|s| s.trim().parse().ok());
        // SAFETY: kill(2) on the pid of a child we spawned (and, for SIGKILL, its VRRP
        // child whose pid keepalived wrote to our pidfile).
        unsafe {
            if sig == libc::SIGKILL {
                if let Some(p) = vrrp_pid {
                    libc::kill(p, sig);
                }
            }
            libc::kill(child.id() as i32, sig);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    fn has_vip(&self) -> bool {
        let out = Command::new("ip")
            .args(["-n", &self.ns, "-o", "addr", "show", "dev", "b0"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains(&format!("{} ", self.vip))
    }

    fn wait_vip(&self, want: bool, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.has_vip() != want {
            assert!(
                Instant::now() < deadline,
                "keepalived VIP present={} never became {want}; log:\n{}",
                self.has_vip(),
                std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        self.stop(libc::SIGTERM);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn keepalived_present() -> bool {
    sh(&["keepalived", "--version"])
}

/// xlb (a, priority 150) against keepalived (b, priority 100): xlb preempts keepalived,
/// keepalived takes over on xlb's shutdown, xlb preempts again on restart.
/// With `unicast`, both send unicast adverts to each other (IPv4 only), and a capture on
/// the bridge shows that no advert went to 224.0.0.18.
fn interop_xlb_high(
    tag: &str,
    version: u8,
    v6: bool,
    interval: Duration,
    advert_int: &str,
    unicast: bool,
) {
    if !keepalived_present() {
        eprintln!("SKIP: keepalived not installed");
        return;
    }
    let Some(lab) = Lab::new(tag) else { return };
    let (tx, rx) = smpsc::channel();
    let ra = Router::new("a", &lab.a, tx);
    let (vip, vip_cidr) = if v6 {
        ("fd77::100", "fd77::100/128")
    } else {
        ("10.77.0.100", "10.77.0.100/32")
    };
    let vips: Vec<IpAddr> = vec![vip.parse().unwrap()];
    let mut ia = instance("lb1", "a0", version, 150, interval);
    let long = interval * 40 + Duration::from_secs(5);
    let b_ip = if v6 {
        link_local(&lab.b, "b0")
    } else {
        "10.77.0.3".to_string()
    };
    let mut cap = unicast.then(|| Capture::start(&lab.sw, tag, "ip proto 112"));
    let extra = if unicast {
        assert!(!v6, "the unicast interop case is IPv4");
        ia.unicast_peers = vec!["10.77.0.3".parse().unwrap()];
        "unicast_src_ip 10.77.0.3\n  unicast_peer {\n    10.77.0.2\n  }\n  "
    } else {
        ""
    };
    let ka = Keepalived::with_extra(&lab.b, tag, version, 100, advert_int, vip_cidr, extra);
    ka.wait_vip(true, long); // keepalived alone is master

    ra.start(&ia, &vips);
    let m = collect_until(&rx, long, |m| has(m, "a", State::Master));
    assert_eq!(
        events(&m, "a"),
        vec![
            (State::Backup, "startup"),
            (
                State::Master,
                format!("preempting lower priority 100 from {b_ip}").as_str()
            )
        ]
    );
    ka.wait_vip(false, long); // keepalived went back to backup

    ra.stop();
    let m = collect_until(&rx, long, |m| {
        m.iter().any(|x| matches!(x, Msg::Stopped("a", _)))
    });
    assert_eq!(events(&m, "a"), vec![(State::Initialize, "shutdown")]);
    if let Some(Msg::Stopped(_, [rx_n, _, drops, _])) =
        m.iter().find(|x| matches!(x, Msg::Stopped(..)))
    {
        assert!(*rx_n > 0, "xlb accepted keepalived's adverts");
        assert_eq!(*drops, 0, "xlb dropped none of keepalived's adverts");
    }
    ka.wait_vip(true, long); // keepalived took over

    ra.start(&ia, &vips);
    let m = collect_until(&rx, long, |m| has(m, "a", State::Master));
    assert_eq!(states(&events(&m, "a")), vec![State::Backup, State::Master]);
    ka.wait_vip(false, long);

    if let Some(cap) = cap.as_mut() {
        let advs = cap.adverts();
        assert_unicast_only(&advs);
        let b_mac = mac_of(&lab.b, "b0");
        let a_mac = mac_of(&lab.a, "a0");
        let xlb_to_ka = advs
            .iter()
            .filter(|v| v.src == "10.77.0.2" && v.dst == "10.77.0.3" && v.eth_dst == b_mac)
            .count();
        let ka_to_xlb = advs
            .iter()
            .filter(|v| v.src == "10.77.0.3" && v.dst == "10.77.0.2" && v.eth_dst == a_mac)
            .count();
        assert!(
            xlb_to_ka > 0 && ka_to_xlb > 0,
            "adverts both ways: {xlb_to_ka} xlb -> keepalived, {ka_to_xlb} back"
        );
        assert!(
            advs.iter()
                .any(|v| v.src == "10.77.0.2" && v.dst == "10.77.0.3" && v.prio == 0),
            "xlb's shutdown advert (priority 0) went to keepalived by unicast"
        );
    }
}

/// keepalived (b, priority 150) against xlb (a, priority 100): xlb stays backup, takes
/// over on keepalived's SIGTERM (priority 0) and SIGKILL (silence), yields on restart.
fn interop_keepalived_high(tag: &str, version: u8, v6: bool, interval: Duration, advert_int: &str) {
    if !keepalived_present() {
        eprintln!("SKIP: keepalived not installed");
        return;
    }
    let Some(lab) = Lab::new(tag) else { return };
    let (tx, rx) = smpsc::channel();
    let ra = Router::new("a", &lab.a, tx);
    let (vip, vip_cidr) = if v6 {
        ("fd77::100", "fd77::100/128")
    } else {
        ("10.77.0.100", "10.77.0.100/32")
    };
    let vips: Vec<IpAddr> = vec![vip.parse().unwrap()];
    let ia = instance("lb2", "a0", version, 100, interval);
    let long = interval * 40 + Duration::from_secs(5);
    let b_ip = if v6 {
        link_local(&lab.b, "b0")
    } else {
        "10.77.0.3".to_string()
    };
    let mut ka = Keepalived::new(&lab.b, tag, version, 150, advert_int, vip_cidr);
    ka.wait_vip(true, long);

    ra.start(&ia, &vips);
    let mut m = collect_until(&rx, long, |m| has(m, "a", State::Backup));
    m.extend(drain(&rx, interval * 10));
    assert_eq!(events(&m, "a"), vec![(State::Backup, "startup")]);

    ka.stop(libc::SIGTERM);
    let m = collect_until(&rx, long, |m| has(m, "a", State::Master));
    assert_eq!(
        events(&m, "a"),
        vec![(
            State::Master,
            format!("master {b_ip} sent priority 0, skew time expired").as_str()
        )]
    );

    ka.start();
    let m = collect_until(&rx, long, |m| has(m, "a", State::Backup));
    assert_eq!(
        events(&m, "a"),
        vec![(
            State::Backup,
            format!("higher priority 150 from {b_ip}").as_str()
        )]
    );
    ka.wait_vip(true, long);

    ka.stop(libc::SIGKILL);
    let m = collect_until(&rx, long, |m| has(m, "a", State::Master));
    assert_eq!(
        events(&m, "a"),
        vec![(State::Master, "master down interval expired")]
    );
    ra.stop();
    let m = collect_until(&rx, long, |m| {
        m.iter().any(|x| matches!(x, Msg::Stopped("a", _)))
    });
    if let Some(Msg::Stopped(_, [rx_n, _, drops, _])) =
        m.iter().find(|x| matches!(x, Msg::Stopped(..)))
    {
        assert!(*rx_n > 0, "xlb accepted keepalived's adverts");
        assert_eq!(*drops, 0, "xlb dropped none of keepalived's adverts");
    }
}

#[test]
fn keepalived_interop_v3_xlb_master() {
    interop_xlb_high("k3x", 3, false, Duration::from_millis(100), "0.1", false);
}

#[test]
fn keepalived_interop_v3_keepalived_master() {
    interop_keepalived_high("k3k", 3, false, Duration::from_millis(100), "0.1");
}

#[test]
fn keepalived_interop_v2_xlb_master() {
    interop_xlb_high("k2x", 2, false, Duration::from_secs(1), "1", false);
}

#[test]
fn keepalived_interop_v2_keepalived_master() {
    interop_keepalived_high("k2k", 2, false, Duration::from_secs(1), "1");
}

#[test]
fn keepalived_interop_v3_ipv6_xlb_master() {
    interop_xlb_high("k6x", 3, true, Duration::from_millis(100), "0.1", false);
}

#[test]
fn keepalived_interop_v3_ipv6_keepalived_master() {
    interop_keepalived_high("k6k", 3, true, Duration::from_millis(100), "0.1");
}

#[test]
fn keepalived_interop_v3_unicast_xlb_master() {
    interop_xlb_high("k3u", 3, false, Duration::from_millis(100), "0.1", true);
}

// ------------------------------------------------------------------ unicast adverts

/// tcpdump in the switch namespace on the bridge port `pa` facing router a (every advert
/// a sends or receives crosses it; br0 itself stops seeing bridged unicast once the
/// bridge has learned the MACs), writing a pcap; stopped on drop. `KEEPCAP=1` keeps the
/// pcap in the temp directory for a look afterwards.
struct Capture {
    child: Option<Child>,
    dir: std::path::PathBuf,
}

/// One captured VRRP advert, as `tcpdump -e` decodes it.
#[derive(Debug)]
struct Captured {
    eth_dst: String,
    src: String,
    dst: String,
    prio: u8,
}

impl Capture {
    fn start(ns: &str, tag: &str, filter: &str) -> Capture {
        let dir = std::env::temp_dir().join(format!("xlb-cap-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("tcpdump.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                "tcpdump",
                "-i",
                "pa",
                "-n",
                "-U",
                "--immediate-mode",
                "-w",
            ])
            .arg(dir.join("vrrp.pcap"))
            .arg(filter)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("tcpdump");
        let cap = Capture {
            child: Some(child),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("listening on")
        {
            assert!(Instant::now() < deadline, "tcpdump did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        cap
    }

    /// Stops tcpdump (SIGINT: it flushes) and waits, bounded, for it to exit.
    fn stop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        std::thread::sleep(Duration::from_millis(200));
        // SAFETY: kill(2) on a child we spawned (`ip netns exec` execs tcpdump).
        unsafe { libc::kill(c.id() as i32, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
    }

    /// Stops the capture and decodes every VRRP advert in it.
    fn adverts(&mut self) -> Vec<Captured> {
        self.stop();
        let out = Command::new("tcpdump")
            .args(["-n", "-e", "-r"])
            .arg(self.dir.join("vrrp.pcap"))
            .stderr(Stdio::null())
            .output()
            .expect("tcpdump -r");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let advs: Vec<Captured> = text.lines().filter_map(parse_captured).collect();
        assert_eq!(
            advs.len(),
            text.lines().count(),
            "every captured line is a VRRP advert:\n{text}"
        );
        advs
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop();
        if std::env::var_os("KEEPCAP").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// `TIME SMAC > DMAC, ethertype IPv4 (0x0800), length N: SRC > DST: VRRPvV, Advertisement,
/// vrid 51, prio P, ...`
fn parse_captured(line: &str) -> Option<Captured> {
    let mut parts = line.split(": ");
    let eth = parts.next()?;
    let ips = parts.next()?;
    let vrrp = parts.next()?;
    if !vrrp.starts_with("VRRPv") {
        return None;
    }
    let eth_dst = eth.split_whitespace().nth(3)?.trim_end_matches(',');
    let (src, dst) = ips.split_once(" > ")?;
    let prio = vrrp
        .split(", ")
        .find_map(|f| f.strip_prefix("prio "))?
        .parse()
        .ok()?;
    Some(Captured {
        eth_dst: eth_dst.to_string(),
        src: src.to_string(),
        dst: dst.to_string(),
        prio,
    })
}

fn assert_unicast_only(advs: &[Captured]) {
    assert!(!advs.is_empty(), "adverts were captured");
    let multicast: Vec<_> = advs
        .iter()
        .filter(|v| v.dst == "224.0.0.18" || v.eth_dst.starts_with("01:00:5e"))
        .collect();
    assert!(
        multicast.is_empty(),
        "no advert goes to 224.0.0.18: {multicast:?}"
    );
}

/// The MAC address of `dev` in namespace `ns`.
fn mac_of(ns: &str, dev: &str) -> String {
    let out = Command::new("ip")
        .args(["-n", ns, "-o", "link", "show", "dev", dev])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .expect("MAC")
        .to_string()
}

/// Two xlb routers that send unicast adverts to each other (issue 5: `unicast_peers`,
/// `unicast_src_ip`): a (priority 150) sends from a secondary address named by
/// `unicast_src_ip`, b (priority 100) from its interface address. Election, priority-0
/// handover on a's shutdown, preemption back on its restart; a capture on the bridge
/// shows every advert went to the peer's unicast address (and MAC), none to 224.0.0.18.
fn xlb_unicast_pair(tag: &str, version: u8, interval: Duration) {
    let Some(lab) = Lab::new(tag) else { return };
    const A_SRC: &str = "10.77.0.22";
    const B_SRC: &str = "10.77.0.3";
    must(&[
        "ip",
        "-n",
        &lab.a,
        "addr",
        "add",
        &format!("{A_SRC}/24"),
        "dev",
        "a0",
    ]);
    let mut cap = Capture::start(&lab.sw, tag, "ip proto 112");
    let (tx, rx) = smpsc::channel();
    let ra = Router::new("a", &lab.a, tx.clone());
    let rb = Router::new("b", &lab.b, tx);
    let vips: Vec<IpAddr> = vec!["10.77.0.100".parse().unwrap()];
    let mut ia = instance("lb1", "a0", version, 150, interval);
    ia.unicast_src_ip = Some(A_SRC.parse().unwrap());
    ia.unicast_peers = vec![B_SRC.parse().unwrap()];
    let mut ib = instance("lb2", "b0", version, 100, interval);
    ib.unicast_peers = vec![A_SRC.parse().unwrap()];
    let long = interval * 40 + Duration::from_secs(3);

    // 1. Election: a becomes master by silence, b joins as backup and stays there.
    ra.start(&ia, &vips);
    let m = collect_until(&rx, long, |m| has(m, "a", State::Master));
    assert_eq!(
        events(&m, "a"),
        vec![
            (State::Backup, "startup"),
            (State::Master, "master down interval expired")
        ]
    );
    rb.start(&ib, &vips);
    let mut m = collect_until(&rx, long, |m| has(m, "b", State::Backup));
    m.extend(drain(&rx, interval * 10));
    assert_eq!(events(&m, "b"), vec![(State::Backup, "startup")]);
    assert!(events(&m, "a").is_empty(), "a stays master: {m:?}");

    // 2. Clean shutdown of a: its priority-0 advert reaches b by unicast.
    ra.stop();
    let m = collect_until(&rx, long, |m| {
        has(m, "b", State::Master) && m.iter().any(|x| matches!(x, Msg::Stopped("a", _)))
    });
    assert_eq!(events(&m, "a"), vec![(State::Initialize, "shutdown")]);
    let reason = format!("master {A_SRC} sent priority 0, skew time expired");
    assert_eq!(events(&m, "b"), vec![(State::Master, reason.as_str())]);

    // 3. Restart of a: b's unicast adverts reach it, it preempts b.
    ra.start(&ia, &vips);
    let m = collect_until(&rx, long, |m| {
        has(m, "a", State::Master) && has(m, "b", State::Backup)
    });
    let preempting = format!("preempting lower priority 100 from {B_SRC}");
    assert_eq!(
        events(&m, "a"),
        vec![
            (State::Backup, "startup"),
            (State::Master, preempting.as_str())
        ]
    );
    let higher = format!("higher priority 150 from {A_SRC}");
    assert_eq!(events(&m, "b"), vec![(State::Backup, higher.as_str())]);

    // 4. Stop both: each accepted the other's adverts and dropped none.
    ra.stop();
    rb.stop();
    let m = collect_until(&rx, long, |m| {
        m.iter().filter(|x| matches!(x, Msg::Stopped(..))).count() == 2
    });
    for x in &m {
        if let Msg::Stopped(node, [rx_n, tx_n, drops, _]) = x {
            assert!(*rx_n > 0 && *tx_n > 0, "{node} exchanged adverts: {x:?}");
            assert_eq!(*drops, 0, "{node} dropped nothing");
        }
    }

    // 5. On the wire: unicast only, from the configured sources, to the peer's MAC.
    let advs = cap.adverts();
    assert_unicast_only(&advs);
    let (a_mac, b_mac) = (mac_of(&lab.a, "a0"), mac_of(&lab.b, "b0"));
    for v in &advs {
        let ok = (v.src == A_SRC && v.dst == B_SRC && v.eth_dst == b_mac)
            || (v.src == B_SRC && v.dst == A_SRC && v.eth_dst == a_mac);
        assert!(ok, "advert between the configured unicast addresses: {v:?}");
    }
    let count = |src: &str, prio: u8| {
        advs.iter()
            .filter(|v| v.src == src && v.prio == prio)
            .count()
    };
    assert!(count(A_SRC, 150) > 0, "a's adverts as master: {advs:?}");
    assert!(count(B_SRC, 100) > 0, "b's adverts as master: {advs:?}");
    assert!(
        count(A_SRC, 0) >= 1,
        "a's shutdown adverts (priority 0) went to b by unicast: {advs:?}"
    );
}

#[test]
fn xlb_unicast_pair_v3_ipv4_100ms() {
    xlb_unicast_pair("u3", 3, Duration::from_millis(100));
}

#[test]
fn xlb_unicast_pair_v2_ipv4_1s() {
    xlb_unicast_pair("u2", 2, Duration::from_secs(1));
}
