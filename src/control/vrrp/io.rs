//! The thin I/O shell around [`Machine`]: raw IP-protocol-112 sockets, gratuitous ARPs /
//! unsolicited NAs over AF_PACKET, interface tracking, notify scripts, and the
//! per-instance task on the control thread's tokio runtime.
//!
//! Guarantees: the task never blocks the runtime (sockets are non-blocking, notify
//! scripts run as child processes reaped by their own task); every received packet is
//! either handed to the state machine or counted under one drop reason; at most
//! [`RX_BATCH`] packets are read per wake-up; on shutdown a master sends priority 0 before
//! the task ends. All `unsafe` (libc socket calls) is in this file with `SAFETY` notes.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::codec::{self, AdvertSpec, DropReason, Expect, GROUP_V4, GROUP_V6, PROTO_VRRP};
use super::machine::{Action, Machine, MachineConfig, State};
use super::{VrrpError, VrrpEvent};
use crate::config::VrrpInstance;

/// Packets read per readiness wake-up at most.
pub const RX_BATCH: usize = 64;
/// How often tracked interfaces are polled.
const LINK_POLL: Duration = Duration::from_millis(100);

/// Per-instance counters (exported to Prometheus by the daemon).
#[derive(Debug, Default)]
pub struct VrrpCounters {
    /// Adverts accepted and handed to the state machine.
    pub adverts_rx: AtomicU64,
    /// Adverts sent (each unicast peer counts once).
    pub adverts_tx: AtomicU64,
    /// Sends that failed.
    pub send_errors: AtomicU64,
    /// Gratuitous ARPs and unsolicited NAs sent.
    pub garps_tx: AtomicU64,
    /// State transitions.
    pub transitions: AtomicU64,
    /// Dropped: TTL / hop limit not 255.
    pub bad_ttl: AtomicU64,
    /// Dropped: truncated.
    pub truncated: AtomicU64,
    /// Dropped: wrong version.
    pub bad_version: AtomicU64,
    /// Dropped: not an advertisement.
    pub bad_type: AtomicU64,
    /// Dropped: bad checksum.
    pub bad_checksum: AtomicU64,
    /// Dropped: another VRID.
    pub wrong_vrid: AtomicU64,
    /// Dropped: v2 auth mismatch.
    pub auth_mismatch: AtomicU64,
    /// Dropped: v2 interval mismatch.
    pub interval_mismatch: AtomicU64,
    /// Dropped: address list mismatch.
    pub address_mismatch: AtomicU64,
}

impl VrrpCounters {
    /// The counter of one drop reason.
    pub fn drops(&self, r: DropReason) -> &AtomicU64 {
        match r {
            DropReason::BadTtl => &self.bad_ttl,
            DropReason::Truncated => &self.truncated,
            DropReason::BadVersion => &self.bad_version,
            DropReason::BadType => &self.bad_type,
            DropReason::BadChecksum => &self.bad_checksum,
            DropReason::WrongVrid => &self.wrong_vrid,
            DropReason::AuthMismatch => &self.auth_mismatch,
            DropReason::IntervalMismatch => &self.interval_mismatch,
            DropReason::AddressMismatch => &self.address_mismatch,
        }
    }

    /// Reads one counter.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// A running instance. Dropping it without [`VrrpHandle::shutdown`] aborts the task
/// without a priority-0 advert.
#[derive(Debug)]
pub struct VrrpHandle {
    name: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    counters: Arc<VrrpCounters>,
    state: watch::Receiver<State>,
}

impl VrrpHandle {
    /// The instance name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The current state.
    pub fn state(&self) -> State {
        *self.state.borrow()
    }

    /// The instance's counters.
    pub fn counters(&self) -> Arc<VrrpCounters> {
        self.counters.clone()
    }

    /// Stops the instance: a master sends a priority-0 advert; waits for the task to end.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for VrrpHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Starts one VRRP instance on the current tokio runtime. `vips` are the addresses the
/// instance owns (those of the instance's family are advertised; GARPs / NAs go out for
/// all). Every transition is sent on `events`.
pub fn spawn(
    instance: &VrrpInstance,
    vips: Vec<IpAddr>,
    events: mpsc::Sender<VrrpEvent>,
) -> Result<VrrpHandle, VrrpError> {
    let runner = Runner::new(instance, vips, events)?;
    let counters = runner.counters.clone();
    let (state_tx, state) = watch::channel(State::Initialize);
    let (stop_tx, stop_rx) = oneshot::channel();
    let task = tokio::spawn(runner.run(stop_rx, state_tx));
    Ok(VrrpHandle {
        name: instance.name.clone(),
        stop: Some(stop_tx),
        task: Some(task),
        counters,
        state,
    })
}

/// The address family the instance runs over: that of its unicast addresses, else of
/// its first VIP; v2 is IPv4 only.
pub fn instance_is_ipv4(instance: &VrrpInstance, vips: &[IpAddr]) -> bool {
    if instance.version == 2 {
        return true;
    }
    instance
        .unicast_src_ip
        .or_else(|| instance.unicast_peers.first().copied())
        .or_else(|| vips.first().copied())
        .is_none_or(|a| a.is_ipv4())
}

fn interval_cs(instance: &VrrpInstance) -> u16 {
    let cs = (instance.advert_interval.as_millis() / 10).clamp(1, 4095) as u16;
    if instance.version == 2 {
        // v2 carries whole seconds.
        (cs / 100).max(1) * 100
    } else {
        cs
    }
}

struct Runner {
    name: String,
    cfg: VrrpInstance,
    machine: Machine,
    vips: Vec<IpAddr>,
    family_vips: Vec<IpAddr>,
    events: mpsc::Sender<VrrpEvent>,
    counters: Arc<VrrpCounters>,
    socks: Sockets,
    auth: Option<[u8; 8]>,
    interval_cs: u16,
    links: Vec<(String, bool)>,
    garp_refresh_at: Option<Instant>,
    address_mismatch_logged: bool,
}

impl Runner {
    fn new(
        instance: &VrrpInstance,
        vips: Vec<IpAddr>,
        events: mpsc::Sender<VrrpEvent>,
    ) -> Result<Self, VrrpError> {
        let v4 = instance_is_ipv4(instance, &vips);
        let name = instance.name.clone();
        let ifname = instance.interface.clone();
        let sock_err = |what: &'static str| {
            let (name, ifname) = (name.clone(), ifname.clone());
            move |source: io::Error| VrrpError::Socket {
                instance: name,
                ifname,
                what,
                source,
            }
        };
        let ifindex = sys::ifindex(&ifname).map_err(sock_err("interface index"))?;
        let mac = sys::mac_address(&ifname).map_err(sock_err("interface MAC"))?;
        let src = match instance.unicast_src_ip {
            Some(ip) if ip.is_ipv4() == v4 => ip,
            _ => sys::interface_address(&ifname, v4)
                .map_err(sock_err("interface addresses"))?
                .ok_or_else(|| VrrpError::NoSourceAddress {
                    instance: name.clone(),
                    ifname: ifname.clone(),
                    family: if v4 { "IPv4" } else { "IPv6 link-local" },
                })?,
        };
        let peers: Vec<IpAddr> = instance
            .unicast_peers
            .iter()
            .copied()
            .filter(|p| p.is_ipv4() == v4)
            .collect();
        let socks =
            Sockets::open(&ifname, ifindex, mac, src, peers).map_err(sock_err("VRRP sockets"))?;
        let family_vips: Vec<IpAddr> = vips.iter().copied().filter(|v| v.is_ipv4() == v4).collect();
        let machine = Machine::new(MachineConfig {
            version: instance.version,
            priority: instance.priority,
            advert_interval: Duration::from_millis(u64::from(interval_cs(instance)) * 10),
            preempt: instance.preempt,
            preempt_delay: instance.preempt_delay,
            primary_ip: src,
        });
        let mut links: Vec<(String, bool)> = instance
            .track_interfaces
            .iter()
            .map(|n| (n.clone(), true))
            .collect();
        if links.is_empty() {
            links.push((ifname.clone(), true));
        }
        Ok(Self {
            name,
            machine,
            vips,
            family_vips,
            events,
            counters: Arc::new(VrrpCounters::default()),
            socks,
            auth: instance.auth_pass.as_deref().map(codec::auth_data),
            interval_cs: interval_cs(instance),
            links,
            garp_refresh_at: None,
            address_mismatch_logged: false,
            cfg: instance.clone(),
        })
    }

    fn now() -> std::time::Instant {
        Instant::now().into_std()
    }

    async fn run(mut self, mut stop: oneshot::Receiver<()>, state: watch::Sender<State>) {
        tracing::info!(
            instance = %self.name,
            interface = %self.cfg.interface,
            vrid = self.cfg.vrid,
            priority = self.cfg.priority,
            version = self.cfg.version,
            src = %self.socks.src,
            "VRRP instance starting"
        );
        let now = Self::now();
        for i in 0..self.links.len() {
            let up = sys::link_up(&self.links[i].0).unwrap_or(false);
            self.links[i].1 = up;
            let acts = self.machine.track(now, &self.links[i].0.clone(), up);
            self.execute(acts, &state).await;
        }
        let acts = self.machine.start(Self::now());
        self.execute(acts, &state).await;
        let mut link_tick = tokio::time::interval(LINK_POLL);
        link_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            let deadline = self.machine.deadline().map(Instant::from_std);
            let garp_at = self.garp_refresh_at;
            tokio::select! {
                biased;
                _ = &mut stop => {
                    let acts = self.machine.shutdown(Self::now());
                    self.execute(acts, &state).await;
                    break;
                }
                _ = sleep_until(deadline) => {
                    let acts = self.machine.timer(Self::now());
                    self.execute(acts, &state).await;
                }
                ready = self.socks.rx.readable() => {
                    match ready {
                        Ok(mut guard) => {
                            let adverts = self.socks.receive_batch(&mut guard);
                            for (src, dst, ttl, pkt) in adverts {
                                self.on_packet(src, dst, ttl, &pkt, &state).await;
                            }
                        }
                        Err(e) => {
                            tracing::error!(instance = %self.name, error = %e, "VRRP socket failed");
                            tokio::time::sleep(LINK_POLL).await;
                        }
                    }
                }
                _ = sleep_until(garp_at) => {
                    self.garp_refresh_at = None;
                    if self.machine.state() == State::Master {
                        self.send_garps();
                    }
                }
                _ = link_tick.tick() => {
                    for i in 0..self.links.len() {
                        let up = sys::link_up(&self.links[i].0).unwrap_or(false);
                        if up != self.links[i].1 {
                            self.links[i].1 = up;
                            let name = self.links[i].0.clone();
                            tracing::info!(instance = %self.name, interface = %name, up, "tracked interface changed");
                            let acts = self.machine.track(Self::now(), &name, up);
                            self.execute(acts, &state).await;
                        }
                    }
                }
            }
        }
        tracing::info!(instance = %self.name, "VRRP instance stopped");
    }

    async fn on_packet(
        &mut self,
        src: IpAddr,
        dst: IpAddr,
        ttl: u8,
        pkt: &[u8],
        state: &watch::Sender<State>,
    ) {
        if src == self.socks.src {
            return; // our own advert
        }
        let exp = Expect {
            version: self.cfg.version,
            vrid: self.cfg.vrid,
            auth: self.auth,
            interval_cs: self.interval_cs,
            vips: &self.family_vips,
        };
        match codec::check_advert(pkt, src, dst, ttl, &exp) {
            Ok(adv) => {
                bump(&self.counters.adverts_rx);
                let acts = self.machine.advert(Self::now(), adv);
                self.execute(acts, state).await;
            }
            Err(reason) => {
                bump(self.counters.drops(reason));
                if reason == DropReason::AddressMismatch && !self.address_mismatch_logged {
                    self.address_mismatch_logged = true;
                    tracing::warn!(instance = %self.name, from = %src, "VRRP advert address list differs from ours (dropped; logged once)");
                } else {
                    tracing::debug!(instance = %self.name, from = %src, reason = reason.as_str(), "VRRP packet dropped");
                }
            }
        }
    }

    async fn execute(&mut self, actions: Vec<Action>, state: &watch::Sender<State>) {
        for a in actions {
            match a {
                Action::SendAdvert { priority } => self.send_advert(priority),
                Action::Transition { from, to, reason } => {
                    bump(&self.counters.transitions);
                    tracing::info!(instance = %self.name, %from, %to, %reason, "VRRP transition");
                    let _ = state.send(to);
                    match to {
                        State::Master => {
                            self.send_garps();
                            let delay = self.cfg.garp_master_refresh_delay;
                            self.garp_refresh_at =
                                (!delay.is_zero()).then(|| Instant::now() + delay);
                        }
                        _ => self.garp_refresh_at = None,
                    }
                    let cmd = match to {
                        State::Master => self.cfg.notify.master.clone(),
                        State::Backup => self.cfg.notify.backup.clone(),
                        State::Fault => self.cfg.notify.fault.clone(),
                        State::Initialize => None,
                    };
                    if let Some(cmd) = cmd {
                        run_notify(&cmd, &self.name, to, self.cfg.priority);
                    }
                    let ev = VrrpEvent {
                        instance: self.name.clone(),
                        state: to,
                        reason,
                    };
                    if self.events.send(ev).await.is_err() {
                        tracing::debug!(instance = %self.name, "VRRP event receiver gone");
                    }
                }
                Action::ArmTimer(_) | Action::CancelTimer => {} // the loop reads deadline()
            }
        }
    }

    fn send_advert(&self, priority: u8) {
        let dsts: Vec<IpAddr> = if self.socks.peers.is_empty() {
            vec![if self.socks.src.is_ipv4() {
                IpAddr::V4(GROUP_V4)
            } else {
                IpAddr::V6(GROUP_V6)
            }]
        } else {
            self.socks.peers.clone()
        };
        for dst in dsts {
            let pkt = codec::build_advert(&AdvertSpec {
                version: self.cfg.version,
                vrid: self.cfg.vrid,
                priority,
                interval_cs: self.interval_cs,
                vips: &self.family_vips,
                auth: self.auth,
                src: self.socks.src,
                dst,
                pseudo_header: !self.cfg.v3_checksum_as_v2,
            });
            if pkt.is_empty() {
                // Only for a spec config validation rejects (see codec::build_advert).
                bump(&self.counters.send_errors);
                continue;
            }
            match self.socks.send_to(&pkt, dst) {
                Ok(_) => bump(&self.counters.adverts_tx),
                Err(e) => {
                    bump(&self.counters.send_errors);
                    tracing::debug!(instance = %self.name, %dst, error = %e, "VRRP advert send failed");
                }
            }
        }
    }

    fn send_garps(&self) {
        for _ in 0..self.cfg.garp_master_repeat {
            for vip in &self.vips {
                let r = match vip {
                    IpAddr::V4(a) => self
                        .socks
                        .send_frame(&codec::build_garp(self.socks.mac, *a), 0x0806),
                    IpAddr::V6(a) => self
                        .socks
                        .send_frame(&codec::build_unsolicited_na(self.socks.mac, *a), 0x86dd),
                };
                match r {
                    Ok(_) => bump(&self.counters.garps_tx),
                    Err(e) => {
                        bump(&self.counters.send_errors);
                        tracing::debug!(instance = %self.name, %vip, error = %e, "gratuitous ARP/NA send failed");
                    }
                }
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Runs `<cmd> INSTANCE <name> <STATE> <priority>` through `sh -c`, as keepalived does,
/// without waiting for it; a task reaps it and logs failures.
fn run_notify(cmd: &str, name: &str, state: State, priority: u8) {
    let child = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("{cmd} \"$@\""))
        .arg("xlb-notify")
        .args(["INSTANCE", name, state.as_str(), &priority.to_string()])
        .stdin(std::process::Stdio::null())
        .spawn();
    let name = name.to_string();
    match child {
        Ok(mut child) => {
            tokio::spawn(async move {
                match child.wait().await {
                    Ok(st) if st.success() => {}
                    Ok(st) => {
                        tracing::warn!(instance = %name, %state, status = %st, "notify script failed")
                    }
                    Err(e) => {
                        tracing::warn!(instance = %name, %state, error = %e, "notify script wait failed")
                    }
                }
            });
        }
        Err(e) => {
            tracing::warn!(instance = %name, %state, error = %e, "notify script did not start")
        }
    }
}

/// The sockets of one instance.
struct Sockets {
    /// Receives adverts (joined to the group, bound to the device).
    rx: AsyncFd<OwnedFd>,
    /// Sends adverts from `src`.
    tx: OwnedFd,
    /// AF_PACKET for gratuitous ARPs / NAs.
    packet: OwnedFd,
    ifindex: u32,
    mac: [u8; 6],
    src: IpAddr,
    peers: Vec<IpAddr>,
}

type Received = (IpAddr, IpAddr, u8, Vec<u8>);

impl Sockets {
    fn open(
        ifname: &str,
        ifindex: u32,
        mac: [u8; 6],
        src: IpAddr,
        peers: Vec<IpAddr>,
    ) -> io::Result<Self> {
        let v4 = src.is_ipv4();
        let rx = sys::raw_socket(v4)?;
        sys::bind_device(&rx, ifname)?;
        let tx = sys::raw_socket(v4)?;
        sys::bind_device(&tx, ifname)?;
        if v4 {
            sys::join_v4(&rx, ifindex)?;
            sys::set_int(&tx, libc::IPPROTO_IP, libc::IP_MULTICAST_TTL, 255)?;
            sys::set_int(&tx, libc::IPPROTO_IP, libc::IP_TTL, 255)?;
            sys::set_int(&tx, libc::IPPROTO_IP, libc::IP_TOS, i32::from(codec::TOS))?;
            sys::set_int(&tx, libc::IPPROTO_IP, libc::IP_MULTICAST_LOOP, 0)?;
            sys::multicast_if_v4(&tx, ifindex)?;
        } else {
            sys::join_v6(&rx, ifindex)?;
            sys::set_int(&rx, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT, 1)?;
            sys::set_int(&rx, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1)?;
            sys::set_int(&tx, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS, 255)?;
            sys::set_int(&tx, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, 255)?;
            sys::set_int(
                &tx,
                libc::IPPROTO_IPV6,
                libc::IPV6_TCLASS,
                i32::from(codec::TOS),
            )?;
            sys::set_int(&tx, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_LOOP, 0)?;
            sys::set_int(
                &tx,
                libc::IPPROTO_IPV6,
                libc::IPV6_MULTICAST_IF,
                ifindex as i32,
            )?;
        }
        // The send socket would also queue unicast adverts to `src`: keep its buffer small.
        sys::set_int(&tx, libc::SOL_SOCKET, libc::SO_RCVBUF, 256)?;
        sys::bind_addr(&tx, src, ifindex)?;
        let packet = sys::packet_socket()?;
        Ok(Self {
            // SAFETY: `rx` is an OwnedFd moved into the AsyncFd, so its descriptor stays
            // open and the same until the AsyncFd is dropped.
            rx: unsafe { AsyncFd::register(rx) }.map_err(io::Error::from)?,
            tx,
            packet,
            ifindex,
            mac,
            src,
            peers,
        })
    }

    fn receive_batch(
        &self,
        guard: &mut tokio::io::unix::AsyncFdReadyGuard<'_, OwnedFd>,
    ) -> Vec<Received> {
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        for _ in 0..RX_BATCH {
            let fd = self.rx.get_ref().as_raw_fd();
            let r = if self.src.is_ipv4() {
                sys::recv(fd, &mut buf).map(|n| parse_ipv4(&buf[..n]))
            } else {
                sys::recv_v6(fd, &mut buf).map(|(n, src, dst, hops)| {
                    Some((IpAddr::V6(src), IpAddr::V6(dst), hops, buf[..n].to_vec()))
                })
            };
            match r {
                Ok(Some(p)) => out.push(p),
                Ok(None) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    guard.clear_ready();
                    return out;
                }
                Err(_) => return out,
            }
        }
        out
    }

    fn send_to(&self, pkt: &[u8], dst: IpAddr) -> io::Result<usize> {
        sys::send_to(&self.tx, pkt, dst, self.ifindex)
    }

    fn send_frame(&self, frame: &[u8], ethertype: u16) -> io::Result<usize> {
        sys::send_frame(&self.packet, frame, self.ifindex, ethertype)
    }
}

/// Splits an IPv4 packet as a raw socket delivers it (header included).
fn parse_ipv4(p: &[u8]) -> Option<Received> {
    if p.len() < 20 || p[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(p[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([p[2], p[3]])).min(p.len());
    if ihl < 20 || total < ihl || p[9] != PROTO_VRRP {
        return None;
    }
    let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
    let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
    Some((src.into(), dst.into(), p[8], p[ihl..total].to_vec()))
}

/// Thin libc wrappers.
mod sys {
    use super::*;

    fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r)
        }
    }

    fn cvt_size(r: libc::ssize_t) -> io::Result<usize> {
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r as usize)
        }
    }

    /// The interface index ([`crate::control::netlink::ifindex`]) as an `io::Result`.
    pub fn ifindex(ifname: &str) -> io::Result<u32> {
        crate::control::netlink::ifindex(ifname)
            .map_err(|e| io::Error::new(io::ErrorKind::NotFound, e.to_string()))
    }

    fn ifreq(ifname: &str) -> io::Result<libc::ifreq> {
        // SAFETY: ifreq is plain old data; all-zero is a valid value.
        let mut req: libc::ifreq = unsafe { zeroed() };
        let b = ifname.as_bytes();
        if b.len() >= req.ifr_name.len() {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        for (d, s) in req.ifr_name.iter_mut().zip(b) {
            *d = *s as libc::c_char;
        }
        Ok(req)
    }

    fn ioctl_socket() -> io::Result<OwnedFd> {
        // SAFETY: plain socket(2) call; the result is checked before use.
        let fd =
            cvt(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
        // SAFETY: `fd` is a fresh descriptor we own.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// The MAC address by SIOCGIFHWADDR (works in the calling thread's namespace, unlike sysfs).
    pub fn mac_address(ifname: &str) -> io::Result<[u8; 6]> {
        let s = ioctl_socket()?;
        let mut req = ifreq(ifname)?;
        // SAFETY: SIOCGIFHWADDR reads the name and writes the union of `req`, which lives
        // for the call.
        cvt(unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req) })?;
        // SAFETY: after SIOCGIFHWADDR the union holds `ifru_hwaddr`.
        let sa = unsafe { req.ifr_ifru.ifru_hwaddr };
        let mut mac = [0u8; 6];
        for (m, b) in mac.iter_mut().zip(sa.sa_data.iter()) {
            *m = *b as u8;
        }
        Ok(mac)
    }

    /// Whether the interface is administratively up and has carrier (IFF_UP and IFF_RUNNING).
    pub fn link_up(ifname: &str) -> io::Result<bool> {
        let s = ioctl_socket()?;
        let mut req = ifreq(ifname)?;
        // SAFETY: SIOCGIFFLAGS reads the name and writes the flags of `req`.
        cvt(unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) })?;
        // SAFETY: after SIOCGIFFLAGS the union holds `ifru_flags`.
        let flags = i32::from(unsafe { req.ifr_ifru.ifru_flags });
        Ok(flags & libc::IFF_UP != 0 && flags & libc::IFF_RUNNING != 0)
    }

    /// The interface's first IPv4 address, or (IPv6) its link-local address.
    pub fn interface_address(ifname: &str, v4: bool) -> io::Result<Option<IpAddr>> {
        let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
        // SAFETY: getifaddrs fills `head` with a list we free below.
        cvt(unsafe { libc::getifaddrs(&mut head) })?;
        let mut found = None;
        let mut cur = head;
        let mut guard = 0;
        while !cur.is_null() && guard < 100_000 {
            guard += 1;
            // SAFETY: `cur` is a node of the list returned by getifaddrs, not yet freed.
            let ifa = unsafe { &*cur };
            cur = ifa.ifa_next;
            if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
                continue;
            }
            // SAFETY: ifa_name is a NUL-terminated string owned by the list.
            let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) };
            if name.to_bytes() != ifname.as_bytes() {
                continue;
            }
            // SAFETY: ifa_addr is non-null and points to a sockaddr of its family.
            let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
            if v4 && family == libc::AF_INET {
                // SAFETY: family AF_INET means the address is a sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                found = Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                    sin.sin_addr.s_addr,
                ))));
                break;
            }
            if !v4 && family == libc::AF_INET6 {
                // SAFETY: family AF_INET6 means the address is a sockaddr_in6.
                let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                let a = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                if a.segments()[0] & 0xffc0 == 0xfe80 {
                    found = Some(IpAddr::V6(a));
                    break;
                }
            }
        }
        // SAFETY: `head` came from getifaddrs and is freed once.
        unsafe { libc::freeifaddrs(head) };
        Ok(found)
    }

    pub fn raw_socket(v4: bool) -> io::Result<OwnedFd> {
        let family = if v4 { libc::AF_INET } else { libc::AF_INET6 };
        let ty = libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
        // SAFETY: plain socket(2) call; the result is checked before use.
        let fd = cvt(unsafe { libc::socket(family, ty, i32::from(PROTO_VRRP)) })?;
        // SAFETY: `fd` is a fresh descriptor we own.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    pub fn packet_socket() -> io::Result<OwnedFd> {
        // Protocol 0: this socket receives nothing, it only sends.
        let ty = libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
        // SAFETY: plain socket(2) call; the result is checked before use.
        let fd = cvt(unsafe { libc::socket(libc::AF_PACKET, ty, 0) })?;
        // SAFETY: `fd` is a fresh descriptor we own.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    fn setsockopt<T>(fd: &OwnedFd, level: i32, name: i32, val: &T) -> io::Result<()> {
        // SAFETY: `val` points to a live T of the given size for the duration of the call.
        cvt(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                level,
                name,
                (val as *const T).cast(),
                size_of::<T>() as libc::socklen_t,
            )
        })
        .map(drop)
    }

    pub fn set_int(fd: &OwnedFd, level: i32, name: i32, v: i32) -> io::Result<()> {
        setsockopt(fd, level, name, &v)
    }

    pub fn bind_device(fd: &OwnedFd, ifname: &str) -> io::Result<()> {
        let b = ifname.as_bytes();
        // SAFETY: `b` is valid for b.len() bytes for the duration of the call.
        cvt(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_BINDTODEVICE,
                b.as_ptr().cast(),
                b.len() as libc::socklen_t,
            )
        })
        .map(drop)
    }

    fn mreqn(ifindex: u32, group: Ipv4Addr) -> libc::ip_mreqn {
        libc::ip_mreqn {
            imr_multiaddr: libc::in_addr {
                s_addr: u32::from(group).to_be(),
            },
            imr_address: libc::in_addr { s_addr: 0 },
            imr_ifindex: ifindex as i32,
        }
    }

    pub fn join_v4(fd: &OwnedFd, ifindex: u32) -> io::Result<()> {
        setsockopt(
            fd,
            libc::IPPROTO_IP,
            libc::IP_ADD_MEMBERSHIP,
            &mreqn(ifindex, GROUP_V4),
        )
    }

    pub fn multicast_if_v4(fd: &OwnedFd, ifindex: u32) -> io::Result<()> {
        setsockopt(
            fd,
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_IF,
            &mreqn(ifindex, Ipv4Addr::UNSPECIFIED),
        )
    }

    pub fn join_v6(fd: &OwnedFd, ifindex: u32) -> io::Result<()> {
        let m = libc::ipv6_mreq {
            ipv6mr_multiaddr: libc::in6_addr {
                s6_addr: GROUP_V6.octets(),
            },
            ipv6mr_interface: ifindex,
        };
        setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_ADD_MEMBERSHIP, &m)
    }

    fn sockaddr(ip: IpAddr, ifindex: u32) -> (libc::sockaddr_storage, libc::socklen_t) {
        // SAFETY: sockaddr_storage is plain old data; all-zero is valid.
        let mut ss: libc::sockaddr_storage = unsafe { zeroed() };
        let len = match ip {
            IpAddr::V4(a) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: 0,
                    sin_addr: libc::in_addr {
                        s_addr: u32::from(a).to_be(),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
                unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin) };
                size_of::<libc::sockaddr_in>()
            }
            IpAddr::V6(a) => {
                let link_scoped =
                    a.segments()[0] & 0xffc0 == 0xfe80 || a.segments()[0] & 0xff0f == 0xff02;
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: 0,
                    sin6_flowinfo: 0,
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.octets(),
                    },
                    sin6_scope_id: if link_scoped { ifindex } else { 0 },
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
                unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin6) };
                size_of::<libc::sockaddr_in6>()
            }
        };
        (ss, len as libc::socklen_t)
    }

    pub fn bind_addr(fd: &OwnedFd, ip: IpAddr, ifindex: u32) -> io::Result<()> {
        let (ss, len) = sockaddr(ip, ifindex);
        // SAFETY: `ss` holds a valid sockaddr of `len` bytes.
        cvt(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&ss as *const libc::sockaddr_storage).cast(),
                len,
            )
        })
        .map(drop)
    }

    pub fn send_to(fd: &OwnedFd, pkt: &[u8], dst: IpAddr, ifindex: u32) -> io::Result<usize> {
        let (ss, len) = sockaddr(dst, ifindex);
        // SAFETY: `pkt` is valid for its length; `ss` holds a valid sockaddr of `len` bytes.
        cvt_size(unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                pkt.as_ptr().cast(),
                pkt.len(),
                0,
                (&ss as *const libc::sockaddr_storage).cast(),
                len,
            )
        })
    }

    pub fn send_frame(
        fd: &OwnedFd,
        frame: &[u8],
        ifindex: u32,
        ethertype: u16,
    ) -> io::Result<usize> {
        // SAFETY: sockaddr_ll is plain old data; all-zero is valid.
        let mut ll: libc::sockaddr_ll = unsafe { zeroed() };
        ll.sll_family = libc::AF_PACKET as u16;
        ll.sll_protocol = ethertype.to_be();
        ll.sll_ifindex = ifindex as i32;
        ll.sll_halen = 6;
        for (d, s) in ll.sll_addr.iter_mut().zip(frame.iter().take(6)) {
            *d = *s;
        }
        // SAFETY: `frame` is valid for its length; `ll` is a valid sockaddr_ll.
        cvt_size(unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&ll as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })
    }

    pub fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: `buf` is valid for writes of its length.
        cvt_size(unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) })
    }

    /// recvmsg on an IPv6 raw socket: length, source, destination (IPV6_PKTINFO, else the
    /// VRRP group) and hop limit (IPV6_HOPLIMIT, else 0 so that the packet is dropped).
    pub fn recv_v6(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, Ipv6Addr, Ipv6Addr, u8)> {
        // SAFETY: plain old data; all-zero is valid.
        let mut from: libc::sockaddr_in6 = unsafe { zeroed() };
        let mut cbuf = [0u64; 16];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: plain old data; all-zero is valid.
        let mut msg: libc::msghdr = unsafe { zeroed() };
        msg.msg_name = (&mut from as *mut libc::sockaddr_in6).cast();
        msg.msg_namelen = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&cbuf);
        // SAFETY: every pointer in `msg` refers to live buffers of the stated sizes.
        let n = cvt_size(unsafe { libc::recvmsg(fd, &mut msg, 0) })?;
        let (mut dst, mut hops) = (GROUP_V6, 0u8);
        // SAFETY: the CMSG_* macros walk the control buffer the kernel filled, bounded by
        // msg_controllen; data is read unaligned.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                let h = &*c;
                if h.cmsg_level == libc::IPPROTO_IPV6 && h.cmsg_type == libc::IPV6_HOPLIMIT {
                    let v: i32 = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                    hops = v.clamp(0, 255) as u8;
                } else if h.cmsg_level == libc::IPPROTO_IPV6 && h.cmsg_type == libc::IPV6_PKTINFO {
                    let p: libc::in6_pktinfo = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                    dst = Ipv6Addr::from(p.ipi6_addr.s6_addr);
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        Ok((
            n.min(buf.len()),
            Ipv6Addr::from(from.sin6_addr.s6_addr),
            dst,
            hops,
        ))
    }
}
