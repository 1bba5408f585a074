//! The XDP program's loader and maps: loads `bpf/xlb.bpf.c` (compiled by build.rs into a
//! libbpf-cargo skeleton), attaches it to an interface, and fills its maps.
//!
//! Guarantees:
//! - Map keys and values are the types libbpf-cargo generated from the C headers
//!   (`bpf/xlb_shared.h`); nothing here repeats a C struct by hand.
//! - [`XdpProgram::attach`] replaces whatever XDP program is on the interface (a crashed
//!   xlb's leftover) in either mode, and falls back from native to generic mode with one
//!   `warn!` line. [`XdpProgram::detach`] (and `Drop`) removes only our own program.
//! - [`XdpProgram::set_services`] makes the `services` and `vips` maps equal to the given
//!   set (new entries are written before stale ones are removed).
//! - The control plane calls [`XdpProgram::touch`] periodically: if it stops (xlb died
//!   without detaching) for longer than [`XdpProgram::set_stale_after`], the XDP program
//!   drops VIP traffic and ARP/NS for VIPs instead of letting the kernel answer (DESIGN §2).
//! - `XdpProgram` holds only file descriptors, so it is `Send + Sync`.
//!
//! The `unsafe` here is limited to three thin FFI calls (`clock_gettime`,
//! `bpf_xdp_detach`, `bpf_prog_test_run_opts`) and the byte views of the generated
//! plain-old-data map types, each with a `// SAFETY:` comment.

use std::collections::{HashMap, HashSet};
use std::mem::{size_of, MaybeUninit};
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::Mutex;
use std::time::Duration;

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{libbpf_sys, MapCore, MapFlags, MapHandle, Xdp, XdpFlags};
use thiserror::Error;
use tracing::{info, warn};

#[allow(
    clippy::all,
    clippy::pedantic,
    missing_docs,
    non_camel_case_types,
    non_snake_case,
    dead_code,
    unused_imports,
    unreachable_pub
)]
mod skel {
    include!(concat!(env!("OUT_DIR"), "/xlb.skel.rs"));
}

use skel::types;

/// `IPPROTO_TCP`, the `proto` of a TCP service.
pub const PROTO_TCP: u8 = libc::IPPROTO_TCP as u8;
/// `IPPROTO_UDP`, the `proto` of a UDP service.
pub const PROTO_UDP: u8 = libc::IPPROTO_UDP as u8;

/// XDP actions as returned by [`XdpProgram::test_run`].
pub const XDP_ABORTED: u32 = libbpf_sys::XDP_ABORTED;
/// See [`XDP_ABORTED`].
pub const XDP_DROP: u32 = libbpf_sys::XDP_DROP;
/// See [`XDP_ABORTED`].
pub const XDP_PASS: u32 = libbpf_sys::XDP_PASS;
/// See [`XDP_ABORTED`].
pub const XDP_TX: u32 = libbpf_sys::XDP_TX;
/// See [`XDP_ABORTED`].
pub const XDP_REDIRECT: u32 = libbpf_sys::XDP_REDIRECT;

/// Liveness timeout set at load time (the C side uses the same default when it is 0).
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(1);

/// Errors of the XDP loader.
#[derive(Debug, Error)]
pub enum BpfError {
    /// Opening, loading or verifying the BPF object failed.
    #[error("loading the XDP program failed: {0}")]
    Load(#[source] libbpf_rs::Error),
    /// No interface of that name in the current network namespace.
    #[error("no network interface named {0:?}")]
    NoSuchInterface(String),
    /// Attaching in the given mode failed (after the native-to-generic fallback, if any).
    #[error("attaching XDP to {ifname} in {mode:?} mode failed: {source}")]
    Attach {
        /// Interface name.
        ifname: String,
        /// The mode that failed last.
        mode: AttachMode,
        /// libbpf's error.
        #[source]
        source: libbpf_rs::Error,
    },
    /// Removing an XDP program from an interface failed.
    #[error("detaching XDP from {ifname}: {source}")]
    Detach {
        /// Interface name.
        ifname: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A map operation failed.
    #[error("BPF map {map}: {source}")]
    Map {
        /// Map name.
        map: &'static str,
        /// libbpf's error.
        #[source]
        source: libbpf_rs::Error,
    },
    /// A map returned a value of an unexpected size (would mean a skeleton mismatch).
    #[error("BPF map {0}: value of unexpected size")]
    ValueSize(&'static str),
    /// A service with a protocol other than TCP or UDP.
    #[error("service {addr} port {port}: protocol {proto} is neither TCP (6) nor UDP (17)")]
    UnsupportedProto {
        /// VIP.
        addr: IpAddr,
        /// Port.
        port: u16,
        /// Protocol number.
        proto: u8,
    },
    /// The same (VIP, port, protocol) twice.
    #[error("service {addr} port {port} protocol {proto} given twice")]
    DuplicateService {
        /// VIP.
        addr: IpAddr,
        /// Port.
        port: u16,
        /// Protocol number.
        proto: u8,
    },
    /// More services (or VIPs) than the map holds.
    #[error("{count} {what} exceed the XDP map capacity of {max}")]
    TooMany {
        /// "services" or "VIPs".
        what: &'static str,
        /// How many were given.
        count: usize,
        /// Map capacity.
        max: u32,
    },
    /// `BPF_PROG_TEST_RUN` failed.
    #[error("BPF_PROG_TEST_RUN: {0}")]
    TestRun(#[source] std::io::Error),
    /// Reading the clock failed.
    #[error("clock_gettime(CLOCK_MONOTONIC): {0}")]
    Clock(#[source] std::io::Error),
}

/// How the program is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachMode {
    /// Driver (native) XDP.
    Native,
    /// Generic (SKB) XDP.
    Generic,
}

impl AttachMode {
    fn flags(self) -> XdpFlags {
        match self {
            AttachMode::Native => XdpFlags::DRV_MODE,
            AttachMode::Generic => XdpFlags::SKB_MODE,
        }
    }

    fn other(self) -> AttachMode {
        match self {
            AttachMode::Native => AttachMode::Generic,
            AttachMode::Generic => AttachMode::Native,
        }
    }
}

/// The XDP program's counters, summed over CPUs. Every frame the program saw counts in
/// exactly one of the verdict fields (all but `irregular`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XdpStats {
    /// Redirected to the AF_XDP socket of the frame's rx queue.
    pub redirected: u64,
    /// Not for a VIP protocol of ours (or ARP/NS while alive): passed to the kernel.
    pub passed: u64,
    /// Would have been redirected, but no socket is bound on that queue: passed.
    pub no_socket: u64,
    /// For a VIP protocol while the director is not active: passed.
    pub inactive: u64,
    /// For a VIP protocol on a port with no service (e.g. ssh to the VIP): passed.
    pub no_service: u64,
    /// For a VIP protocol while the control plane was stale: dropped.
    pub dropped_stale: u64,
    /// ARP request or Neighbor Solicitation for a VIP while stale: dropped.
    pub dropped_nd_stale: u64,
    /// Not a verdict: fragments and truncated/malformed frames sent on towards userspace
    /// without a port lookup (they also count as `redirected` or `no_socket`).
    pub irregular: u64,
}

impl XdpStats {
    /// Frames seen: the sum of the verdict counters.
    pub fn total(&self) -> u64 {
        self.redirected
            + self.passed
            + self.no_socket
            + self.inactive
            + self.no_service
            + self.dropped_stale
            + self.dropped_nd_stale
    }

    fn add(&mut self, s: &types::xlb_stats) {
        self.redirected += s.redirected;
        self.passed += s.passed;
        self.no_socket += s.no_socket;
        self.inactive += s.inactive;
        self.no_service += s.no_service;
        self.dropped_stale += s.dropped_stale;
        self.dropped_nd_stale += s.dropped_nd_stale;
        self.irregular += s.irregular;
    }
}

/// The loaded XDP program and its maps.
#[derive(Debug)]
pub struct XdpProgram {
    prog: OwnedFd,
    prog_id: u32,
    xsks: MapHandle,
    services: MapHandle,
    vips: MapHandle,
    ctl: MapHandle,
    stats: MapHandle,
    /// Shadow of `ctl[0]`; the map is always written whole from it.
    ctl_state: Mutex<types::xlb_ctl>,
    attached: Option<Attached>,
}

#[derive(Debug, Clone)]
struct Attached {
    ifname: String,
    ifindex: i32,
    mode: AttachMode,
}

impl XdpProgram {
    /// Loads the program (not attached) — used by tests with BPF_PROG_TEST_RUN too.
    /// The director starts inactive, never touched (so never stale) and with
    /// [`DEFAULT_STALE_AFTER`].
    pub fn load() -> Result<Self, BpfError> {
        let mut object = MaybeUninit::uninit();
        let open = skel::XlbSkelBuilder::default()
            .open(&mut object)
            .map_err(BpfError::Load)?;
        let skel = open.load().map_err(BpfError::Load)?;
        let handle = |map: &libbpf_rs::MapMut<'_>, name: &'static str| {
            MapHandle::try_from(map).map_err(|source| BpfError::Map { map: name, source })
        };
        let prog = skel
            .progs
            .xlb_xdp
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| BpfError::Load(e.into()))?;
        let prog_id = libbpf_rs::Program::id_from_fd(prog.as_fd()).map_err(BpfError::Load)?;
        let this = XdpProgram {
            prog,
            prog_id,
            xsks: handle(&skel.maps.xsks, "xsks")?,
            services: handle(&skel.maps.services, "services")?,
            vips: handle(&skel.maps.vips, "vips")?,
            ctl: handle(&skel.maps.ctl, "ctl")?,
            stats: handle(&skel.maps.stats, "stats")?,
            ctl_state: Mutex::new(types::xlb_ctl::default()),
            attached: None,
        };
        // The duplicated descriptors keep the program and maps alive; the skeleton (and
        // the libbpf object it owns) is dropped here.
        drop(skel);
        this.set_stale_after(DEFAULT_STALE_AFTER)?;
        Ok(this)
    }

    /// The kernel's id of the loaded program (as `ip link` and `bpftool` show it).
    pub fn id(&self) -> u32 {
        self.prog_id
    }

    /// Attach to `ifname`: the XDP program already on the interface in the other mode (a
    /// crashed xlb's leftover) is detached first, one in the same mode is replaced
    /// atomically; then attach in `mode`. If Native fails, falls back to Generic with one
    /// `warn!` line. Returns the mode used.
    pub fn attach(&mut self, ifname: &str, mode: AttachMode) -> Result<AttachMode, BpfError> {
        if self.attached.is_some() {
            self.detach()?;
        }
        let ifindex = ifindex(ifname)?;
        let xdp = Xdp::new(self.prog.as_fd());
        detach_mode(ifname, ifindex, mode.other())?;
        let used = match xdp.attach(ifindex, mode.flags()) {
            Ok(()) => mode,
            Err(err) if mode == AttachMode::Native => {
                warn!(
                    ifname,
                    error = %err,
                    "native XDP attach failed; falling back to generic (SKB) mode, which is slower"
                );
                detach_mode(ifname, ifindex, AttachMode::Native)?;
                xdp.attach(ifindex, AttachMode::Generic.flags())
                    .map_err(|source| BpfError::Attach {
                        ifname: ifname.to_owned(),
                        mode: AttachMode::Generic,
                        source,
                    })?;
                AttachMode::Generic
            }
            Err(source) => {
                return Err(BpfError::Attach {
                    ifname: ifname.to_owned(),
                    mode,
                    source,
                })
            }
        };
        info!(ifname, mode = ?used, prog_id = self.prog_id, "XDP program attached");
        self.attached = Some(Attached {
            ifname: ifname.to_owned(),
            ifindex,
            mode: used,
        });
        Ok(used)
    }

    /// Detaches the program if it is still the one on the interface (another program that
    /// replaced it meanwhile is left alone). Does nothing when not attached.
    pub fn detach(&mut self) -> Result<(), BpfError> {
        let Some(att) = self.attached.take() else {
            return Ok(());
        };
        let xdp = Xdp::new(self.prog.as_fd());
        match xdp.query_id(att.ifindex, att.mode.flags()) {
            Ok(id) if id == self.prog_id => detach_mode(&att.ifname, att.ifindex, att.mode),
            Ok(_) => Ok(()),
            // The interface is gone (or its namespace): nothing left to detach.
            Err(_) if ifindex(&att.ifname).is_err() => Ok(()),
            Err(err) => Err(BpfError::Detach {
                ifname: att.ifname,
                source: std::io::Error::other(err),
            }),
        }
    }

    /// Replaces the whole service set with `services` (VIP, port or 0 for every port,
    /// protocol [`PROTO_TCP`] or [`PROTO_UDP`], service id), and the `vips` map with the
    /// VIPs and protocols they use. Keys no longer wanted are removed after the new ones
    /// are written. IPv4 VIPs are stored IPv4-mapped.
    pub fn set_services(&self, services: &[(IpAddr, u16, u8, u32)]) -> Result<(), BpfError> {
        let mut svc: HashMap<Vec<u8>, types::xlb_svc_val> = HashMap::new();
        let mut vip: HashMap<[u8; 16], types::xlb_vip_val> = HashMap::new();
        for &(addr, port, proto, id) in services {
            let v = vip.entry(mapped(addr)).or_default();
            match proto {
                PROTO_TCP => v.tcp = 1,
                PROTO_UDP => v.udp = 1,
                _ => return Err(BpfError::UnsupportedProto { addr, port, proto }),
            }
            let key = types::xlb_svc_key {
                addr: mapped(addr),
                port,
                proto,
                pad: 0,
            };
            let val = types::xlb_svc_val { id, flags: 0 };
            if svc.insert(bytes_of(&key).to_vec(), val).is_some() {
                return Err(BpfError::DuplicateService { addr, port, proto });
            }
        }
        let max = self.services.max_entries();
        if svc.len() > max as usize {
            return Err(BpfError::TooMany {
                what: "services",
                count: svc.len(),
                max,
            });
        }
        let max = self.vips.max_entries();
        if vip.len() > max as usize {
            return Err(BpfError::TooMany {
                what: "VIPs",
                count: vip.len(),
                max,
            });
        }
        let vip: HashMap<Vec<u8>, types::xlb_vip_val> = vip
            .into_iter()
            .map(|(addr, v)| (bytes_of(&types::xlb_vip_key { addr }).to_vec(), v))
            .collect();

        // Write first (a VIP gains its protocols before its services appear), then remove
        // stale services before stale VIPs. Each step on its own is consistent for the
        // program: a VIP without a matching service is passed.
        for (k, v) in &vip {
            update(&self.vips, "vips", k, bytes_of(v))?;
        }
        for (k, v) in &svc {
            update(&self.services, "services", k, bytes_of(v))?;
        }
        remove_except(&self.services, "services", &svc.keys().cloned().collect())?;
        remove_except(&self.vips, "vips", &vip.keys().cloned().collect())?;
        Ok(())
    }

    /// Whether this director serves the VIPs (VRRP master, or no VRRP).
    pub fn set_active(&self, active: bool) -> Result<(), BpfError> {
        self.write_ctl(|c| c.active = u32::from(active))
    }

    /// Whether a service frame on an rx queue without an AF_XDP socket is dropped (true)
    /// or passed to the kernel (false, the default). The daemon sets it: its sockets close
    /// the instant it is killed, before the liveness stamp goes stale, and a passed frame
    /// makes the kernel answer for the VIP (RST, port unreachable).
    pub fn set_drop_unbound(&self, drop: bool) -> Result<(), BpfError> {
        self.write_ctl(|c| c.flags = u32::from(drop))
    }

    /// Refreshes the liveness stamp: `stamp_ns` = CLOCK_MONOTONIC now (the clock of
    /// `bpf_ktime_get_ns`). Call it well within [`XdpProgram::set_stale_after`].
    pub fn touch(&self) -> Result<(), BpfError> {
        let now = monotonic_ns()?;
        self.write_ctl(|c| c.stamp_ns = now)
    }

    /// Sets the liveness stamp as if the last [`XdpProgram::touch`] had been `ago` before
    /// now (tests and tools; the program reads a coarse clock, a few ms behind, so a
    /// stamp meant to be stale must lie further in the past than that).
    pub fn touch_ago(&self, ago: Duration) -> Result<(), BpfError> {
        let ago = u64::try_from(ago.as_nanos()).unwrap_or(u64::MAX);
        let now = monotonic_ns()?;
        self.write_ctl(|c| c.stamp_ns = now.saturating_sub(ago).max(1))
    }

    /// How long after the last [`XdpProgram::touch`] the program considers xlb dead and
    /// drops VIP traffic. `Duration::ZERO` means the C default (1 s).
    pub fn set_stale_after(&self, d: Duration) -> Result<(), BpfError> {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.write_ctl(|c| c.stale_ns = ns)
    }

    /// Binds the AF_XDP socket `fd` to rx queue `queue` in the XSKMAP.
    pub fn register_xsk(&self, queue: u32, fd: RawFd) -> Result<(), BpfError> {
        update(&self.xsks, "xsks", &queue.to_ne_bytes(), &fd.to_ne_bytes())
    }

    /// Removes the socket of rx queue `queue` from the XSKMAP (no error if none).
    pub fn unregister_xsk(&self, queue: u32) -> Result<(), BpfError> {
        match self.xsks.delete(&queue.to_ne_bytes()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(BpfError::Map {
                map: "xsks",
                source,
            }),
        }
    }

    /// The program's counters, summed over CPUs.
    pub fn stats(&self) -> Result<XdpStats, BpfError> {
        let per_cpu = self
            .stats
            .lookup_percpu(&0u32.to_ne_bytes(), MapFlags::ANY)
            .map_err(|source| BpfError::Map {
                map: "stats",
                source,
            })?
            .unwrap_or_default();
        let mut sum = XdpStats::default();
        for bytes in &per_cpu {
            let s: types::xlb_stats = from_bytes(bytes).ok_or(BpfError::ValueSize("stats"))?;
            sum.add(&s);
        }
        Ok(sum)
    }

    /// Runs the program once on `frame` with BPF_PROG_TEST_RUN and returns its XDP action.
    /// The kernel accepts `rx_queue` 0 only: another queue index needs a real ingress
    /// device and fails with `EINVAL`. The frame itself is not redirected or sent.
    pub fn test_run(&self, frame: &[u8], rx_queue: u32) -> Result<u32, BpfError> {
        let mut ctx = types::xdp_md {
            data: 0,
            data_end: u32::try_from(frame.len())
                .map_err(|_| BpfError::TestRun(std::io::Error::from_raw_os_error(libc::E2BIG)))?,
            rx_queue_index: rx_queue,
            ..Default::default()
        };
        let mut opts = libbpf_sys::bpf_test_run_opts {
            sz: size_of::<libbpf_sys::bpf_test_run_opts>() as libbpf_sys::size_t,
            data_in: frame.as_ptr().cast(),
            data_size_in: ctx.data_end,
            ctx_in: std::ptr::addr_of!(ctx).cast(),
            ctx_size_in: size_of::<types::xdp_md>() as u32,
            ctx_out: std::ptr::addr_of_mut!(ctx).cast(),
            ctx_size_out: size_of::<types::xdp_md>() as u32,
            repeat: 1,
            ..Default::default()
        };
        // SAFETY: `opts` is a properly sized bpf_test_run_opts; data_in points to
        // `frame.len()` readable bytes, ctx_in/ctx_out to `ctx` (an xdp_md, the size given),
        // and data_out is null, so the kernel writes only into `ctx`. All outlive the call.
        let rc = unsafe { libbpf_sys::bpf_prog_test_run_opts(self.prog.as_raw_fd(), &mut opts) };
        if rc < 0 {
            return Err(BpfError::TestRun(std::io::Error::from_raw_os_error(-rc)));
        }
        Ok(opts.retval)
    }

    fn write_ctl(&self, f: impl FnOnce(&mut types::xlb_ctl)) -> Result<(), BpfError> {
        let mut state = self.ctl_state.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = *state;
        f(&mut next);
        update(&self.ctl, "ctl", &0u32.to_ne_bytes(), bytes_of(&next))?;
        *state = next;
        Ok(())
    }
}

impl Drop for XdpProgram {
    fn drop(&mut self) {
        if let Err(err) = self.detach() {
            warn!(error = %err, "detaching the XDP program on drop failed");
        }
    }
}

/// Detach whatever XDP program is on `ifname` (both modes); used at start-up and by tests.
pub fn detach_any(ifname: &str) -> Result<(), BpfError> {
    let ifindex = ifindex(ifname)?;
    detach_mode(ifname, ifindex, AttachMode::Native)?;
    detach_mode(ifname, ifindex, AttachMode::Generic)
}

fn detach_mode(ifname: &str, ifindex: i32, mode: AttachMode) -> Result<(), BpfError> {
    // SAFETY: plain FFI call; a null opts pointer is allowed by libbpf.
    let rc = unsafe { libbpf_sys::bpf_xdp_detach(ifindex, mode.flags().bits(), std::ptr::null()) };
    match rc {
        0 => Ok(()),
        // Native detach on a device without driver XDP: nothing can be attached there.
        rc if -rc == libc::EOPNOTSUPP && mode == AttachMode::Native => Ok(()),
        rc => Err(BpfError::Detach {
            ifname: ifname.to_owned(),
            source: std::io::Error::from_raw_os_error(-rc),
        }),
    }
}

fn ifindex(ifname: &str) -> Result<i32, BpfError> {
    crate::control::netlink::ifindex(ifname)
        .ok()
        .and_then(|idx| i32::try_from(idx).ok())
        .ok_or_else(|| BpfError::NoSuchInterface(ifname.to_owned()))
}

fn monotonic_ns() -> Result<u64, BpfError> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) } != 0 {
        return Err(BpfError::Clock(std::io::Error::last_os_error()));
    }
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    Ok(secs.saturating_mul(1_000_000_000).saturating_add(nanos))
}

/// The 16-byte form of a VIP in the maps: IPv6 as is, IPv4 as `::ffff:a.b.c.d`.
fn mapped(addr: IpAddr) -> [u8; 16] {
    match addr {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

fn update(map: &MapHandle, name: &'static str, key: &[u8], val: &[u8]) -> Result<(), BpfError> {
    map.update(key, val, MapFlags::ANY)
        .map_err(|source| BpfError::Map { map: name, source })
}

fn remove_except(
    map: &MapHandle,
    name: &'static str,
    keep: &HashSet<Vec<u8>>,
) -> Result<(), BpfError> {
    // Collect first: deleting while walking a hash map's keys can restart the walk.
    let stale: Vec<Vec<u8>> = map.keys().filter(|k| !keep.contains(k)).collect();
    for k in stale {
        match map.delete(&k) {
            Ok(()) => {}
            Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => {}
            Err(source) => return Err(BpfError::Map { map: name, source }),
        }
    }
    Ok(())
}

/// Generated map types that are plain old data: `repr(C)`, only integer fields, and no
/// implicit padding (every padding byte is a named field in `bpf/xlb_shared.h`), so every
/// byte is initialised and every byte pattern is a valid value.
///
/// # Safety
/// Implement only for types meeting the above.
unsafe trait Pod: Copy + Default {}
// SAFETY: see the trait; these are u8/u16/u32/u64 fields and arrays laid out without gaps.
unsafe impl Pod for types::xlb_svc_key {}
// SAFETY: as above.
unsafe impl Pod for types::xlb_svc_val {}
// SAFETY: as above.
unsafe impl Pod for types::xlb_vip_key {}
// SAFETY: as above.
unsafe impl Pod for types::xlb_vip_val {}
// SAFETY: as above.
unsafe impl Pod for types::xlb_ctl {}
// SAFETY: as above.
unsafe impl Pod for types::xlb_stats {}

fn bytes_of<T: Pod>(v: &T) -> &[u8] {
    // SAFETY: `T: Pod` has no uninitialised (padding) bytes; the slice covers exactly the
    // value and borrows it.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }
}

fn from_bytes<T: Pod>(bytes: &[u8]) -> Option<T> {
    // The kernel rounds per-CPU values up to 8 bytes; accept that tail.
    if bytes.len() < size_of::<T>() {
        return None;
    }
    let mut v = T::default();
    // SAFETY: `bytes` holds at least size_of::<T>() bytes, `v` is a distinct, writable T,
    // and every byte pattern is a valid `T: Pod`.
    unsafe {
        std::ptr::copy_nonoverlapping(
            bytes.as_ptr(),
            std::ptr::addr_of_mut!(v).cast::<u8>(),
            size_of::<T>(),
        );
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn ipv4_vips_are_ipv4_mapped() {
        let m = mapped(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(&m[..12], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
        assert_eq!(&m[12..], &[10, 0, 0, 1]);
        let v6 = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
        assert_eq!(mapped(IpAddr::V6(v6)), v6.octets());
    }

    #[test]
    fn svc_key_bytes_follow_the_c_layout() {
        let key = types::xlb_svc_key {
            addr: [7; 16],
            port: 0x1234,
            proto: PROTO_UDP,
            pad: 0,
        };
        let b = bytes_of(&key);
        assert_eq!(b.len(), 20);
        assert_eq!(&b[..16], &[7; 16]);
        assert_eq!(&b[16..18], &0x1234u16.to_ne_bytes());
        assert_eq!(b[18], 17);
        let back: types::xlb_svc_key = from_bytes(b).expect("20 bytes");
        assert_eq!(back.port, 0x1234);
        assert!(from_bytes::<types::xlb_svc_key>(&b[..19]).is_none());
    }

    #[test]
    fn stats_total_excludes_irregular() {
        let s = XdpStats {
            redirected: 1,
            passed: 2,
            no_socket: 3,
            inactive: 4,
            no_service: 5,
            dropped_stale: 6,
            dropped_nd_stale: 7,
            irregular: 100,
        };
        assert_eq!(s.total(), 28);
    }
}
