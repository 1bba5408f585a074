//! Per-worker flow (connection) table: 5-tuple -> backend id, fixed capacity, LRU.
//!
//! Each worker owns one [`FlowTable`]; it is never shared, so it takes no lock.
//!
//! Layout: a set-associative cache. The table has `capacity / WAYS` buckets of
//! [`WAYS`] (8) ways. A bucket's index is the low bits of the flow hash; each way has a
//! 32-bit tag (the high half of the hash, never 0; 0 marks a free way) in a dense tag array
//! (two buckets' tags per 64-byte cache line) and a 64-byte, cache-line-aligned
//! [`FlowEntry`] holding the key, the backend and the last-seen time. A lookup reads one
//! tag line and, on a tag match, one entry line.
//!
//! Guarantees:
//! - All memory is allocated in [`FlowTable::new`]; no method allocates afterwards.
//! - `len() <= capacity()` always; `capacity()` is the requested capacity rounded up to a
//!   power of two (at least [`WAYS`]).
//! - Time is the caller's monotonic clock in milliseconds (`now_ms`, read once per batch).
//!   An entry is live while `now_ms - last_seen < timeout`, where the timeout depends on
//!   the key's protocol: TCP (6) uses `tcp_ms`, or `tcp_fin_ms` once [`FlowEntry::close`]
//!   was called (FIN or RST seen); UDP (17) and every other protocol use `udp_ms`.
//!   Expired entries are never returned; they are freed when a lookup, insert or
//!   [`FlowTable::expire_some`] meets them.
//! - When a bucket is full, an insert reuses an expired way if there is one, else evicts the
//!   least recently *used* (looked up or inserted) way, and counts it in `evictions()`.

/// Ways per bucket.
pub const WAYS: usize = 8;

/// A flow's 5-tuple. Addresses are 16-byte keys (IPv4 as IPv4-mapped IPv6, see
/// `tables::addr_key`), ports in host order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct FlowKey {
    /// Source address.
    pub src: [u8; 16],
    /// Destination address.
    pub dst: [u8; 16],
    /// Source port (0 for protocols without ports).
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// IP protocol number.
    pub proto: u8,
}

impl FlowKey {
    /// The stable flow hash ([`super::hash::hash_flow`]).
    #[inline]
    pub fn hash(&self) -> u64 {
        super::hash::hash_flow(self)
    }
}

/// Idle timeouts, in milliseconds.
#[derive(Clone, Copy, Debug)]
pub struct FlowTimeouts {
    /// TCP flow without FIN/RST seen.
    pub tcp_ms: u64,
    /// TCP flow after FIN or RST.
    pub tcp_fin_ms: u64,
    /// UDP and every other protocol.
    pub udp_ms: u64,
}

const PROTO_TCP: u8 = 6;

/// One flow: its key, its backend and when it was last used. One cache line.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub struct FlowEntry {
    key: FlowKey,
    closing: bool,
    backend: u32,
    last_seen: u64,
}

impl FlowEntry {
    const EMPTY: FlowEntry = FlowEntry {
        key: FlowKey {
            src: [0; 16],
            dst: [0; 16],
            sport: 0,
            dport: 0,
            proto: 0,
        },
        closing: false,
        backend: u32::MAX,
        last_seen: 0,
    };

    /// The backend id this flow is pinned to.
    #[inline]
    pub fn backend(&self) -> u32 {
        self.backend
    }

    /// Re-pins the flow (e.g. its backend went down and a new one was picked).
    #[inline]
    pub fn set_backend(&mut self, b: u32) {
        self.backend = b;
    }

    /// FIN or RST seen: from now on the flow lives `tcp_fin_ms` after its last packet.
    #[inline]
    pub fn close(&mut self, now_ms: u64) {
        self.closing = true;
        self.last_seen = self.last_seen.max(now_ms);
    }

    /// True after [`FlowEntry::close`].
    #[inline]
    pub fn is_closing(&self) -> bool {
        self.closing
    }

    /// The flow's key.
    #[inline]
    pub fn key(&self) -> &FlowKey {
        &self.key
    }

    /// When the flow was last looked up, inserted or closed.
    #[inline]
    pub fn last_seen(&self) -> u64 {
        self.last_seen
    }
}

/// Fixed-capacity, set-associative, LRU flow table. See the module docs.
pub struct FlowTable {
    /// `WAYS` tags per bucket; 0 = free way.
    tags: Vec<u32>,
    /// `WAYS` entries per bucket, parallel to `tags`.
    entries: Vec<FlowEntry>,
    /// Number of buckets - 1 (a power of two minus one).
    mask: usize,
    len: usize,
    evictions: u64,
    expired: u64,
    /// Next bucket `expire_some` visits.
    sweep: usize,
    timeouts: FlowTimeouts,
}

/// A `Vec` of `n` copies of `fill`, written (so every page is mapped now and the first
/// packets take no page faults) after asking the kernel for transparent huge pages
/// (`MADV_HUGEPAGE`; honoured when THP is `always` or `madvise`, ignored otherwise). A
/// 1M-flow table is 68 MB touched at random: on 4 KiB pages nearly every lookup of a new
/// flow also misses the TLB, which in a VM costs a two-level page walk.
fn filled_huge<T: Clone>(n: usize, fill: T) -> Vec<T> {
    const PAGE: usize = 4096;
    let mut v: Vec<T> = Vec::with_capacity(n);
    let bytes = n * std::mem::size_of::<T>();
    let start = v.as_ptr() as usize;
    let first = start.next_multiple_of(PAGE);
    let end = (start + bytes) & !(PAGE - 1);
    if end > first + PAGE {
        // SAFETY: [first, end) lies inside the allocation `v` owns (page-aligned inward);
        // MADV_HUGEPAGE only changes how the kernel backs those pages, never their
        // contents or validity, and the allocation outlives the call.
        unsafe {
            libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE);
        }
    }
    v.resize(n, fill);
    v
}

#[inline(always)]
fn tag_of(hash: u64) -> u32 {
    ((hash >> 32) as u32) | 1
}

impl FlowTable {
    /// A table for at least `capacity` flows (rounded up to a power of two, minimum
    /// [`WAYS`]). Allocates all its memory here: `capacity() * 68` bytes.
    pub fn new(capacity: usize, timeouts: FlowTimeouts) -> Self {
        let cap = capacity
            .max(WAYS)
            .checked_next_power_of_two()
            .unwrap_or(1 << (usize::BITS - 1));
        FlowTable {
            tags: filled_huge(cap, 0u32),
            entries: filled_huge(cap, FlowEntry::EMPTY),
            mask: cap / WAYS - 1,
            len: 0,
            evictions: 0,
            expired: 0,
            sweep: 0,
            timeouts,
        }
    }

    /// The idle timeout of a flow.
    #[inline(always)]
    fn timeout(&self, e: &FlowEntry) -> u64 {
        if e.key.proto == PROTO_TCP {
            if e.closing {
                self.timeouts.tcp_fin_ms
            } else {
                self.timeouts.tcp_ms
            }
        } else {
            self.timeouts.udp_ms
        }
    }

    #[inline(always)]
    fn is_expired(&self, e: &FlowEntry, now_ms: u64) -> bool {
        now_ms.saturating_sub(e.last_seen) >= self.timeout(e)
    }

    #[inline(always)]
    fn base(&self, hash: u64) -> usize {
        (hash as usize & self.mask) * WAYS
    }

    /// Frees way `i` (which must be occupied).
    #[inline(always)]
    fn free(&mut self, i: usize) {
        self.tags[i] = 0;
        self.len -= 1;
    }

    /// Index of the way holding `key`, expired or not.
    #[inline(always)]
    fn find(&self, key: &FlowKey, hash: u64) -> Option<usize> {
        let base = self.base(hash);
        let tag = tag_of(hash);
        let tags: &[u32; WAYS] = self.tags[base..base + WAYS].try_into().ok()?;
        let entries: &[FlowEntry; WAYS] = self.entries[base..base + WAYS].try_into().ok()?;
        for w in 0..WAYS {
            if tags[w] == tag && entries[w].key == *key {
                return Some(base + w);
            }
        }
        None
    }

    /// The live entry for `key`, refreshed to `now_ms`; `None` if absent or expired (an
    /// expired entry is freed). `hash` must be `key.hash()` (or any fixed function of the
    /// key, used consistently).
    #[inline(always)]
    pub fn lookup(&mut self, key: &FlowKey, hash: u64, now_ms: u64) -> Option<&mut FlowEntry> {
        let i = self.find(key, hash)?;
        if self.is_expired(&self.entries[i], now_ms) {
            self.free(i);
            self.expired += 1;
            return None;
        }
        let e = &mut self.entries[i];
        e.last_seen = e.last_seen.max(now_ms);
        Some(e)
    }

    /// Inserts `key -> backend` as a fresh flow (not closing, last seen `now_ms`) and
    /// returns it. An existing entry for `key` is overwritten in place (`len` unchanged).
    /// In a full bucket an expired way is reused first, else the least recently used way is
    /// evicted (counted in [`FlowTable::evictions`]).
    pub fn insert(
        &mut self,
        key: &FlowKey,
        hash: u64,
        backend: u32,
        now_ms: u64,
    ) -> &mut FlowEntry {
        let i = match self.find(key, hash) {
            Some(i) => i,
            None => self.claim_way(hash, now_ms),
        };
        self.fill(i, key, hash, backend, now_ms)
    }

    /// [`FlowTable::insert`] for a key the caller has just looked up (in this table, with
    /// no change in between) and not found: the per-packet path of a new flow, which so
    /// skips a second search of the bucket.
    pub fn insert_absent(
        &mut self,
        key: &FlowKey,
        hash: u64,
        backend: u32,
        now_ms: u64,
    ) -> &mut FlowEntry {
        debug_assert!(
            self.find(key, hash).is_none(),
            "insert_absent of a present key"
        );
        let i = self.claim_way(hash, now_ms);
        self.fill(i, key, hash, backend, now_ms)
    }

    /// Writes a fresh entry for `key` into way `i`.
    #[inline(always)]
    fn fill(
        &mut self,
        i: usize,
        key: &FlowKey,
        hash: u64,
        backend: u32,
        now_ms: u64,
    ) -> &mut FlowEntry {
        self.tags[i] = tag_of(hash);
        let e = &mut self.entries[i];
        *e = FlowEntry {
            key: *key,
            closing: false,
            backend,
            last_seen: now_ms,
        };
        e
    }

    /// Picks a way for a new key in `hash`'s bucket and accounts for it in `len`: a free
    /// way, else an expired one, else the LRU one (an eviction).
    fn claim_way(&mut self, hash: u64, now_ms: u64) -> usize {
        let base = self.base(hash);
        if let Some(w) = self.tags[base..base + WAYS].iter().position(|&t| t == 0) {
            self.len += 1;
            return base + w;
        }
        let mut lru = base;
        for i in base..base + WAYS {
            let e = &self.entries[i];
            if self.is_expired(e, now_ms) {
                self.expired += 1;
                return i;
            }
            if e.last_seen < self.entries[lru].last_seen {
                lru = i;
            }
        }
        self.evictions += 1;
        lru
    }

    /// Removes `key`; true if it was present (expired or not).
    pub fn remove(&mut self, key: &FlowKey, hash: u64) -> bool {
        match self.find(key, hash) {
            Some(i) => {
                self.free(i);
                true
            }
            None => false,
        }
    }

    /// Occupied ways (live entries plus expired ones not yet freed).
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no way is occupied.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Maximum number of entries (a power of two).
    #[inline]
    pub fn capacity(&self) -> usize {
        self.tags.len()
    }

    /// Live entries evicted (LRU) to make room for new flows since creation.
    #[inline]
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Expired entries freed (by lookup, insert or `expire_some`) since creation.
    #[inline]
    pub fn expirations(&self) -> u64 {
        self.expired
    }

    /// The timeouts this table applies.
    #[inline]
    pub fn timeouts(&self) -> FlowTimeouts {
        self.timeouts
    }

    /// Frees expired entries in the next `max_buckets` buckets (round-robin over the whole
    /// table across calls); returns how many were freed. Call between batches.
    pub fn expire_some(&mut self, now_ms: u64, max_buckets: usize) -> usize {
        let nb = self.mask + 1;
        let mut freed = 0;
        for _ in 0..max_buckets.min(nb) {
            let base = self.sweep * WAYS;
            for i in base..base + WAYS {
                if self.tags[i] != 0 && self.is_expired(&self.entries[i], now_ms) {
                    self.free(i);
                    freed += 1;
                }
            }
            self.sweep = (self.sweep + 1) & self.mask;
        }
        self.expired += freed as u64;
        freed
    }

    /// Calls `f(key, backend)` for every live entry (full scan; for metrics, not per
    /// packet).
    pub fn for_each_live(&self, now_ms: u64, mut f: impl FnMut(&FlowKey, u32)) {
        for (t, e) in self.tags.iter().zip(&self.entries) {
            if *t != 0 && !self.is_expired(e, now_ms) {
                f(&e.key, e.backend);
            }
        }
    }

    /// Like [`FlowTable::for_each_live`], over `buckets` buckets starting at bucket
    /// `first` (wrapping at the end of the table): a bounded slice of a full scan, for
    /// per-backend flow counts kept up to date between batches. Returns the bucket to
    /// start the next slice at (0 when this slice reached the end of the table).
    pub fn for_each_live_in(
        &self,
        first: usize,
        buckets: usize,
        now_ms: u64,
        mut f: impl FnMut(&FlowKey, u32),
    ) -> usize {
        let nb = self.mask + 1;
        let start = first.min(nb);
        let end = start.saturating_add(buckets).min(nb);
        for i in start * WAYS..end * WAYS {
            let e = &self.entries[i];
            if self.tags[i] != 0 && !self.is_expired(e, now_ms) {
                f(&e.key, e.backend);
            }
        }
        if end >= nb {
            0
        } else {
            end
        }
    }
}

impl std::fmt::Debug for FlowTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowTable")
            .field("capacity", &self.capacity())
            .field("len", &self.len)
            .field("evictions", &self.evictions)
            .field("expirations", &self.expired)
            .field("timeouts", &self.timeouts)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    const T: FlowTimeouts = FlowTimeouts {
        tcp_ms: 900_000,
        tcp_fin_ms: 30_000,
        udp_ms: 10_000,
    };

    fn k(n: u32, proto: u8) -> FlowKey {
        let mut src = [0u8; 16];
        src[10] = 0xff;
        src[11] = 0xff;
        src[12..].copy_from_slice(&n.to_be_bytes());
        FlowKey {
            src,
            dst: [1; 16],
            sport: (n % 60000) as u16,
            dport: 80,
            proto,
        }
    }

    #[test]
    fn slices_of_a_scan_cover_every_live_entry_once() {
        let mut t = FlowTable::new(1024, T);
        for n in 0..300 {
            let key = k(n, PROTO_TCP);
            t.insert(&key, key.hash(), n % 7, 0);
        }
        let mut whole = vec![0u32; 7];
        t.for_each_live(1, |_, b| whole[b as usize] += 1);
        let mut sliced = vec![0u32; 7];
        let (mut pos, mut rounds) = (0, 0);
        loop {
            pos = t.for_each_live_in(pos, 5, 1, |_, b| sliced[b as usize] += 1);
            rounds += 1;
            if pos == 0 {
                break;
            }
        }
        assert_eq!(whole, sliced);
        assert_eq!(whole.iter().sum::<u32>() as usize, t.len());
        assert_eq!(rounds, (1024 / WAYS).div_ceil(5));
    }

    #[test]
    fn layout_is_one_cache_line_per_entry() {
        assert_eq!(std::mem::size_of::<FlowEntry>(), 64);
        assert_eq!(std::mem::align_of::<FlowEntry>(), 64);
    }

    #[test]
    fn capacity_rounds_up_to_power_of_two() {
        assert_eq!(FlowTable::new(1000, T).capacity(), 1024);
        assert_eq!(FlowTable::new(1024, T).capacity(), 1024);
        assert_eq!(FlowTable::new(0, T).capacity(), WAYS);
        assert_eq!(FlowTable::new(3, T).capacity(), WAYS);
    }

    #[test]
    fn insert_lookup_remove() {
        let mut t = FlowTable::new(1024, T);
        assert!(t.is_empty());
        let a = k(1, 6);
        let b = k(2, 17);
        t.insert(&a, a.hash(), 7, 100);
        t.insert(&b, b.hash(), 9, 100);
        assert_eq!(t.len(), 2);
        assert_eq!(t.lookup(&a, a.hash(), 200).map(|e| e.backend()), Some(7));
        assert_eq!(t.lookup(&b, b.hash(), 200).map(|e| e.backend()), Some(9));
        assert!(t.lookup(&k(3, 6), k(3, 6).hash(), 200).is_none());
        assert!(t.remove(&a, a.hash()));
        assert!(!t.remove(&a, a.hash()));
        assert!(t.lookup(&a, a.hash(), 200).is_none());
        assert_eq!(t.len(), 1);
        // set_backend sticks.
        t.lookup(&b, b.hash(), 300).unwrap().set_backend(3);
        assert_eq!(t.lookup(&b, b.hash(), 300).unwrap().backend(), 3);
    }

    #[test]
    fn overwrite_keeps_len_and_resets_state() {
        let mut t = FlowTable::new(64, T);
        let a = k(1, 6);
        t.insert(&a, a.hash(), 1, 0).close(0);
        assert_eq!(t.len(), 1);
        let e = t.insert(&a, a.hash(), 2, 10);
        assert_eq!(e.backend(), 2);
        assert!(!e.is_closing());
        assert_eq!(t.len(), 1);
        assert_eq!(t.lookup(&a, a.hash(), 20).unwrap().backend(), 2);
    }

    #[test]
    fn expiry_per_protocol() {
        let mut t = FlowTable::new(64, T);
        let tcp = k(1, 6);
        let udp = k(2, 17);
        let icmp = k(3, 1);
        for key in [tcp, udp, icmp] {
            t.insert(&key, key.hash(), 1, 1000);
        }
        // UDP and other protocols: alive just before udp_ms, gone at udp_ms.
        assert!(t.lookup(&udp, udp.hash(), 1000 + T.udp_ms - 1).is_some());
        assert!(t.lookup(&icmp, icmp.hash(), 1000 + T.udp_ms - 1).is_some());
        let last = 1000 + T.udp_ms - 1;
        assert!(t.lookup(&udp, udp.hash(), last + T.udp_ms).is_none());
        assert!(t.lookup(&icmp, icmp.hash(), last + T.udp_ms).is_none());
        assert_eq!(t.len(), 1, "expired entries are freed by lookup");
        // TCP: far beyond udp_ms it lives; expires tcp_ms after last use.
        assert!(t.lookup(&tcp, tcp.hash(), 1000 + T.tcp_ms - 1).is_some());
        let last = 1000 + T.tcp_ms - 1;
        assert!(t.lookup(&tcp, tcp.hash(), last + T.tcp_ms - 1).is_some());
        let last = last + T.tcp_ms - 1;
        assert!(t.lookup(&tcp, tcp.hash(), last + T.tcp_ms).is_none());
        assert!(t.is_empty());
        assert_eq!(t.expirations(), 3);
    }

    #[test]
    fn fin_shortens_life() {
        let mut t = FlowTable::new(64, T);
        let a = k(1, 6);
        t.insert(&a, a.hash(), 1, 0);
        let e = t.lookup(&a, a.hash(), 5000).unwrap();
        e.close(5000);
        assert!(e.is_closing());
        assert!(t.lookup(&a, a.hash(), 5000 + T.tcp_fin_ms - 1).is_some());
        // Each packet after FIN refreshes with the FIN timeout, not the TCP one.
        let last = 5000 + T.tcp_fin_ms - 1;
        assert!(t.lookup(&a, a.hash(), last + T.tcp_fin_ms).is_none());
    }

    #[test]
    fn insert_absent_after_a_miss_is_insert() {
        let (mut a, mut b) = (FlowTable::new(64, T), FlowTable::new(64, T));
        for n in 0..200u32 {
            let u = k(n, 17);
            let now = u64::from(n) * 7;
            assert!(a.lookup(&u, u.hash(), now).is_none());
            assert!(b.lookup(&u, u.hash(), now).is_none());
            a.insert(&u, u.hash(), n, now);
            b.insert_absent(&u, u.hash(), n, now);
        }
        assert_eq!((a.len(), a.evictions()), (b.len(), b.evictions()));
        let (mut la, mut lb) = (vec![], vec![]);
        a.for_each_live(1400, |k, be| la.push((*k, be)));
        b.for_each_live(1400, |k, be| lb.push((*k, be)));
        assert_eq!(la, lb);
        assert!(!la.is_empty());
    }

    #[test]
    fn lookup_refreshes_last_seen() {
        let mut t = FlowTable::new(64, T);
        let u = k(9, 17);
        t.insert(&u, u.hash(), 1, 0);
        for step in 1..=10u64 {
            assert!(t.lookup(&u, u.hash(), step * (T.udp_ms - 1)).is_some());
        }
    }

    /// Keys that all land in one bucket (same low hash bits).
    fn same_bucket_keys(t: &FlowTable, n: usize) -> Vec<FlowKey> {
        let target = t.base(k(0, 6).hash());
        (0u32..)
            .map(|i| k(i, 6))
            .filter(|key| t.base(key.hash()) == target)
            .take(n)
            .collect()
    }

    #[test]
    fn lru_evicts_least_recently_used_not_oldest_inserted() {
        let mut t = FlowTable::new(64, T);
        let keys = same_bucket_keys(&t, WAYS + 2);
        for (i, key) in keys[..WAYS].iter().enumerate() {
            t.insert(key, key.hash(), i as u32, i as u64);
        }
        assert_eq!(t.len(), WAYS);
        // Touch the two oldest inserts: now keys[2] is least recently used, then keys[3].
        t.lookup(&keys[0], keys[0].hash(), 100).unwrap();
        t.lookup(&keys[1], keys[1].hash(), 101).unwrap();
        let n = keys[WAYS];
        t.insert(&n, n.hash(), 99, 102);
        assert_eq!(t.evictions(), 1);
        assert_eq!(t.len(), WAYS);
        assert!(t.lookup(&keys[2], keys[2].hash(), 103).is_none());
        assert_eq!(t.lookup(&n, n.hash(), 103).unwrap().backend(), 99);
        // Touch the survivors at distinct times, keys[4] first: it becomes the LRU.
        let mut order: Vec<FlowKey> = keys[..WAYS]
            .iter()
            .copied()
            .filter(|x| *x != keys[2])
            .collect();
        order.swap(0, 3); // keys[4] to the front
        assert_eq!(order[0], keys[4]);
        order.push(n);
        for (j, key) in order.iter().enumerate() {
            assert!(
                t.lookup(key, key.hash(), 110 + j as u64).is_some(),
                "{key:?} evicted"
            );
        }
        let n2 = keys[WAYS + 1];
        t.insert(&n2, n2.hash(), 98, 200);
        assert_eq!(t.evictions(), 2);
        assert!(t.lookup(&keys[4], keys[4].hash(), 201).is_none());
        assert!(t.lookup(&n, n.hash(), 201).is_some());
        assert!(t.lookup(&n2, n2.hash(), 201).is_some());
    }

    #[test]
    fn full_bucket_reuses_expired_way_before_evicting() {
        let mut t = FlowTable::new(64, T);
        let keys = same_bucket_keys(&t, WAYS + 1);
        for (i, key) in keys[..WAYS].iter().enumerate() {
            let proto_key = if i == 5 {
                FlowKey { proto: 17, ..*key }
            } else {
                *key
            };
            t.insert(&proto_key, key.hash(), i as u32, 0);
        }
        // At udp_ms the UDP entry (way 5) is expired; the TCP ones are not, and all TCP
        // entries are older or equal in last_seen, yet the expired one goes.
        let n = keys[WAYS];
        t.insert(&n, n.hash(), 42, T.udp_ms);
        assert_eq!(t.evictions(), 0);
        assert_eq!(t.expirations(), 1);
        assert_eq!(t.len(), WAYS);
        for key in &keys[..5] {
            assert!(t.lookup(key, key.hash(), T.udp_ms).is_some());
        }
    }

    #[test]
    fn capacity_respected_under_ten_times_inserts_and_no_reallocation() {
        let mut t = FlowTable::new(1000, T);
        let cap = t.capacity();
        let (tp, ep) = (t.tags.as_ptr(), t.entries.as_ptr());
        let (tc, ec) = (t.tags.capacity(), t.entries.capacity());
        let mut x = 0x1234_5678_9abc_def1u64;
        for i in 0..(10 * cap) as u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = k(x as u32, if x & 1 == 0 { 6 } else { 17 });
            t.insert(&key, key.hash(), (x >> 40) as u32, i);
            assert!(t.len() <= cap);
            if i % 7 == 0 {
                t.expire_some(i, 4);
            }
            if i % 3 == 0 {
                t.lookup(&key, key.hash(), i);
            }
        }
        assert!(t.evictions() > 0);
        assert_eq!(t.capacity(), cap);
        assert_eq!((t.tags.as_ptr(), t.entries.as_ptr()), (tp, ep));
        assert_eq!((t.tags.capacity(), t.entries.capacity()), (tc, ec));
        let mut live = 0;
        t.for_each_live(10 * cap as u64, |_, _| live += 1);
        assert!(live <= t.len());
    }

    #[test]
    fn expire_some_is_bounded_and_sweeps_everything() {
        let mut t = FlowTable::new(4096, T);
        for n in 0..100 {
            let key = k(n, 17);
            t.insert(&key, key.hash(), n, 0);
        }
        let keep = k(1000, 6);
        t.insert(&keep, keep.hash(), 5, 0);
        assert_eq!(t.len(), 101);
        let buckets = t.capacity() / WAYS;
        // Not expired yet: nothing freed.
        assert_eq!(t.expire_some(T.udp_ms - 1, buckets), 0);
        // A bounded slice frees only entries in that slice.
        let first = t.expire_some(T.udp_ms, 1);
        assert!(first <= WAYS);
        let mut total = first;
        for _ in 0..buckets {
            total += t.expire_some(T.udp_ms, 1);
        }
        assert_eq!(total, 100);
        assert_eq!(t.len(), 1);
        let mut seen = vec![];
        t.for_each_live(T.udp_ms, |key, b| seen.push((*key, b)));
        assert_eq!(seen, vec![(keep, 5)]);
    }

    #[test]
    fn for_each_live_skips_expired() {
        let mut t = FlowTable::new(64, T);
        let (a, b) = (k(1, 6), k(2, 17));
        t.insert(&a, a.hash(), 1, 0);
        t.insert(&b, b.hash(), 2, 0);
        let mut got = vec![];
        t.for_each_live(T.udp_ms, |_, be| got.push(be));
        assert_eq!(got, vec![1]);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u16, u32),
        Lookup(u16),
        Remove(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0u16..300, any::<u32>()).prop_map(|(k, b)| Op::Insert(k, b)),
            2 => (0u16..300).prop_map(Op::Lookup),
            1 => (0u16..300).prop_map(Op::Remove),
        ]
    }

    proptest! {
        /// Against a model (HashMap key -> backend) with no expiry: whatever the table
        /// returns is what the model has; a key missing from the table was evicted
        /// (evictions account for exactly the model's extra keys), and
        /// evictions == new inserts - len - successful removes.
        #[test]
        fn matches_model(ops in proptest::collection::vec(op(), 1..400)) {
            let mut t = FlowTable::new(64, T);
            let mut model: HashMap<FlowKey, u32> = HashMap::new();
            let (mut new_inserts, mut removes) = (0u64, 0u64);
            for (now, o) in ops.into_iter().enumerate() {
                let now = now as u64;
                match o {
                    Op::Insert(n, b) => {
                        let key = k(n as u32, 6);
                        let present = t.lookup(&key, key.hash(), now).is_some();
                        if !present { new_inserts += 1; }
                        let e = t.insert(&key, key.hash(), b, now);
                        prop_assert_eq!(e.backend(), b);
                        model.insert(key, b);
                        prop_assert_eq!(t.lookup(&key, key.hash(), now).map(|e| e.backend()), Some(b));
                    }
                    Op::Lookup(n) => {
                        let key = k(n as u32, 6);
                        match t.lookup(&key, key.hash(), now) {
                            Some(e) => prop_assert_eq!(Some(&e.backend()), model.get(&key)),
                            None => { model.remove(&key); } // evicted (or never inserted)
                        }
                    }
                    Op::Remove(n) => {
                        let key = k(n as u32, 6);
                        let was = t.remove(&key, key.hash());
                        if was { removes += 1; prop_assert!(model.contains_key(&key)); }
                        model.remove(&key);
                    }
                }
                prop_assert!(t.len() <= t.capacity());
                prop_assert_eq!(t.evictions(), new_inserts - t.len() as u64 - removes);
            }
            // Every key the table still holds matches the model; the model holds no key the
            // table lost except through eviction (counted above).
            let mut live = 0usize;
            t.for_each_live(400, |key, b| { live += 1; assert_eq!(model.get(key), Some(&b)); });
            prop_assert_eq!(live, t.len());
            prop_assert!(model.len() >= t.len());
        }

        /// With a table big enough that no bucket overflows, every inserted key is found.
        #[test]
        fn no_loss_without_pressure(keys in proptest::collection::hash_set(any::<u32>(), 1..50)) {
            let mut t = FlowTable::new(1 << 14, T);
            for &n in &keys { let key = k(n, 17); t.insert(&key, key.hash(), n, 0); }
            // 50 keys in 2048 buckets of 8 ways: a bucket overflow would need 9 collisions.
            prop_assert_eq!(t.evictions(), 0);
            for &n in &keys {
                let key = k(n, 17);
                prop_assert_eq!(t.lookup(&key, key.hash(), 1).map(|e| e.backend()), Some(n));
            }
        }
    }
}
