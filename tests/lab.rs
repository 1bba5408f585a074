//! Tests of the lab itself (scripts/lab.sh, scripts/realserver.sh, scripts/lab-httpd.py):
//! the namespaces, addresses and services every end-to-end test builds on, and the LVS-DR
//! real-server behaviour (VIP accepted on lo, never answered by ARP or NDP). Root only;
//! each test builds its own lab and removes it, also on failure.

mod common;

use common::{ip4, ip6, mac, require_root, Lab, ALL_HOSTS, HOSTS, REALS, VIP4, VIP6};
use std::path::Path;

fn text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn up_builds_every_host_and_down_removes_every_namespace() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("up_builds_every_host_and_down_removes_every_namespace");
    let prefix = lab.prefix().to_string();
    assert!(prefix.len() <= 5, "prefix {prefix:?} too long");
    for h in ALL_HOSTS {
        assert!(
            Path::new("/run/netns").join(lab.netns(h)).exists(),
            "namespace of {h} missing"
        );
    }
    for (h, v4, v6, m) in HOSTS {
        let link = lab.exec_ok(h, &["ip", "-o", "link", "show", "eth0"]);
        assert!(link.contains(m), "{h}: eth0 has not MAC {m}: {link}");
        assert!(link.contains("state UP"), "{h}: eth0 not up: {link}");
        let addrs = lab.exec_ok(h, &["ip", "-o", "addr", "show", "eth0"]);
        assert!(addrs.contains(&format!("inet {v4}/24")), "{h}: {addrs}");
        assert!(addrs.contains(&format!("inet6 {v6}/64")), "{h}: {addrs}");
        assert!(
            !addrs.contains("tentative"),
            "{h}: DAD still running: {addrs}"
        );
    }
    // Every host's bridge port is enslaved to br0 in the switch namespace.
    let ports = lab.exec_ok("sw", &["ip", "-o", "link", "show", "master", "br0"]);
    for (h, ..) in HOSTS {
        assert!(
            ports.contains(&format!("port-{h}@")),
            "port-{h} not on br0: {ports}"
        );
    }
    // Directors do not route.
    for d in ["d1", "d2"] {
        let fwd = lab.exec_ok(d, &["cat", "/proc/sys/net/ipv4/ip_forward"]);
        assert_eq!(fwd.trim(), "0", "{d} forwards IPv4");
    }
    // The client sends finished checksums (DESIGN.md §5).
    let k = lab.exec_ok("c", &["ethtool", "-k", "eth0"]);
    assert!(
        k.lines()
            .any(|l| l.trim_start().starts_with("tx-checksumming: off")),
        "client tx checksum offload still on: {k}"
    );
    let status = lab.lab_sh(&["status"]);
    assert!(status.status.success(), "status: {}", text(&status));
    assert!(text(&status).contains("is up"));

    let run_dir = lab.run_dir();
    drop(lab);
    for h in ALL_HOSTS {
        let ns = format!("{prefix}-{h}");
        assert!(
            !Path::new("/run/netns").join(&ns).exists(),
            "{ns} still exists after down"
        );
    }
    assert!(!run_dir.exists(), "{run_dir:?} still exists after down");
}

#[test]
fn client_reaches_each_real_server_by_its_own_address() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("client_reaches_each_real_server_by_its_own_address");
    for r in REALS {
        let body = lab.exec_ok(
            "c",
            &["curl", "-s", "-m", "3", &format!("http://{}/", ip4(r))],
        );
        assert_eq!(body, format!("{r}\n"), "IPv4 body from {r}");
        let url6 = format!("http://[{}]/health", ip6(r));
        let headers = lab.exec_ok(
            "c",
            &[
                "curl",
                "-s",
                "-g",
                "-m",
                "3",
                "-D",
                "-",
                "-o",
                "/dev/null",
                &url6,
            ],
        );
        assert!(
            headers.starts_with("HTTP/1.1 200"),
            "{r} over IPv6: {headers}"
        );
        assert!(
            headers.contains(&format!("X-Real-Server: {r}\r\n")),
            "{r} over IPv6: {headers}"
        );
    }
}

#[test]
fn keep_alive_serves_two_requests_on_one_connection() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("keep_alive_serves_two_requests_on_one_connection");
    let base = format!("http://{}", ip4("r2"));
    // One curl invocation, two URLs: the second must reuse the first connection.
    let out = lab.exec_ok(
        "c",
        &[
            "curl",
            "-s",
            "-m",
            "3",
            "-D",
            "-",
            "-w",
            "connects=%{num_connects} port=%{local_port}\n",
            &format!("{base}/one"),
            &format!("{base}/two"),
        ],
    );
    let connects: Vec<&str> = out.lines().filter(|l| l.starts_with("connects=")).collect();
    assert_eq!(connects.len(), 2, "{out}");
    assert!(connects[0].starts_with("connects=1 "), "{out}");
    assert!(
        connects[1].starts_with("connects=0 "),
        "second request opened a connection: {out}"
    );
    let ports: Vec<&str> = connects
        .iter()
        .map(|l| l.split("port=").nth(1).unwrap_or(""))
        .collect();
    assert_eq!(ports[0], ports[1], "{out}");
    // The server saw both requests from the same client port.
    let clients: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("X-Client: "))
        .map(str::trim)
        .collect();
    assert_eq!(clients.len(), 2, "{out}");
    assert_eq!(clients[0], clients[1], "{out}");
    assert_eq!(clients[0], format!("{}:{}", ip4("c"), ports[0]));
    let log = std::fs::read_to_string(lab.run_dir().join("r2-httpd.log")).expect("r2 log");
    let needle = format!("http {} ", clients[0]);
    assert_eq!(log.matches(&needle).count(), 2, "r2 log: {log}");
}

#[test]
fn udp_echo_answers_from_the_address_it_was_sent_to() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("udp_echo_answers_from_the_address_it_was_sent_to");
    let echo = |target: String| -> String {
        // socat connects its UDP socket: only a reply from `target` itself is accepted.
        let cmd = format!("printf hello | socat -t 2 - 'UDP:{target}'");
        lab.exec_ok("c", &["sh", "-c", &cmd])
    };
    assert_eq!(echo(format!("{}:5353", ip4("r1"))), "r1 hello");
    assert_eq!(echo(format!("[{}]:5353", ip6("r2"))), "r2 hello");

    // Stand-in for a director: point the client's neighbour entries for the VIPs at r3
    // (and r2 for IPv6), as a director's DR rewrite does. The reply must come from the VIP.
    lab.exec_ok(
        "c",
        &[
            "ip",
            "neigh",
            "replace",
            VIP4,
            "lladdr",
            mac("r3"),
            "dev",
            "eth0",
            "nud",
            "permanent",
        ],
    );
    lab.exec_ok(
        "c",
        &[
            "ip",
            "-6",
            "neigh",
            "replace",
            VIP6,
            "lladdr",
            mac("r2"),
            "dev",
            "eth0",
            "nud",
            "permanent",
        ],
    );
    assert_eq!(echo(format!("{VIP4}:5353")), "r3 hello");
    assert_eq!(echo(format!("[{VIP6}]:5353")), "r2 hello");
    let body = lab.exec_ok("c", &["curl", "-s", "-m", "3", &format!("http://{VIP4}/")]);
    assert_eq!(body, "r3\n");
    let body = lab.exec_ok(
        "c",
        &["curl", "-s", "-g", "-m", "3", &format!("http://[{VIP6}]/")],
    );
    assert_eq!(body, "r2\n");
}

#[test]
fn traffic_reports_who_answered_and_that_replies_bypassed_d1() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("traffic_reports_who_answered_and_that_replies_bypassed_d1");
    // Stand-in for xlb (demo needs the data plane): the VIPs resolve to r1 directly.
    lab.exec_ok(
        "c",
        &[
            "ip",
            "neigh",
            "replace",
            VIP4,
            "lladdr",
            mac("r1"),
            "dev",
            "eth0",
            "nud",
            "permanent",
        ],
    );
    lab.exec_ok(
        "c",
        &[
            "ip",
            "-6",
            "neigh",
            "replace",
            VIP6,
            "lladdr",
            mac("r1"),
            "dev",
            "eth0",
            "nud",
            "permanent",
        ],
    );
    let out = lab.lab_sh(&["traffic", "4", "2"]);
    let stdout = text(&out);
    assert!(
        out.status.success(),
        "traffic failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.matches("-> r1").count(), 6, "{stdout}");
    assert!(stdout.contains("  r1   6"), "{stdout}");
    assert!(stdout.contains("replies bypassed the director"), "{stdout}");
    assert!(stdout.contains("on d1's bridge port: 0"), "{stdout}");

    // And the check has teeth: with the VIP pointed at d1 (which drops it: no VIP, no
    // forwarding) requests fail and traffic exits non-zero.
    lab.exec_ok(
        "c",
        &[
            "ip",
            "neigh",
            "replace",
            VIP4,
            "lladdr",
            mac("d1"),
            "dev",
            "eth0",
            "nud",
            "permanent",
        ],
    );
    let out = lab.lab_sh(&["traffic", "1", "0"]);
    assert!(
        !out.status.success(),
        "traffic succeeded through a director that drops: {}",
        text(&out)
    );
    assert!(text(&out).contains("FAILED requests: 1"), "{}", text(&out));
}

fn sysctl(lab: &Lab, host: &str, dev: &str, key: &str) -> String {
    lab.exec_ok(
        host,
        &["cat", &format!("/proc/sys/net/ipv4/conf/{dev}/{key}")],
    )
    .trim()
    .to_string()
}

fn lo_addrs(lab: &Lab, host: &str) -> String {
    lab.exec_ok(host, &["ip", "-o", "addr", "show", "dev", "lo"])
}

#[test]
fn realserver_start_is_idempotent_and_stop_undoes_it() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("realserver_start_is_idempotent_and_stop_undoes_it");
    let rs = common::script("realserver.sh");
    let rs = rs.to_str().expect("utf-8 path");

    // lab.sh up already ran start; a second start changes nothing.
    let before = lo_addrs(&lab, "r1");
    lab.exec_ok("r1", &[rs, "start", VIP4, VIP6]);
    let after = lo_addrs(&lab, "r1");
    assert_eq!(before, after);
    assert_eq!(
        after.matches(&format!("inet {VIP4}/32 ")).count(),
        1,
        "{after}"
    );
    assert_eq!(
        after.matches(&format!("inet6 {VIP6}/128 ")).count(),
        1,
        "{after}"
    );
    for dev in ["all", "lo"] {
        assert_eq!(sysctl(&lab, "r1", dev, "arp_ignore"), "1");
        assert_eq!(sysctl(&lab, "r1", dev, "arp_announce"), "2");
    }
    let status = lab.exec("r1", &[rs, "status", VIP4, VIP6]);
    assert_eq!(status.status.code(), Some(0), "{}", text(&status));

    // Removing one VIP keeps the ARP sysctls: another VIP still needs them.
    lab.exec_ok("r1", &[rs, "stop", VIP4]);
    let addrs = lo_addrs(&lab, "r1");
    assert!(!addrs.contains(VIP4), "{addrs}");
    assert!(addrs.contains(VIP6), "{addrs}");
    assert_eq!(sysctl(&lab, "r1", "all", "arp_ignore"), "1");
    let status = lab.exec("r1", &[rs, "status", VIP4, VIP6]);
    assert_eq!(status.status.code(), Some(3), "{}", text(&status));

    // Removing the last VIP restores the sysctls; stopping again is not an error.
    lab.exec_ok("r1", &[rs, "stop", VIP4, VIP6]);
    lab.exec_ok("r1", &[rs, "stop", VIP6]);
    let addrs = lo_addrs(&lab, "r1");
    assert!(!addrs.contains(VIP6), "{addrs}");
    for dev in ["all", "lo"] {
        assert_eq!(sysctl(&lab, "r1", dev, "arp_ignore"), "0");
        assert_eq!(sysctl(&lab, "r1", dev, "arp_announce"), "0");
    }
    // Other real servers are separate hosts: untouched.
    assert!(lo_addrs(&lab, "r2").contains(VIP4));

    // Bad usage: exit 64 with a usage message, nothing changed.
    let before = lo_addrs(&lab, "r1");
    for args in [
        vec![rs],
        vec![rs, "start"],
        vec![rs, "restart", VIP4],
        vec![rs, "start", "10.0.0.256"],
        vec![rs, "start", "fd99:::1"],
        vec![rs, "start", "10.99.0.100/24"],
        vec![rs, "start", "127.0.0.1"],
    ] {
        let out = lab.exec("r1", &args);
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("usage:"),
            "{args:?}"
        );
    }
    assert_eq!(lo_addrs(&lab, "r1"), before);

    // A fresh start brings it all back, in one step.
    lab.exec_ok("r1", &[rs, "start", VIP4, VIP6]);
    let status = lab.exec("r1", &[rs, "status", VIP4, VIP6]);
    assert_eq!(status.status.code(), Some(0), "{}", text(&status));
}

/// Make the client resolve `addr` (ping, one try) and return its neighbour entry.
fn resolve(lab: &Lab, addr: &str) -> (bool, String) {
    let fam = if addr.contains(':') { "-6" } else { "-4" };
    // A FAILED entry is not retried at once: start from a clean slate.
    let _ = lab.exec("c", &["ip", fam, "neigh", "del", addr, "dev", "eth0"]);
    let ping = lab.exec("c", &["ping", fam, "-c", "1", "-W", "1", addr]);
    let neigh = lab.exec_ok("c", &["ip", fam, "neigh", "show", addr, "dev", "eth0"]);
    (ping.status.success(), neigh)
}

#[test]
fn real_servers_answer_neither_arp_nor_ndp_for_the_vip() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("real_servers_answer_neither_arp_nor_ndp_for_the_vip");
    // The real servers' own addresses resolve (the segment works).
    for r in REALS {
        for a in [ip4(r), ip6(r)] {
            let (ok, neigh) = resolve(&lab, a);
            assert!(ok, "{a} unreachable: {neigh}");
            assert!(
                neigh.contains(&format!("lladdr {}", mac(r))),
                "{a}: {neigh}"
            );
        }
    }
    // No director holds the VIPs: nobody may answer for them, though all three real
    // servers have them on lo.
    for vip in [VIP4, VIP6] {
        let (ok, neigh) = resolve(&lab, vip);
        assert!(!ok, "{vip} answered a ping: {neigh}");
        assert!(
            !neigh.contains("lladdr"),
            "someone answered for {vip}: {neigh}"
        );
    }
    // Control: without the ARP sysctls, r2 does answer ARP for the VIP on lo, so the
    // check above would have seen it.
    for dev in ["all", "lo"] {
        lab.exec_ok(
            "r2",
            &[
                "sh",
                "-c",
                &format!("echo 0 > /proc/sys/net/ipv4/conf/{dev}/arp_ignore"),
            ],
        );
    }
    let (ok, neigh) = resolve(&lab, VIP4);
    assert!(ok, "control: ping to {VIP4} failed: {neigh}");
    assert!(
        neigh.contains(&format!("lladdr {}", mac("r2"))),
        "control: {neigh}"
    );
}

#[test]
fn demo_runs_a_director_end_to_end_with_the_fake_director() {
    if !require_root() {
        return;
    }
    // The Lab guards the prefix: whatever demo leaves behind, Drop removes it.
    let lab = Lab::up("demo_runs_a_director_end_to_end_with_the_fake_director");
    let out = std::process::Command::new(common::script("lab.sh"))
        .arg("demo")
        .env("XLB_LAB", lab.prefix())
        .env("XLB_BIN", common::script("lab-fake-director.py"))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run lab.sh demo");
    let stdout = text(&out);
    assert!(
        out.status.success(),
        "demo failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 20 IPv4 and 10 IPv6 requests, each answered by a real server, spread over them.
    let answers: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(" request "))
        .map(|l| l.rsplit("-> ").next().unwrap_or(""))
        .collect();
    assert_eq!(answers.len(), 30, "{stdout}");
    assert!(answers.iter().all(|a| REALS.contains(a)), "{stdout}");
    let distinct: std::collections::HashSet<&&str> = answers.iter().collect();
    assert!(
        distinct.len() >= 2,
        "one real server took everything: {stdout}"
    );
    assert!(
        stdout.contains("reply packets (tcp/80, udp/5353 from a server) on d1's bridge port: 0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("the director exited with status 0"),
        "{stdout}"
    );
    // demo tore its lab down (no --keep).
    for h in ALL_HOSTS {
        assert!(
            !Path::new("/run/netns").join(lab.netns(h)).exists(),
            "{h} left behind"
        );
    }
}

#[test]
fn a_lab_orphaned_by_a_dead_test_process_is_removed() {
    if !require_root() {
        return;
    }
    let name = "a_lab_orphaned_by_a_dead_test_process_is_removed";
    // A lab whose owner file names this test and a process that cannot exist
    // (above the kernel's pid_max limit of 2^22).
    let orphan = "o9x7q";
    let lab_sh = |args: &[&str]| {
        std::process::Command::new(common::script("lab.sh"))
            .args(args)
            .env("XLB_LAB", orphan)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run lab.sh")
    };
    let out = lab_sh(&["up"]);
    assert!(out.status.success(), "{}", text(&out));
    std::fs::write(
        format!("/tmp/{orphan}/xlb-test-owner"),
        format!("99999999\n{name}\n"),
    )
    .expect("owner file");
    let lab = Lab::up(name);
    let gone = ALL_HOSTS.iter().all(|h| {
        !Path::new("/run/netns")
            .join(format!("{orphan}-{h}"))
            .exists()
    });
    if !gone {
        lab_sh(&["down"]);
    }
    assert!(gone, "the orphaned lab {orphan} was not removed");
    assert!(!Path::new("/tmp").join(orphan).exists());
    assert!(Path::new("/run/netns").join(lab.netns("c")).exists());
}
