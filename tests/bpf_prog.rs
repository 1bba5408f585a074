//! The XDP program (`bpf/xlb.bpf.c`) through BPF_PROG_TEST_RUN, Katran-style: a table of
//! `{what, frame, control-plane state, socket bound?, expected action, expected counter}`,
//! plus truncation sweeps, a bounded random-frame run, service-set replacement, and
//! attach/detach on a veth pair in a network namespace this test creates.
//!
//! Needs root (BPF and netns); without it every test prints a skip line and returns.
//!
//! About XSKMAP under BPF_PROG_TEST_RUN (kernel 6.18): an AF_XDP socket that is merely
//! created (not bound to any device) is accepted into the XSKMAP, `bpf_map_lookup_elem` on
//! the XSKMAP then finds it, and `bpf_redirect_map` returns XDP_REDIRECT, which test_run
//! reports as the program's return value (the frame is not delivered anywhere). So the
//! redirect path is tested for real with an unbound socket. Only rx queue 0 can be tested
//! without a real ingress device (the kernel rejects another index with EINVAL).

use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::time::Duration;

use xlb::dataplane::bpf::{
    detach_any, AttachMode, BpfError, XdpProgram, XdpStats, PROTO_TCP, PROTO_UDP, XDP_ABORTED,
    XDP_DROP, XDP_PASS, XDP_REDIRECT,
};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("SKIP: bpf_prog tests need root (BPF program load, network namespaces)");
    }
    root
}

// ---------------------------------------------------------------------------------------
// Frame builders (plain bytes; the XDP program does not check IP or L4 checksums).

const ETH_IP: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;
const ETH_ARP: u16 = 0x0806;
const TPID_8021Q: u16 = 0x8100;
const TPID_8021AD: u16 = 0x88a8;
const PROTO_ICMP: u8 = 1;
const PROTO_ICMPV6: u8 = 58;
const IP6_HOPOPTS: u8 = 0;
const IP6_ROUTING: u8 = 43;
const IP6_FRAGMENT: u8 = 44;
const IP6_DSTOPTS: u8 = 60;

const VIP4: [u8; 4] = [10, 0, 0, 1];
const VIP4_ANY_PORT: [u8; 4] = [10, 0, 0, 2];
const VIP4_UDP_ONLY: [u8; 4] = [10, 0, 0, 3];
const OTHER4: [u8; 4] = [10, 0, 0, 99];
const VIP6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const OTHER6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x99];

fn services() -> Vec<(IpAddr, u16, u8, u32)> {
    vec![
        (IpAddr::from(VIP4), 80, PROTO_TCP, 1),
        (IpAddr::from(VIP4), 53, PROTO_UDP, 2),
        (IpAddr::from(VIP4_ANY_PORT), 0, PROTO_TCP, 3),
        (IpAddr::from(VIP4_UDP_ONLY), 0, PROTO_UDP, 4),
        (IpAddr::from(VIP6), 443, PROTO_TCP, 5),
    ]
}

fn eth(tags: &[u16], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02];
    for &tpid in tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&100u16.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// IPv4 header with `opt_words` 4-byte words of NOP options; `frag` is flags+offset.
fn ipv4(dst: [u8; 4], proto: u8, frag: u16, opt_words: u8, l4: &[u8]) -> Vec<u8> {
    let hlen = 20 + 4 * usize::from(opt_words);
    let total = u16::try_from(hlen + l4.len()).expect("small frame");
    let mut h = vec![0x40 | (5 + opt_words), 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0x12, 0x34]);
    h.extend_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&[64, proto, 0, 0]);
    h.extend_from_slice(&[192, 0, 2, 10]);
    h.extend_from_slice(&dst);
    h.resize(hlen, 1);
    h.extend_from_slice(l4);
    h
}

fn ipv6(dst: [u8; 16], nexthdr: u8, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(payload.len()).expect("small frame");
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&len.to_be_bytes());
    h.extend_from_slice(&[nexthdr, 64]);
    h.extend_from_slice(&[
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ]);
    h.extend_from_slice(&dst);
    h.extend_from_slice(payload);
    h
}

/// An IPv6 options-style extension header of `units` extra 8-byte units, then `rest`.
fn ext(nexthdr: u8, units: u8, rest: &[u8]) -> Vec<u8> {
    let mut h = vec![0u8; 8 * (usize::from(units) + 1)];
    h[0] = nexthdr;
    h[1] = units;
    h[2] = 1; // PadN
    h[3] = u8::try_from(h.len() - 4).expect("small header");
    h.extend_from_slice(rest);
    h
}

fn frag6(nexthdr: u8, offset_units: u16, more: bool, rest: &[u8]) -> Vec<u8> {
    let mut h = vec![nexthdr, 0];
    h.extend_from_slice(&((offset_units << 3) | u16::from(more)).to_be_bytes());
    h.extend_from_slice(&0xdead_beefu32.to_be_bytes());
    h.extend_from_slice(rest);
    h
}

fn tcp(dport: u16) -> Vec<u8> {
    let mut h = Vec::with_capacity(20);
    h.extend_from_slice(&40000u16.to_be_bytes());
    h.extend_from_slice(&dport.to_be_bytes());
    h.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
    h
}

fn udp(dport: u16) -> Vec<u8> {
    let mut h = Vec::with_capacity(12);
    h.extend_from_slice(&40000u16.to_be_bytes());
    h.extend_from_slice(&dport.to_be_bytes());
    h.extend_from_slice(&[0, 12, 0, 0, b'p', b'i', b'n', b'g']);
    h
}

fn icmp_echo() -> Vec<u8> {
    vec![8, 0, 0, 0, 0, 1, 0, 1]
}

fn tcp4(dst: [u8; 4], dport: u16) -> Vec<u8> {
    eth(&[], ETH_IP, &ipv4(dst, PROTO_TCP, 0, 0, &tcp(dport)))
}

fn tcp6(dst: [u8; 16], dport: u16) -> Vec<u8> {
    eth(&[], ETH_IPV6, &ipv6(dst, PROTO_TCP, &tcp(dport)))
}

fn arp(tags: &[u16], op: u16, target: [u8; 4]) -> Vec<u8> {
    let mut a = vec![0, 1, 0x08, 0, 6, 4];
    a.extend_from_slice(&op.to_be_bytes());
    a.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02, 192, 0, 2, 10]);
    a.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    a.extend_from_slice(&target);
    eth(tags, ETH_ARP, &a)
}

fn neighbor_solicit(target: [u8; 16]) -> Vec<u8> {
    let mut icmp = vec![135, 0, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&target);
    icmp.extend_from_slice(&[1, 1, 0x02, 0, 0, 0, 0, 0x02]); // source link-layer address
    let mut solicited = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0];
    solicited[13..].copy_from_slice(&target[13..]);
    eth(&[], ETH_IPV6, &ipv6(solicited, PROTO_ICMPV6, &icmp))
}

// ---------------------------------------------------------------------------------------
// Control-plane states and counters.

#[derive(Debug, Clone, Copy, PartialEq)]
enum Ctl {
    /// Active, liveness fresh.
    Active,
    /// Not active (VRRP backup), liveness fresh.
    Backup,
    /// Active flag set but xlb stopped touching (died without detaching).
    Stale,
    /// Backup that died.
    StaleBackup,
}

fn set_ctl(p: &XdpProgram, ctl: Ctl) -> Result<(), BpfError> {
    let (active, stale) = match ctl {
        Ctl::Active => (true, false),
        Ctl::Backup => (false, false),
        Ctl::Stale => (true, true),
        Ctl::StaleBackup => (false, true),
    };
    p.set_active(active)?;
    if stale {
        // Last touched 10 s ago with a 1 s timeout (the program's clock is coarse).
        p.set_stale_after(Duration::from_secs(1))?;
        p.touch_ago(Duration::from_secs(10))
    } else {
        p.set_stale_after(Duration::from_secs(3600))?;
        p.touch()
    }
}

#[derive(Debug, Clone, Copy)]
enum Counter {
    Redirected,
    Passed,
    NoSocket,
    Inactive,
    NoService,
    DroppedStale,
    DroppedNdStale,
}

fn counter(s: &XdpStats, c: Counter) -> u64 {
    match c {
        Counter::Redirected => s.redirected,
        Counter::Passed => s.passed,
        Counter::NoSocket => s.no_socket,
        Counter::Inactive => s.inactive,
        Counter::NoService => s.no_service,
        Counter::DroppedStale => s.dropped_stale,
        Counter::DroppedNdStale => s.dropped_nd_stale,
    }
}

/// An AF_XDP socket, created but not bound: enough for the XSKMAP (see the module doc).
fn xdp_socket() -> OwnedFd {
    // SAFETY: plain socket(2) call; the result is checked before it is owned.
    let fd = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    assert!(
        fd >= 0,
        "socket(AF_XDP): {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

struct Fixture {
    what: &'static str,
    frame: Vec<u8>,
    ctl: Ctl,
    socket: bool,
    action: u32,
    counter: Counter,
    irregular: bool,
}

fn fx(
    what: &'static str,
    frame: Vec<u8>,
    ctl: Ctl,
    socket: bool,
    action: u32,
    counter: Counter,
) -> Fixture {
    Fixture {
        what,
        frame,
        ctl,
        socket,
        action,
        counter,
        irregular: false,
    }
}

/// Like `fx`, for frames sent towards userspace without a port lookup.
fn irregular(what: &'static str, frame: Vec<u8>) -> Fixture {
    Fixture {
        irregular: true,
        ..fx(
            what,
            frame,
            Ctl::Active,
            true,
            XDP_REDIRECT,
            Counter::Redirected,
        )
    }
}

// One fixture per line reads as a table.
#[rustfmt::skip]
fn fixtures() -> Vec<Fixture> {
    use Counter::*;
    use Ctl::*;
    let tcp_frag = |frag| eth(&[], ETH_IP, &ipv4(VIP4, PROTO_TCP, frag, 0, &tcp(80)));
    let mut bad_ihl = tcp4(VIP4, 80);
    bad_ihl[14] = 0x44;
    let mut long_ihl = tcp4(VIP4, 80);
    long_ihl[14] = 0x4f; // 60-byte header claimed, 40 bytes of IP+TCP present
    let mut bad_version = tcp4(VIP4, 80);
    bad_version[14] = 0x55;
    let vip6_tcp = |payload: Vec<u8>, first: u8| eth(&[], ETH_IPV6, &ipv6(VIP6, first, &payload));
    let five_ext = ext(IP6_DSTOPTS, 0, &ext(IP6_DSTOPTS, 0, &ext(IP6_DSTOPTS, 0, &ext(IP6_DSTOPTS, 0, &ext(PROTO_TCP, 0, &tcp(443))))));
    let four_ext = ext(IP6_ROUTING, 1, &ext(IP6_DSTOPTS, 0, &ext(IP6_DSTOPTS, 2, &ext(PROTO_TCP, 0, &tcp(443)))));
    let tcp4_tagged = |tags: &[u16]| eth(tags, ETH_IP, &ipv4(VIP4, PROTO_TCP, 0, 0, &tcp(80)));
    let udp4 = |dport| eth(&[], ETH_IP, &ipv4(VIP4, PROTO_UDP, 0, 0, &udp(dport)));
    let icmp4 = eth(&[], ETH_IP, &ipv4(VIP4, PROTO_ICMP, 0, 0, &icmp_echo()));

    vec![
        // Active, socket bound: the service path.
        fx("TCP to VIP:80", tcp4(VIP4, 80), Active, true, XDP_REDIRECT, Redirected),
        fx("UDP to VIP:53", udp4(53), Active, true, XDP_REDIRECT, Redirected),
        fx("TCP to a port-0 (every port) service", tcp4(VIP4_ANY_PORT, 12345), Active, true, XDP_REDIRECT, Redirected),
        fx("IPv4 with options, TCP to VIP:80", eth(&[], ETH_IP, &ipv4(VIP4, PROTO_TCP, 0, 3, &tcp(80))), Active, true, XDP_REDIRECT, Redirected),
        fx("802.1Q-tagged TCP to VIP:80", tcp4_tagged(&[TPID_8021Q]), Active, true, XDP_REDIRECT, Redirected),
        fx("802.1ad-tagged TCP to VIP:80", tcp4_tagged(&[TPID_8021AD]), Active, true, XDP_REDIRECT, Redirected),
        fx("IPv6 TCP to VIP6:443", tcp6(VIP6, 443), Active, true, XDP_REDIRECT, Redirected),
        fx("IPv6 hop-by-hop + dest-opts, TCP to VIP6:443", vip6_tcp(ext(IP6_DSTOPTS, 1, &ext(PROTO_TCP, 0, &tcp(443))), IP6_HOPOPTS), Active, true, XDP_REDIRECT, Redirected),
        fx("IPv6 four extension headers (the limit), TCP to VIP6:443", vip6_tcp(four_ext, IP6_HOPOPTS), Active, true, XDP_REDIRECT, Redirected),
        // Active, socket bound: not ours.
        fx("TCP to VIP:22 (no service on that port)", tcp4(VIP4, 22), Active, true, XDP_PASS, NoService),
        fx("UDP to VIP:80 (only TCP there)", udp4(80), Active, true, XDP_PASS, NoService),
        fx("IPv6 TCP to VIP6:22", tcp6(VIP6, 22), Active, true, XDP_PASS, NoService),
        fx("TCP to a UDP-only VIP", tcp4(VIP4_UDP_ONLY, 80), Active, true, XDP_PASS, Passed),
        fx("ICMP echo to VIP", icmp4.clone(), Active, true, XDP_PASS, Passed),
        fx("TCP to a non-VIP", tcp4(OTHER4, 80), Active, true, XDP_PASS, Passed),
        fx("IPv6 TCP to a non-VIP", tcp6(OTHER6, 443), Active, true, XDP_PASS, Passed),
        fx("double-tagged (QinQ) TCP to VIP: not parsed", tcp4_tagged(&[TPID_8021AD, TPID_8021Q]), Active, true, XDP_PASS, Passed),
        fx("ARP request for VIP while alive", arp(&[], 1, VIP4), Active, true, XDP_PASS, Passed),
        fx("NS for VIP6 while alive", neighbor_solicit(VIP6), Active, true, XDP_PASS, Passed),
        fx("unknown ethertype", eth(&[], 0x88b5, &[0u8; 46]), Active, true, XDP_PASS, Passed),
        // Active, socket bound: irregular frames to a VIP go to userspace unlooked-up.
        irregular("IPv4 non-first fragment to VIP", tcp_frag(185)),
        irregular("IPv4 first fragment (MF) to VIP", tcp_frag(0x2000)),
        irregular("IPv4 IHL 4 to VIP", bad_ihl),
        irregular("IPv4 IHL 15 beyond the frame to VIP", long_ihl),
        irregular("IPv4 version 5 to VIP", bad_version),
        irregular("IPv4 to VIP, L4 header cut after 2 bytes", eth(&[], ETH_IP, &ipv4(VIP4, PROTO_TCP, 0, 0, &[0x9c, 0x40]))),
        irregular("IPv6 hop-by-hop + fragment header to VIP6", vip6_tcp(ext(IP6_FRAGMENT, 0, &frag6(PROTO_TCP, 0, true, &tcp(443))), IP6_HOPOPTS)),
        irregular("IPv6 non-first fragment to VIP6", vip6_tcp(frag6(PROTO_TCP, 100, false, &[0u8; 16]), IP6_FRAGMENT)),
        irregular("IPv6 five extension headers (over the limit) to VIP6", vip6_tcp(five_ext, IP6_HOPOPTS)),
        irregular("IPv6 extension header cut short to VIP6", vip6_tcp(vec![PROTO_TCP], IP6_HOPOPTS)),
        // Active, no socket on the queue: pass rather than blackhole.
        fx("TCP to VIP:80, no socket bound", tcp4(VIP4, 80), Active, false, XDP_PASS, NoSocket),
        fx("IPv6 TCP to VIP6:443, no socket bound", tcp6(VIP6, 443), Active, false, XDP_PASS, NoSocket),
        // Not active (VRRP backup): everything to the kernel.
        fx("TCP to VIP:80 while inactive", tcp4(VIP4, 80), Backup, true, XDP_PASS, Inactive),
        fx("IPv6 TCP to VIP6:443 while inactive", tcp6(VIP6, 443), Backup, true, XDP_PASS, Inactive),
        fx("TCP to a non-VIP while inactive", tcp4(OTHER4, 80), Backup, true, XDP_PASS, Passed),
        fx("ARP request for VIP while inactive", arp(&[], 1, VIP4), Backup, true, XDP_PASS, Passed),
        // Stale (xlb died without detaching): blackhole the VIP, never let the kernel answer.
        fx("TCP to VIP:80 while stale", tcp4(VIP4, 80), Stale, true, XDP_DROP, DroppedStale),
        fx("TCP to VIP:22 while stale (the kernel would RST)", tcp4(VIP4, 22), Stale, true, XDP_DROP, DroppedStale),
        fx("VLAN-tagged TCP to VIP:80 while stale", tcp4_tagged(&[TPID_8021Q]), Stale, true, XDP_DROP, DroppedStale),
        fx("IPv4 fragment to VIP while stale", tcp_frag(185), Stale, true, XDP_DROP, DroppedStale),
        fx("IPv6 TCP to VIP6:443 while stale", tcp6(VIP6, 443), Stale, true, XDP_DROP, DroppedStale),
        fx("TCP to VIP:80 while stale and inactive", tcp4(VIP4, 80), StaleBackup, true, XDP_DROP, DroppedStale),
        fx("TCP to VIP:80 while stale, no socket", tcp4(VIP4, 80), Stale, false, XDP_DROP, DroppedStale),
        fx("ARP request for VIP while stale", arp(&[], 1, VIP4), Stale, true, XDP_DROP, DroppedNdStale),
        fx("802.1Q ARP request for VIP while stale", arp(&[TPID_8021Q], 1, VIP4), Stale, true, XDP_DROP, DroppedNdStale),
        fx("ARP request for another IP while stale", arp(&[], 1, OTHER4), Stale, true, XDP_PASS, Passed),
        fx("ARP reply about VIP while stale (only requests dropped)", arp(&[], 2, VIP4), Stale, true, XDP_PASS, Passed),
        fx("NS for VIP6 while stale", neighbor_solicit(VIP6), Stale, true, XDP_DROP, DroppedNdStale),
        fx("NS for another IPv6 address while stale", neighbor_solicit(OTHER6), Stale, true, XDP_PASS, Passed),
        fx("TCP to a non-VIP while stale", tcp4(OTHER4, 80), Stale, true, XDP_PASS, Passed),
        fx("ICMP echo to VIP while stale (the dead box must not answer pings)", icmp4, Stale, true, XDP_DROP, DroppedStale),
        fx("ICMPv6 to VIP6 while stale", vip6_tcp(icmp_echo(), PROTO_ICMPV6), Stale, true, XDP_DROP, DroppedStale),
        fx("ICMPv6 to VIP6 while active (the kernel's)", vip6_tcp(icmp_echo(), PROTO_ICMPV6), Active, true, XDP_PASS, Passed),
    ]
}

#[test]
fn fixture_table() {
    if !is_root() {
        return;
    }
    let p = XdpProgram::load().expect("load");
    p.set_services(&services()).expect("services");
    let sock = xdp_socket();
    for f in fixtures() {
        if f.socket {
            p.register_xsk(0, sock.as_raw_fd()).expect("register");
        } else {
            p.unregister_xsk(0).expect("unregister");
        }
        set_ctl(&p, f.ctl).expect("ctl");
        let before = p.stats().expect("stats");
        let action = p.test_run(&f.frame, 0).expect("test_run");
        let after = p.stats().expect("stats");
        assert_eq!(action, f.action, "{}: action", f.what);
        assert_eq!(
            counter(&after, f.counter) - counter(&before, f.counter),
            1,
            "{}: {:?} counter ({before:?} -> {after:?})",
            f.what,
            f.counter
        );
        assert_eq!(
            after.total() - before.total(),
            1,
            "{}: one verdict per frame",
            f.what
        );
        assert_eq!(
            after.irregular - before.irregular,
            u64::from(f.irregular),
            "{}: irregular counter",
            f.what
        );
    }
}

#[test]
fn a_never_touched_program_is_not_stale() {
    if !is_root() {
        return;
    }
    let p = XdpProgram::load().expect("load");
    p.set_services(&services()).expect("services");
    // Freshly loaded: inactive, stamp 0. VIP traffic goes to the kernel, not dropped.
    assert_eq!(p.test_run(&tcp4(VIP4, 80), 0).expect("run"), XDP_PASS);
    assert_eq!(p.stats().expect("stats").inactive, 1);
    // Active with the shortest timeout but never touched: still not stale.
    p.set_active(true).expect("active");
    p.set_stale_after(Duration::from_nanos(1))
        .expect("stale_after");
    assert_eq!(p.test_run(&tcp4(VIP4, 80), 0).expect("run"), XDP_PASS);
    assert_eq!(p.test_run(&arp(&[], 1, VIP4), 0).expect("run"), XDP_PASS);
    let s = p.stats().expect("stats");
    assert_eq!(
        (s.no_socket, s.passed, s.dropped_stale, s.dropped_nd_stale),
        (1, 1, 0, 0)
    );
    // The first touch arms the liveness check (10 s ago with a 1 s timeout: stale).
    p.set_stale_after(Duration::from_secs(1))
        .expect("stale_after");
    p.touch_ago(Duration::from_secs(10)).expect("touch");
    assert_eq!(p.test_run(&tcp4(VIP4, 80), 0).expect("run"), XDP_DROP);
    // A fresh touch within a long timeout revives it.
    p.set_stale_after(Duration::from_secs(3600))
        .expect("stale_after");
    p.touch().expect("touch");
    assert_eq!(p.test_run(&tcp4(VIP4, 80), 0).expect("run"), XDP_PASS);
    assert_eq!(p.stats().expect("stats").no_socket, 2);
}

#[test]
fn sockets_are_per_rx_queue() {
    if !is_root() {
        return;
    }
    let p = XdpProgram::load().expect("load");
    p.set_services(&services()).expect("services");
    set_ctl(&p, Ctl::Active).expect("ctl");
    let sock = xdp_socket();
    // A socket on queue 1 does not serve frames arriving on queue 0.
    p.register_xsk(1, sock.as_raw_fd()).expect("register 1");
    assert_eq!(p.test_run(&tcp4(VIP4, 80), 0).expect("run"), XDP_PASS);
    assert_eq!(p.stats().expect("stats").no_socket, 1);
    p.register_xsk(0, sock.as_raw_fd()).expect("register 0");
    assert_eq!(p.test_run(&tcp4(VIP4, 80), 0).expect("run"), XDP_REDIRECT);
    p.unregister_xsk(0).expect("unregister 0");
    p.unregister_xsk(0).expect("unregistering twice is fine");
    assert_eq!(p.test_run(&tcp4(VIP4, 80), 0).expect("run"), XDP_PASS);
    let s = p.stats().expect("stats");
    assert_eq!((s.redirected, s.no_socket), (1, 2));
    // Queue indexes beyond the XSKMAP are refused.
    assert!(p.register_xsk(64, sock.as_raw_fd()).is_err());
    // A test run on another queue needs a real device: the kernel says EINVAL.
    assert!(matches!(
        p.test_run(&tcp4(VIP4, 80), 1),
        Err(BpfError::TestRun(_))
    ));
}

#[test]
fn set_services_replaces_the_whole_set() {
    if !is_root() {
        return;
    }
    let p = XdpProgram::load().expect("load");
    let sock = xdp_socket();
    p.register_xsk(0, sock.as_raw_fd()).expect("register");
    set_ctl(&p, Ctl::Active).expect("ctl");
    p.set_services(&services()).expect("services");
    let run = |f: &[u8]| p.test_run(f, 0).expect("run");
    assert_eq!(run(&tcp4(VIP4, 80)), XDP_REDIRECT);
    assert_eq!(run(&tcp6(VIP6, 443)), XDP_REDIRECT);

    // New set: VIP4 moves to port 8080, VIP6 disappears, a new VIP appears.
    let new_vip = [10, 0, 0, 7];
    p.set_services(&[
        (IpAddr::from(VIP4), 8080, PROTO_TCP, 1),
        (IpAddr::from(new_vip), 80, PROTO_TCP, 9),
    ])
    .expect("new services");
    let before = p.stats().expect("stats");
    assert_eq!(run(&tcp4(VIP4, 80)), XDP_PASS, "old port gone");
    assert_eq!(run(&tcp4(VIP4, 8080)), XDP_REDIRECT, "new port");
    assert_eq!(run(&tcp6(VIP6, 443)), XDP_PASS, "removed VIP");
    assert_eq!(
        run(&eth(&[], ETH_IP, &ipv4(VIP4, PROTO_UDP, 0, 0, &udp(53)))),
        XDP_PASS,
        "VIP lost its UDP service"
    );
    assert_eq!(run(&tcp4(new_vip, 80)), XDP_REDIRECT, "new VIP");
    let after = p.stats().expect("stats");
    assert_eq!(
        after.no_service - before.no_service,
        1,
        "VIP4:80 now has no service"
    );
    assert_eq!(
        after.passed - before.passed,
        2,
        "VIP6 and UDP to VIP4 are no VIP protocol"
    );
    assert_eq!(after.redirected - before.redirected, 2);

    // Empty set: nothing is ours any more.
    p.set_services(&[]).expect("empty");
    assert_eq!(run(&tcp4(VIP4, 8080)), XDP_PASS);
    assert_eq!(run(&arp(&[], 1, new_vip)), XDP_PASS);

    // Invalid sets are refused as a whole.
    let icmp = p.set_services(&[(IpAddr::from(VIP4), 0, PROTO_ICMP, 1)]);
    assert!(
        matches!(icmp, Err(BpfError::UnsupportedProto { proto: 1, .. })),
        "{icmp:?}"
    );
    let dup = p.set_services(&[
        (IpAddr::from(VIP4), 80, PROTO_TCP, 1),
        (IpAddr::from(VIP4), 80, PROTO_TCP, 2),
    ]);
    assert!(
        matches!(dup, Err(BpfError::DuplicateService { port: 80, .. })),
        "{dup:?}"
    );
    let many: Vec<_> = (0..1025u32)
        .map(|i| {
            (
                IpAddr::from([10, 1, (i >> 8) as u8, i as u8]),
                80,
                PROTO_TCP,
                i,
            )
        })
        .collect();
    assert!(matches!(
        p.set_services(&many),
        Err(BpfError::TooMany { count: 1025, .. })
    ));
    assert_eq!(
        run(&tcp4(VIP4, 8080)),
        XDP_PASS,
        "refused sets change nothing"
    );
    // The full capacity fits.
    p.set_services(&many[..1024]).expect("1024 services fit");
    assert_eq!(run(&tcp4([10, 1, 3, 255], 80)), XDP_REDIRECT);
}

/// Every prefix of some frames: never an error or XDP_ABORTED, one verdict each, and for a
/// plain IPv4 TCP frame the exact verdict at each boundary.
#[test]
fn truncated_frames() {
    if !is_root() {
        return;
    }
    let p = XdpProgram::load().expect("load");
    p.set_services(&services()).expect("services");
    let sock = xdp_socket();
    p.register_xsk(0, sock.as_raw_fd()).expect("register");
    set_ctl(&p, Ctl::Active).expect("ctl");

    // IPv4: < 34 bytes the destination is unreadable (pass), 34..38 the ports are cut
    // (irregular, redirected), from 38 a full service lookup (redirected).
    let full = tcp4(VIP4, 80);
    for len in 14..=full.len() {
        let before = p.stats().expect("stats");
        let action = p.test_run(&full[..len], 0).expect("run");
        let after = p.stats().expect("stats");
        let (want, irregular) = match len {
            0..=33 => (XDP_PASS, 0),
            34..=37 => (XDP_REDIRECT, 1),
            _ => (XDP_REDIRECT, 0),
        };
        assert_eq!(action, want, "IPv4 prefix of {len} bytes");
        assert_eq!(
            after.irregular - before.irregular,
            irregular,
            "IPv4 prefix of {len}"
        );
        assert_eq!(after.total() - before.total(), 1, "IPv4 prefix of {len}");
    }

    let others = [
        eth(
            &[TPID_8021Q],
            ETH_IP,
            &ipv4(VIP4, PROTO_TCP, 0, 2, &tcp(80)),
        ),
        eth(
            &[],
            ETH_IPV6,
            &ipv6(
                VIP6,
                IP6_HOPOPTS,
                &ext(IP6_ROUTING, 1, &ext(PROTO_TCP, 0, &tcp(443))),
            ),
        ),
        eth(
            &[],
            ETH_IPV6,
            &ipv6(VIP6, IP6_FRAGMENT, &frag6(PROTO_UDP, 0, true, &udp(53))),
        ),
        arp(&[TPID_8021Q], 1, VIP4),
        neighbor_solicit(VIP6),
    ];
    for (i, frame) in others.iter().enumerate() {
        for len in 14..=frame.len() {
            let before = p.stats().expect("stats");
            let action = p.test_run(&frame[..len], 0).expect("run");
            let after = p.stats().expect("stats");
            assert!(
                action == XDP_PASS || action == XDP_REDIRECT,
                "frame {i} prefix {len}: action {action}"
            );
            assert_eq!(after.total() - before.total(), 1, "frame {i} prefix {len}");
        }
        // Whole frames 0 and 1 reach a service.
        if i < 2 {
            assert_eq!(
                p.test_run(frame, 0).expect("run"),
                XDP_REDIRECT,
                "frame {i}"
            );
        }
    }
}

/// Bounded pseudo-random frames (deterministic xorshift), with headers that often look
/// right: the program always returns PASS or REDIRECT while alive and counts each once.
#[test]
fn random_frames() {
    if !is_root() {
        return;
    }
    let p = XdpProgram::load().expect("load");
    p.set_services(&services()).expect("services");
    let sock = xdp_socket();
    p.register_xsk(0, sock.as_raw_fd()).expect("register");
    set_ctl(&p, Ctl::Active).expect("ctl");
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    const N: u64 = 3000;
    let before = p.stats().expect("stats");
    for i in 0..N {
        let len = 14 + (next() % 120) as usize;
        let mut f: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let types = [ETH_IP, ETH_IPV6, ETH_ARP, TPID_8021Q, TPID_8021AD];
        let t = types[(next() % types.len() as u64) as usize];
        f[12..14].copy_from_slice(&t.to_be_bytes());
        let mut l3 = 14;
        if (t == TPID_8021Q || t == TPID_8021AD) && len >= 18 {
            let inner = types[(next() % 3) as usize];
            f[16..18].copy_from_slice(&inner.to_be_bytes());
            l3 = 18;
        }
        // Often aim at a VIP so the deeper paths run.
        if next() % 2 == 0 && f.len() >= l3 + 40 {
            f[l3 + 16..l3 + 20].copy_from_slice(&VIP4);
            f[l3 + 24..l3 + 40].copy_from_slice(&VIP6);
        }
        let action = p.test_run(&f, 0).expect("run");
        assert!(
            action == XDP_PASS || action == XDP_REDIRECT,
            "random frame {i} got action {action}: {f:02x?}"
        );
        assert_ne!(action, XDP_ABORTED);
    }
    let after = p.stats().expect("stats");
    assert_eq!(after.total() - before.total(), N);
    assert_eq!(
        after.dropped_stale + after.dropped_nd_stale,
        0,
        "alive: never drops"
    );
}

// ---------------------------------------------------------------------------------------
// Attach and detach on a veth pair in a network namespace of our own.

/// A network namespace with a veth pair (`xv0` <-> `xv1`, both up); removed on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("xlbt-bpf-{tag}-{}", std::process::id());
        // A namespace of that name left by an earlier crash (same pid reused) goes first.
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        let ns = Netns { name };
        ns.ip(&["netns", "add", &ns.name]);
        ns.ip(&[
            "-n", &ns.name, "link", "add", "xv0", "type", "veth", "peer", "name", "xv1",
        ]);
        ns.ip(&["-n", &ns.name, "link", "set", "xv0", "up"]);
        ns.ip(&["-n", &ns.name, "link", "set", "xv1", "up"]);
        ns
    }

    fn ip(&self, args: &[&str]) -> String {
        let out = Command::new("ip").args(args).output().expect("run ip");
        assert!(
            out.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `ip link show dev` in the namespace.
    fn link(&self, dev: &str) -> String {
        self.ip(&["-n", &self.name, "link", "show", "dev", dev])
    }

    /// Runs `f` on a thread that has entered the namespace (other tests are unaffected).
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("open netns");
            // SAFETY: setns on a valid namespace fd; it changes only this thread.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// The XDP program id on the link and whether it is generic, from `ip link show`: the
/// first line carries the mode (`xdp` or `xdpgeneric`), a `prog/xdp id N` line the id.
fn xdp_on(link: &str) -> Option<(u32, bool)> {
    let first = link.lines().next().unwrap_or("");
    let generic = first.split_whitespace().any(|w| w == "xdpgeneric");
    let native = first.split_whitespace().any(|w| w == "xdp");
    if !generic && !native {
        return None;
    }
    let marker = "prog/xdp id ";
    let at = link.find(marker)? + marker.len();
    let id = link[at..].split_whitespace().next()?.parse().ok()?;
    Some((id, generic))
}

#[test]
fn attach_replaces_leftovers_and_detach_cleans_up() {
    if !is_root() {
        return;
    }
    let ns = Netns::new("attach");
    let name = ns.name.clone();
    let link = move || {
        let out = Command::new("ip")
            .args(["-n", &name, "link", "show", "dev", "xv0"])
            .output()
            .expect("ip link");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    ns.run(move || {
        // A crashed xlb leaves a native program behind.
        let mut crashed = XdpProgram::load().expect("load");
        assert_eq!(
            crashed.attach("xv0", AttachMode::Native).expect("attach"),
            AttachMode::Native
        );
        assert_eq!(xdp_on(&link()), Some((crashed.id(), false)), "{}", link());
        std::mem::forget(crashed);

        // The next xlb replaces it in the same mode.
        let mut second = XdpProgram::load().expect("load");
        assert_eq!(
            second.attach("xv0", AttachMode::Native).expect("attach"),
            AttachMode::Native
        );
        assert_eq!(xdp_on(&link()), Some((second.id(), false)), "{}", link());
        std::mem::forget(second);

        // ... and in the other mode (native and generic cannot coexist).
        let mut third = XdpProgram::load().expect("load");
        assert_eq!(
            third.attach("xv0", AttachMode::Generic).expect("attach"),
            AttachMode::Generic
        );
        assert_eq!(xdp_on(&link()), Some((third.id(), true)), "{}", link());
        third.detach().expect("detach");
        assert_eq!(xdp_on(&link()), None, "{}", link());
        third.detach().expect("detaching twice is fine");

        // Drop detaches.
        let mut dropped = XdpProgram::load().expect("load");
        dropped.attach("xv0", AttachMode::Native).expect("attach");
        assert!(xdp_on(&link()).is_some());
        drop(dropped);
        assert_eq!(xdp_on(&link()), None, "{}", link());

        // Detach leaves alone a program that replaced ours.
        let mut old = XdpProgram::load().expect("load");
        old.attach("xv0", AttachMode::Native).expect("attach");
        let mut new = XdpProgram::load().expect("load");
        new.attach("xv0", AttachMode::Native).expect("attach");
        old.detach().expect("detach old");
        assert_eq!(xdp_on(&link()), Some((new.id(), false)), "{}", link());
        drop(old);
        drop(new);
        assert_eq!(xdp_on(&link()), None, "{}", link());

        // detach_any removes whatever is there, in either mode.
        for mode in [AttachMode::Native, AttachMode::Generic] {
            let mut leftover = XdpProgram::load().expect("load");
            leftover.attach("xv0", mode).expect("attach");
            std::mem::forget(leftover);
            assert!(xdp_on(&link()).is_some());
            detach_any("xv0").expect("detach_any");
            assert_eq!(xdp_on(&link()), None, "{}", link());
        }
        detach_any("xv0").expect("detach_any with nothing attached");

        // Unknown interfaces are an error, not a panic.
        let mut p = XdpProgram::load().expect("load");
        assert!(matches!(
            p.attach("nonexistent0", AttachMode::Native),
            Err(BpfError::NoSuchInterface(_))
        ));
        assert!(matches!(
            detach_any("nonexistent0"),
            Err(BpfError::NoSuchInterface(_))
        ));
    });
    assert_eq!(xdp_on(&ns.link("xv0")), None);
}

/// Native attach is not possible on a device without driver XDP (a bridge): the loader
/// falls back to generic mode.
#[test]
fn native_falls_back_to_generic() {
    if !is_root() {
        return;
    }
    let ns = Netns::new("fallback");
    ns.ip(&["-n", &ns.name, "link", "add", "xbr0", "type", "bridge"]);
    ns.ip(&["-n", &ns.name, "link", "set", "xbr0", "up"]);
    let mode = ns.run(|| {
        let mut p = XdpProgram::load().expect("load");
        let mode = p
            .attach("xbr0", AttachMode::Native)
            .expect("attach with fallback");
        let id = p.id();
        std::mem::forget(p); // leave it for the check below
        (mode, id)
    });
    assert_eq!(mode.0, AttachMode::Generic);
    assert_eq!(xdp_on(&ns.link("xbr0")), Some((mode.1, true)));
    ns.run(|| detach_any("xbr0")).expect("detach_any");
    assert_eq!(xdp_on(&ns.link("xbr0")), None);
}
