//! One AF_XDP socket and its UMEM, per (interface, rx queue), on top of xsk-rs.
//!
//! All `unsafe` of the data plane lives in this module. Every block carries a `// SAFETY:`
//! comment. The unsafe contract of xsk-rs is "a frame handed to the fill or TX ring is not
//! touched, or handed over again, until it comes back through the RX or completion ring".
//! [`Xsk`] upholds it by owning every frame descriptor itself: user code never sees a
//! [`FrameDesc`], only a `&mut [u8]` of a frame that is in userspace custody, for the
//! duration of a closure call. Frames move between five places only through the methods
//! below, and each move updates a ledger, so [`Xsk::accounting`] can prove that no frame
//! leaked:
//!
//! - `free`: the userspace free pool (a LIFO stack, pre-allocated once);
//! - `in_hand`: received from the RX ring, waiting for [`Xsk::handle_rx`];
//! - `fill_or_rx`: handed to the kernel through the fill ring and not yet received back
//!   (in the fill ring, inside the kernel, or in the RX ring);
//! - `tx_or_comp`: handed to the TX ring and not yet read back from the completion ring.
//!
//! Guarantees: no allocation after [`Xsk::open`]; no panic on any frame content; the
//! number of frames in the fill ring plus RX ring is capped at the RX ring size, so in copy
//! mode the kernel never has to drop a frame for lack of RX ring space (it then never
//! parks frames in its private free list, and the rings account for every frame the
//! kernel holds once TX has drained).
//!
//! xsk-rs quirks handled here: `produce` on the fill and TX rings is all-or-nothing (it
//! reserves the whole slice or nothing), so we ask for the free room first and produce at
//! most that; `CompQueue::consume` resets each descriptor's length to 0, which is harmless
//! because completed frames only go back to the free pool and fill ring (a frame is
//! rewritten before it is transmitted again); TX frames are RX frames rewritten in place,
//! so forwarding never copies.

use std::io;
use std::num::NonZeroU32;
use std::os::unix::io::{AsRawFd, RawFd};

use xsk_rs::config::{
    BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig, XdpFlags,
};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};

use super::worker::Action;

/// Errors opening or driving an AF_XDP socket.
#[derive(Debug, thiserror::Error)]
pub enum XskError {
    /// The [`XskConfig`] is not usable; the message says which field and why.
    #[error("invalid AF_XDP config: {0}")]
    InvalidConfig(String),
    /// The interface name contains a NUL byte.
    #[error("invalid interface name {0:?}")]
    InterfaceName(String),
    /// The UMEM could not be created (mmap or registration failed).
    #[error("creating UMEM of {frames} frames of {frame_size} bytes: {source}")]
    Umem {
        /// Frames asked for.
        frames: u32,
        /// Frame size asked for.
        frame_size: u32,
        /// What xsk-rs reported.
        #[source]
        source: xsk_rs::umem::UmemCreateError,
    },
    /// The socket could not be created or bound.
    #[error("creating AF_XDP socket on {ifname} queue {queue} ({mode}): {source}{detail}")]
    Socket {
        /// Interface name.
        ifname: String,
        /// Queue id.
        queue: u32,
        /// The bind mode tried last.
        mode: &'static str,
        /// What xsk-rs reported.
        #[source]
        source: xsk_rs::socket::SocketCreateError,
        /// The OS error behind it, if any, as text.
        detail: String,
    },
    /// The UMEM's fill and completion rings were not handed to this socket (only happens
    /// when a UMEM is shared, which this module never does).
    #[error("AF_XDP socket on {0} queue {1} came without fill/completion rings")]
    NoFillCompRings(String, u32),
    /// A syscall on the socket failed (poll, sendto, recvfrom, getsockopt).
    #[error("AF_XDP socket I/O: {0}")]
    Io(#[from] io::Error),
}

/// How the socket is bound to the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BindMode {
    /// Copy mode (`XDP_COPY`): works on every driver, including veth.
    Copy,
    /// Try zero-copy (`XDP_ZEROCOPY`); if the driver refuses (veth does, EOPNOTSUPP), bind
    /// in copy mode. [`Xsk::is_zero_copy`] tells which one was obtained.
    #[default]
    TryZeroCopy,
    /// Zero-copy or fail.
    ZeroCopy,
}

/// Which XDP program steers frames into the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgramMode {
    /// xlb's own XDP program (`dataplane::bpf`) redirects into its XSKMAP; libxdp must not
    /// load anything (`XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD`). Register [`Xsk::fd`] in the
    /// XSKMAP at this queue's index.
    OwnProgram,
    /// libxdp loads its default program, which redirects every frame of a queue that has a
    /// socket bound. For tests and traffic generators.
    LibxdpDefault,
}

/// Sizes and modes of one socket. Ring sizes of 0 mean "derive from `frames`".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XskConfig {
    /// Frames in the UMEM (> 0).
    pub frames: u32,
    /// Bytes per frame: 2048 or 4096.
    pub frame_size: u32,
    /// Most frames taken from the RX ring per batch (1..=rx ring size).
    pub batch_size: usize,
    /// RX ring size (power of two); 0: `frames / 2` rounded down to a power of two.
    pub rx_size: u32,
    /// TX ring size (power of two); 0: as the RX ring.
    pub tx_size: u32,
    /// Fill ring size (power of two); 0: as the RX ring.
    pub fill_size: u32,
    /// Completion ring size (power of two); 0: as the TX ring.
    pub comp_size: u32,
    /// Copy or zero-copy.
    pub bind_mode: BindMode,
    /// With [`ProgramMode::LibxdpDefault`] only: attach libxdp's program in generic (SKB)
    /// mode instead of letting libxdp pick (native first).
    pub xdp_generic: bool,
    /// Back the UMEM with huge pages if the system has them; fall back to normal pages.
    pub use_huge_pages: bool,
}

impl Default for XskConfig {
    fn default() -> Self {
        Self {
            frames: 4096,
            frame_size: 2048,
            batch_size: 64,
            rx_size: 0,
            tx_size: 0,
            fill_size: 0,
            comp_size: 0,
            bind_mode: BindMode::TryZeroCopy,
            xdp_generic: false,
            use_huge_pages: true,
        }
    }
}

/// The ring sizes after defaults are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingSizes {
    /// RX ring.
    pub rx: u32,
    /// TX ring.
    pub tx: u32,
    /// Fill ring.
    pub fill: u32,
    /// Completion ring.
    pub comp: u32,
}

impl XskConfig {
    /// Checks the config and derives defaulted ring sizes.
    pub fn ring_sizes(&self) -> Result<RingSizes, XskError> {
        let bad = |m: String| Err(XskError::InvalidConfig(m));
        if self.frames < 2 {
            return bad(format!("frames must be at least 2, got {}", self.frames));
        }
        if self.frame_size != 2048 && self.frame_size != 4096 {
            return bad(format!(
                "frame_size must be 2048 or 4096, got {}",
                self.frame_size
            ));
        }
        let half = self.frames / 2;
        // Largest power of two <= frames / 2.
        let derived = 1u32 << (31 - half.leading_zeros());
        let pick = |v: u32, d: u32| if v == 0 { d } else { v };
        let rx = pick(self.rx_size, derived);
        let tx = pick(self.tx_size, rx);
        let fill = pick(self.fill_size, rx);
        let comp = pick(self.comp_size, tx);
        for (name, v) in [
            ("rx_size", rx),
            ("tx_size", tx),
            ("fill_size", fill),
            ("comp_size", comp),
        ] {
            if !v.is_power_of_two() {
                return bad(format!("{name} must be a power of two, got {v}"));
            }
        }
        if self.batch_size == 0 || self.batch_size > rx as usize {
            return bad(format!(
                "batch_size must be in 1..={rx} (the rx ring size), got {}",
                self.batch_size
            ));
        }
        Ok(RingSizes { rx, tx, fill, comp })
    }
}

/// What one [`Xsk::handle_rx`] call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Frames handed to the handler.
    pub rx: u32,
    /// Their bytes.
    pub rx_bytes: u64,
    /// Frames placed on the TX ring.
    pub tx: u32,
    /// Their bytes.
    pub tx_bytes: u64,
    /// Frames the handler dropped.
    pub dropped: u32,
    /// Frames the handler wanted sent but the TX ring had no room for, even after one
    /// completion recycle and kick; they were recycled (dropped).
    pub tx_ring_full: u32,
    /// sendto kicks issued while making room.
    pub kicks: u32,
    /// TX completions recycled while making room.
    pub completions: u32,
}

/// Where every frame of the UMEM is. Ledger fields come from the moves this module made;
/// `*_ring` fields are read from the rings' producer/consumer indices at the same moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameAccounting {
    /// Frames in the UMEM.
    pub total: u32,
    /// Userspace free pool.
    pub free: u32,
    /// Received, not yet handled.
    pub in_hand: u32,
    /// Given to the kernel for RX, not yet received back.
    pub fill_or_rx: u32,
    /// Given to the kernel for TX, not yet completed.
    pub tx_or_comp: u32,
    /// Observed entries in the fill ring.
    pub fill_ring: u32,
    /// Observed entries in the RX ring.
    pub rx_ring: u32,
    /// Observed entries in the TX ring.
    pub tx_ring: u32,
    /// Observed entries in the completion ring.
    pub comp_ring: u32,
}

impl FrameAccounting {
    /// Sum of the ledger places.
    pub fn ledger_sum(&self) -> u64 {
        u64::from(self.free)
            + u64::from(self.in_hand)
            + u64::from(self.fill_or_rx)
            + u64::from(self.tx_or_comp)
    }

    /// Every frame is in exactly one ledger place.
    pub fn is_balanced(&self) -> bool {
        self.ledger_sum() == u64::from(self.total)
    }

    /// Frames the kernel holds outside any ring: the ledger's kernel-side count minus what
    /// the rings show. 0 when traffic has stopped and TX has drained; positive while the
    /// kernel is between rings (TX skbs not yet freed); negative would mean a bug.
    pub fn kernel_held(&self) -> i64 {
        i64::from(self.fill_or_rx) + i64::from(self.tx_or_comp)
            - i64::from(self.fill_ring)
            - i64::from(self.rx_ring)
            - i64::from(self.tx_ring)
            - i64::from(self.comp_ring)
    }
}

/// Counters the kernel keeps for the socket (`XDP_STATISTICS`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelStats {
    /// Dropped for other reasons.
    pub rx_dropped: u64,
    /// Invalid RX descriptors.
    pub rx_invalid_descs: u64,
    /// Invalid TX descriptors.
    pub tx_invalid_descs: u64,
    /// Dropped because the RX ring was full.
    pub rx_ring_full: u64,
    /// Times the fill ring was empty when the kernel needed a frame.
    pub rx_fill_ring_empty_descs: u64,
    /// Times the TX ring was empty when the kernel looked.
    pub tx_ring_empty_descs: u64,
}

/// One AF_XDP socket bound to one queue, with its own UMEM and the four rings.
///
/// Not `Sync`: one worker thread drives it. Open it in the network namespace that holds
/// the interface (the bind resolves the name there).
pub struct Xsk {
    umem: Umem,
    fq: FillQueue,
    cq: CompQueue,
    tx: TxQueue,
    rx: RxQueue,
    sizes: RingSizes,
    total: u32,
    batch_size: usize,
    zero_copy: bool,
    /// Userspace free pool, capacity `total`.
    free: Vec<FrameDesc>,
    /// Frames received and not yet handled; `rx_len` valid entries, capacity batch_size.
    rx_batch: Vec<FrameDesc>,
    rx_len: usize,
    /// Scratch for frames headed to TX; capacity batch_size.
    tx_batch: Vec<FrameDesc>,
    /// Scratch for completions; capacity comp ring size.
    comp_buf: Vec<FrameDesc>,
    fill_or_rx: u32,
    tx_or_comp: u32,
}

impl std::fmt::Debug for Xsk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Xsk")
            .field("fd", &self.fd())
            .field("sizes", &self.sizes)
            .field("total", &self.total)
            .field("zero_copy", &self.zero_copy)
            .field("free", &self.free.len())
            .field("fill_or_rx", &self.fill_or_rx)
            .field("tx_or_comp", &self.tx_or_comp)
            .finish()
    }
}

fn queue_size(v: u32) -> Result<QueueSize, XskError> {
    QueueSize::new(v).map_err(|e| XskError::InvalidConfig(e.to_string()))
}

impl Xsk {
    /// Creates the UMEM and binds a socket to `ifname` queue `queue` (in the calling
    /// thread's network namespace), then fills the fill ring.
    pub fn open(
        ifname: &str,
        queue: u32,
        cfg: &XskConfig,
        program: ProgramMode,
    ) -> Result<Xsk, XskError> {
        let sizes = cfg.ring_sizes()?;
        let iface: Interface = ifname
            .parse()
            .map_err(|_| XskError::InterfaceName(ifname.to_string()))?;
        let umem_cfg = UmemConfig::builder()
            .frame_size(
                FrameSize::new(cfg.frame_size)
                    .map_err(|e| XskError::InvalidConfig(e.to_string()))?,
            )
            .fill_queue_size(queue_size(sizes.fill)?)
            .comp_queue_size(queue_size(sizes.comp)?)
            .frame_headroom(0)
            .build()
            .map_err(|e| XskError::InvalidConfig(e.to_string()))?;
        let frames = NonZeroU32::new(cfg.frames)
            .ok_or_else(|| XskError::InvalidConfig("frames must be > 0".into()))?;
        let umem_err = |source| XskError::Umem {
            frames: cfg.frames,
            frame_size: cfg.frame_size,
            source,
        };
        let (umem, descs) = if cfg.use_huge_pages {
            match Umem::new(umem_cfg, frames, true) {
                Ok(v) => v,
                Err(e) => {
                    tracing::debug!(error = %e, "huge-page UMEM unavailable, using normal pages");
                    Umem::new(umem_cfg, frames, false).map_err(umem_err)?
                }
            }
        } else {
            Umem::new(umem_cfg, frames, false).map_err(umem_err)?
        };

        let libxdp_flags = match program {
            ProgramMode::OwnProgram => LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD,
            ProgramMode::LibxdpDefault => LibxdpFlags::empty(),
        };
        let xdp_flags = if program == ProgramMode::LibxdpDefault && cfg.xdp_generic {
            XdpFlags::XDP_FLAGS_SKB_MODE
        } else {
            XdpFlags::empty()
        };
        let attempts: &[(BindFlags, &'static str)] = match cfg.bind_mode {
            BindMode::Copy => &[(BindFlags::XDP_COPY, "copy")],
            BindMode::ZeroCopy => &[(BindFlags::XDP_ZEROCOPY, "zero-copy")],
            BindMode::TryZeroCopy => &[
                (BindFlags::XDP_ZEROCOPY, "zero-copy"),
                (BindFlags::XDP_COPY, "copy"),
            ],
        };
        let mut last_err = None;
        let mut bound = None;
        for &(mode_flag, mode) in attempts {
            let sock_cfg = SocketConfig::builder()
                .rx_queue_size(queue_size(sizes.rx)?)
                .tx_queue_size(queue_size(sizes.tx)?)
                .libxdp_flags(libxdp_flags)
                .xdp_flags(xdp_flags)
                .bind_flags(mode_flag | BindFlags::XDP_USE_NEED_WAKEUP)
                .build();
            // SAFETY: the UMEM was created just above and is used by this socket only, so
            // no other socket is bound with it; libxdp refuses (EBUSY) a second socket on
            // the same device and queue. A failed attempt leaves the UMEM reusable (xsk-rs
            // keeps its saved rings for a retry).
            match unsafe { Socket::new(sock_cfg, &umem, &iface, queue) } {
                Ok(s) => {
                    bound = Some((s, mode_flag.contains(BindFlags::XDP_ZEROCOPY)));
                    break;
                }
                Err(e) => {
                    let detail = std::error::Error::source(&e)
                        .map(|s| format!(": {s}"))
                        .unwrap_or_default();
                    tracing::debug!(ifname, queue, mode, error = %e, %detail, "AF_XDP bind failed");
                    last_err = Some((e, mode, detail));
                }
            }
        }
        let ((tx, rx, fq_cq), zero_copy) = match bound {
            Some(b) => b,
            None => {
                let (source, mode, detail) = last_err.expect("at least one bind attempt was made");
                return Err(XskError::Socket {
                    ifname: ifname.to_string(),
                    queue,
                    mode,
                    source,
                    detail,
                });
            }
        };
        let (fq, cq) = fq_cq.ok_or_else(|| XskError::NoFillCompRings(ifname.to_string(), queue))?;

        let batch = cfg.batch_size;
        let mut xsk = Xsk {
            umem,
            fq,
            cq,
            tx,
            rx,
            sizes,
            total: cfg.frames,
            batch_size: batch,
            zero_copy,
            free: descs,
            rx_batch: vec![FrameDesc::default(); batch],
            rx_len: 0,
            tx_batch: Vec::with_capacity(batch),
            comp_buf: vec![FrameDesc::default(); sizes.comp as usize],
            fill_or_rx: 0,
            tx_or_comp: 0,
        };
        // Hand out frames from the top of the stack first (stack order is irrelevant; the
        // pool was created in address order).
        xsk.free.reverse();
        xsk.refill();
        Ok(xsk)
    }

    /// The socket's file descriptor, for the XSKMAP of our own XDP program.
    pub fn fd(&self) -> RawFd {
        self.rx.fd().as_raw_fd()
    }

    /// Whether the bind obtained zero-copy mode.
    pub fn is_zero_copy(&self) -> bool {
        self.zero_copy
    }

    /// Ring sizes in use.
    pub fn ring_sizes(&self) -> RingSizes {
        self.sizes
    }

    /// Configured batch size.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Frames in the UMEM.
    pub fn total_frames(&self) -> u32 {
        self.total
    }

    /// Frames in the userspace free pool.
    pub fn free_frames(&self) -> u32 {
        self.free.len() as u32
    }

    /// Frames given to TX and not yet completed.
    pub fn tx_outstanding(&self) -> u32 {
        self.tx_or_comp
    }

    /// Frames given to the kernel for RX and not yet received.
    pub fn rx_outstanding(&self) -> u32 {
        self.fill_or_rx
    }

    /// Reads completed TX frames back into the free pool. Returns how many.
    pub fn recycle_completions(&mut self) -> u32 {
        if self.tx_or_comp == 0 {
            return 0;
        }
        let want = (self.tx_or_comp as usize).min(self.comp_buf.len());
        // SAFETY: the completion ring belongs to this socket's UMEM, so every address it
        // yields is one of our frames, which the kernel has finished with. The
        // descriptors go straight to the free pool (userspace custody).
        let n = unsafe { self.cq.consume(&mut self.comp_buf[..want]) };
        // Lengths are now 0 (xsk-rs resets them); the fill ring ignores lengths and a TX
        // user rewrites the frame before sending it again.
        self.free.extend_from_slice(&self.comp_buf[..n]);
        self.tx_or_comp -= n as u32;
        n as u32
    }

    /// Moves frames from the free pool into the fill ring, keeping fill + RX ring
    /// occupancy at most the RX ring size. Returns how many were added.
    pub fn refill(&mut self) -> u32 {
        let cap = self.sizes.rx.saturating_sub(self.fill_or_rx);
        let want = cap.min(self.free.len() as u32);
        if want == 0 {
            return 0;
        }
        let room = self.fq.nb_free(want).min(want) as usize;
        if room == 0 {
            return 0;
        }
        let start = self.free.len() - room;
        // SAFETY: the descriptors come from the free pool, so they are ours, of this UMEM,
        // and in no ring; they leave the pool right after (truncate) and are not touched
        // until the RX ring returns them. `room` slots are free, so produce() (which is
        // all-or-nothing) takes all of them.
        let n = unsafe { self.fq.produce(&self.free[start..]) };
        self.free.truncate(self.free.len() - n);
        self.fill_or_rx += n as u32;
        n as u32
    }

    /// Frames in the fill ring right now.
    pub fn fill_ring_len(&mut self) -> u32 {
        self.sizes.fill - self.fq.nb_free_exact()
    }

    /// Whether the fill ring asks for a wakeup (zero-copy drivers set this; copy mode
    /// never does).
    pub fn fill_needs_wakeup(&self) -> bool {
        self.fq.needs_wakeup()
    }

    /// Takes up to `max` (at most the batch size) frames from the RX ring into the pending
    /// batch. If a batch is still pending, returns its size and takes nothing.
    pub fn receive(&mut self, max: usize) -> usize {
        if self.rx_len > 0 {
            return self.rx_len;
        }
        let max = max.min(self.rx_batch.len());
        if max == 0 || self.fill_or_rx == 0 {
            return 0;
        }
        // SAFETY: the RX ring belongs to this socket's UMEM; the kernel hands over each
        // frame it returns, which we now hold in `rx_batch` until `handle_rx`.
        let n = unsafe { self.rx.consume(&mut self.rx_batch[..max]) };
        self.rx_len = n;
        self.fill_or_rx -= n as u32;
        n
    }

    /// Runs `f` on each pending received frame, in place. Frames answered
    /// [`Action::Tx`] go to the TX ring in order; [`Action::Drop`] frames go to the free
    /// pool. If the TX ring is short of room, completions are recycled and the kernel kicked
    /// once; frames that still do not fit are dropped and counted in `tx_ring_full`.
    pub fn handle_rx<F: FnMut(&mut [u8]) -> Action>(&mut self, mut f: F) -> BatchOutcome {
        let mut out = BatchOutcome::default();
        let n = self.rx_len;
        self.tx_batch.clear();
        for i in 0..n {
            let desc = &mut self.rx_batch[i];
            // SAFETY: `desc` came from this UMEM's RX ring in `receive` and is in no ring,
            // so neither the kernel nor other code touches the frame while `data` lives.
            let mut data = unsafe { self.umem.data_mut(desc) };
            let frame = data.contents_mut();
            let len = frame.len();
            out.rx += 1;
            out.rx_bytes += len as u64;
            match f(frame) {
                Action::Tx => {
                    self.tx_batch.push(*desc);
                    out.tx_bytes += len as u64;
                }
                Action::Drop => {
                    self.free.push(*desc);
                    out.dropped += 1;
                }
            }
        }
        self.rx_len = 0;
        let want = self.tx_batch.len() as u32;
        if want > 0 {
            let mut room = self.tx.nb_free(want).min(want);
            if room < want {
                // A failed kick is not fatal here: the worker loop's flush reports it.
                out.kicks += self.kick_tx().map(u32::from).unwrap_or(0);
                out.completions += self.recycle_completions();
                room = self.tx.nb_free(want).min(want);
            }
            let room = room as usize;
            // SAFETY: these descriptors were received from this UMEM's RX ring and are in
            // no ring; after produce() we forget them (tx_batch is scratch) until the
            // completion ring returns them. `room` slots are free, so produce() (which is
            // all-or-nothing) takes all of them.
            let sent = unsafe { self.tx.produce(&self.tx_batch[..room]) };
            self.tx_or_comp += sent as u32;
            for d in &self.tx_batch[sent..] {
                out.tx_bytes -= d.lengths().data() as u64;
            }
            self.free.extend_from_slice(&self.tx_batch[sent..]);
            out.tx = sent as u32;
            out.tx_ring_full = want - sent as u32;
            out.dropped += out.tx_ring_full;
            self.tx_batch.clear();
        }
        out
    }

    /// Takes up to `max` frames from the free pool, lets `f(i, buf)` write frame `i` into
    /// `buf` (the whole frame capacity) and return its length (0 or more than the capacity
    /// puts the frame back unused), and places the written frames on the TX ring. For
    /// traffic generators and replies built from scratch. Returns how many were queued.
    pub fn transmit_with<F: FnMut(usize, &mut [u8]) -> usize>(
        &mut self,
        max: usize,
        mut f: F,
    ) -> usize {
        let want = max.min(self.free.len()).min(self.batch_size) as u32;
        if want == 0 {
            return 0;
        }
        let room = self.tx.nb_free(want).min(want) as usize;
        self.tx_batch.clear();
        for i in 0..room {
            let Some(mut desc) = self.free.pop() else {
                break;
            };
            let len = {
                // SAFETY: `desc` came from the free pool, so it is ours, of this UMEM, and
                // in no ring; nothing else touches the frame while `data` lives.
                let mut data = unsafe { self.umem.data_mut(&mut desc) };
                let mut cur = data.cursor();
                let cap = cur.buf_len();
                cur.set_pos(cap);
                let len = f(i, data.contents_mut());
                let len = if len > cap { 0 } else { len };
                data.cursor().set_pos(len);
                len
            };
            if len == 0 {
                self.free.push(desc);
            } else {
                self.tx_batch.push(desc);
            }
        }
        // SAFETY: the descriptors were taken from the free pool (ours, this UMEM, in no
        // ring) and are forgotten after produce() until the completion ring returns them;
        // at most `room` of them, so produce() takes all.
        let sent = unsafe { self.tx.produce(&self.tx_batch) };
        self.tx_or_comp += sent as u32;
        self.free.extend_from_slice(&self.tx_batch[sent..]);
        self.tx_batch.clear();
        sent
    }

    /// Entries in the TX ring the kernel has not taken yet.
    pub fn tx_ring_len(&mut self) -> u32 {
        self.sizes.tx - self.tx.nb_free_exact()
    }

    /// Whether the TX ring asks for a `sendto` kick (always, in copy mode).
    pub fn tx_needs_wakeup(&self) -> bool {
        self.tx.needs_wakeup()
    }

    /// Kicks TX with `sendto` if the ring asks for it. Returns whether a kick was made.
    /// EAGAIN/EBUSY/ENOBUFS/ENETDOWN are not errors (the kernel stopped early: in copy
    /// mode one kick sends at most 32 frames; kick again).
    pub fn kick_tx(&mut self) -> Result<bool, XskError> {
        if !self.tx.needs_wakeup() {
            return Ok(false);
        }
        self.tx.wakeup()?;
        Ok(true)
    }

    /// Kicks TX until the TX ring is empty, the kernel stops making progress, or
    /// `max_kicks` kicks were made. Returns the kicks made.
    pub fn flush_tx(&mut self, max_kicks: u32) -> Result<u32, XskError> {
        let mut kicks = 0;
        let mut pending = self.tx_ring_len();
        while pending > 0 && kicks < max_kicks {
            if !self.kick_tx()? {
                break;
            }
            kicks += 1;
            let now = self.tx_ring_len();
            if now >= pending {
                break;
            }
            pending = now;
        }
        Ok(kicks)
    }

    /// Waits up to `timeout_ms` for the RX ring to have frames. Returns whether it has.
    /// EINTR counts as "no".
    pub fn poll_rx(&mut self, timeout_ms: i32) -> Result<bool, XskError> {
        Ok(self.rx.poll(timeout_ms)?)
    }

    /// Wakes the driver to pick up fill-ring frames (zero-copy), with a non-blocking
    /// `recvfrom` as xdpsock does.
    pub fn wake_rx(&mut self) -> Result<(), XskError> {
        // SAFETY: a zero-length recvfrom with null buffer and address on our own open
        // socket fd; the kernel writes nothing to user memory.
        let r = unsafe {
            libc::recvfrom(
                self.fd(),
                std::ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS | libc::ENETDOWN | libc::EINTR) => {
                }
                _ => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// The kernel's counters for this socket.
    pub fn kernel_stats(&self) -> Result<KernelStats, XskError> {
        let s = self.rx.fd().xdp_statistics()?;
        Ok(KernelStats {
            rx_dropped: s.rx_dropped(),
            rx_invalid_descs: s.rx_invalid_descs(),
            tx_invalid_descs: s.tx_invalid_descs(),
            rx_ring_full: s.rx_ring_full(),
            rx_fill_ring_empty_descs: s.rx_fill_ring_empty_descs(),
            tx_ring_empty_descs: s.tx_ring_empty_descs(),
        })
    }

    /// Where every frame is, right now.
    pub fn accounting(&mut self) -> FrameAccounting {
        FrameAccounting {
            total: self.total,
            free: self.free.len() as u32,
            in_hand: self.rx_len as u32,
            fill_or_rx: self.fill_or_rx,
            tx_or_comp: self.tx_or_comp,
            fill_ring: self.fill_ring_len(),
            rx_ring: self.rx.nb_avail_exact(),
            tx_ring: self.tx_ring_len(),
            comp_ring: self.cq.nb_avail_exact(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_sizes_derive_from_frames() {
        let cfg = XskConfig::default();
        let s = cfg.ring_sizes().unwrap();
        assert_eq!(
            s,
            RingSizes {
                rx: 2048,
                tx: 2048,
                fill: 2048,
                comp: 2048
            }
        );
        let cfg = XskConfig {
            frames: 3000,
            ..XskConfig::default()
        };
        assert_eq!(cfg.ring_sizes().unwrap().rx, 1024);
        let cfg = XskConfig {
            frames: 4096,
            tx_size: 512,
            ..XskConfig::default()
        };
        let s = cfg.ring_sizes().unwrap();
        assert_eq!((s.tx, s.comp, s.fill), (512, 512, 2048));
    }

    #[test]
    fn bad_configs_are_rejected_with_the_field_named() {
        let cases = [
            (
                XskConfig {
                    frames: 1,
                    ..XskConfig::default()
                },
                "frames",
            ),
            (
                XskConfig {
                    frame_size: 3000,
                    ..XskConfig::default()
                },
                "frame_size",
            ),
            (
                XskConfig {
                    rx_size: 1000,
                    ..XskConfig::default()
                },
                "rx_size",
            ),
            (
                XskConfig {
                    batch_size: 0,
                    ..XskConfig::default()
                },
                "batch_size",
            ),
            (
                XskConfig {
                    frames: 64,
                    batch_size: 64,
                    ..XskConfig::default()
                },
                "batch_size",
            ),
        ];
        for (cfg, field) in cases {
            match cfg.ring_sizes() {
                Err(XskError::InvalidConfig(m)) => assert!(m.contains(field), "{m}"),
                other => panic!("{field}: expected InvalidConfig, got {other:?}"),
            }
        }
    }

    #[test]
    fn xsk_can_move_to_a_worker_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<Xsk>();
    }

    #[test]
    fn accounting_sums_and_kernel_held() {
        let a = FrameAccounting {
            total: 10,
            free: 3,
            in_hand: 1,
            fill_or_rx: 4,
            tx_or_comp: 2,
            fill_ring: 3,
            rx_ring: 1,
            tx_ring: 0,
            comp_ring: 1,
        };
        assert!(a.is_balanced());
        assert_eq!(a.kernel_held(), 1);
        assert!(!FrameAccounting { free: 2, ..a }.is_balanced());
    }
}
