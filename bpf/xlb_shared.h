/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Types and limits shared between the XDP program and xlb (Rust). libbpf-cargo turns the
 * BTF of these types into Rust (`skel::types`); Rust never redefines them by hand.
 */
#ifndef XLB_SHARED_H
#define XLB_SHARED_H

#include <linux/types.h>

/* Size of the XSKMAP: one AF_XDP socket per rx queue index. */
#define XLB_MAX_QUEUES 64
/* Entries of the services map (and of the vips map: at most one VIP per service). */
#define XLB_MAX_SERVICES 1024
#define XLB_MAX_VIPS XLB_MAX_SERVICES
/* IPv6 extension headers walked before giving up on finding the L4 header. */
#define XLB_MAX_IPV6_EXT_HDRS 4
/* Liveness timeout used when the control plane has not set one (ctl.stale_ns == 0). */
#define XLB_DEFAULT_STALE_NS 1000000000ULL
/* ctl.flags: a service frame on a queue without an AF_XDP socket is dropped (counted as
 * no_socket) instead of passed. xlb sets it: its sockets close the instant it dies, long
 * before the liveness stamp goes stale, and the kernel would RST for the VIP meanwhile. */
#define XLB_CTL_DROP_UNBOUND 1

/* services key: IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d), port in HOST byte order,
 * port 0 = every port, proto = IPPROTO_TCP or IPPROTO_UDP, pad = 0. */
struct xlb_svc_key {
	__u8 addr[16];
	__u16 port;
	__u8 proto;
	__u8 pad;
};

struct xlb_svc_val {
	__u32 id;
	__u32 flags;
};

/* vips key: the VIP, IPv4-mapped like xlb_svc_key.addr. */
struct xlb_vip_key {
	__u8 addr[16];
};

/* vips value: which protocols have at least one service on the VIP (0 or 1 each). */
struct xlb_vip_val {
	__u8 tcp;
	__u8 udp;
	__u8 pad[2];
};

/* ctl[0]: written by the control plane only.
 * active:   1 when this director should serve (VRRP master, or no VRRP).
 * flags:    XLB_CTL_* bits.
 * stamp_ns: CLOCK_MONOTONIC (= bpf_ktime_get_ns) of the last liveness refresh; 0 = never.
 * stale_ns: liveness timeout; 0 = XLB_DEFAULT_STALE_NS. */
struct xlb_ctl {
	__u32 active;
	__u32 flags;
	__u64 stamp_ns;
	__u64 stale_ns;
};

/*
 * Per-CPU counters, stats[0]. Every frame counts in exactly one of the verdict counters
 * (redirected .. dropped_nd_stale); irregular additionally counts frames sent towards
 * userspace without a service lookup (fragment, truncated L4 header, bad IP header).
 */
struct xlb_stats {
	__u64 redirected;       /* VIP service frame redirected to the queue's socket */
	__u64 passed;           /* not for a VIP protocol of ours: XDP_PASS */
	__u64 no_socket;        /* would redirect, but no socket on this queue: XDP_PASS */
	__u64 inactive;         /* VIP protocol frame while not active: XDP_PASS */
	__u64 no_service;       /* VIP and protocol known, port not configured: XDP_PASS */
	__u64 dropped_stale;    /* VIP protocol frame while the control plane is stale: XDP_DROP */
	__u64 dropped_nd_stale; /* ARP request / NS for a VIP while stale: XDP_DROP */
	__u64 irregular;        /* (not a verdict) fragment/truncated/malformed, to redirect */
};

#endif /* XLB_SHARED_H */
