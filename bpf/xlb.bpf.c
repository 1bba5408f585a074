// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * xlb XDP entry point.
 *
 * A frame for a configured virtual service (VIP, protocol, port) is redirected to the
 * AF_XDP socket of its rx queue while the director is active. Fragments and frames whose
 * L4 header is truncated or whose IP header is malformed go the same way when their
 * destination is a VIP with that protocol: the userspace worker drops and counts them by
 * reason. With no socket bound on the queue, the frame is passed, or dropped when the
 * control plane asked for it (XLB_CTL_DROP_UNBOUND: xlb's sockets vanish the instant it
 * is killed, a second before its liveness stamp goes stale).
 *
 * When the control plane's liveness stamp is stale (xlb died without detaching), every
 * IP frame to a VIP (any protocol: TCP, UDP, ICMP echo...), ARP requests and Neighbor
 * Solicitations for a VIP are dropped: the kernel must never answer (or RST) for a VIP
 * of a dead director, or the backup's takeover could not save the connection, and a
 * ping monitor must see the dead director as dead. Everything else is passed.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "xlb_shared.h"
#include "xlb_maps.h"
#include "xlb_parse.h"

/* Bumps one counter of this CPU's struct xlb_stats: XLB_COUNT(redirected). */
#define XLB_COUNT(field)                                                  \
	do {                                                              \
		__u32 _zero = 0;                                          \
		struct xlb_stats *_s = bpf_map_lookup_elem(&stats, &_zero); \
		if (_s)                                                   \
			_s->field += 1;                                   \
	} while (0)

/* The control plane refreshed stamp_ns once and then stopped for longer than stale_ns.
 * The coarse clock (CLOCK_MONOTONIC at tick resolution, a few ms behind the precise one)
 * is plenty for a timeout of about a second and costs no clock-source read: on this
 * VM's TSC, bpf_ktime_get_ns() took ~5% of the NAPI poller's time per redirected frame.
 * Lagging the stamp only errs towards "alive". */
static __always_inline int xlb_stale(const struct xlb_ctl *c)
{
	__u64 limit = c->stale_ns ? c->stale_ns : XLB_DEFAULT_STALE_NS;
	__u64 stamp = c->stamp_ns;
	__u64 now;

	if (!stamp)
		return 0;
	now = bpf_ktime_get_coarse_ns();
	return now > stamp && now - stamp > limit;
}

/* For a frame of a VIP protocol: XDP_DROP while the liveness stamp is stale, XDP_PASS
 * while this director is not active (backup), else -1: steer it to the socket. */
static __always_inline int xlb_gate(const struct xlb_ctl *c)
{
	if (xlb_stale(c)) {
		XLB_COUNT(dropped_stale);
		return XDP_DROP;
	}
	if (!c->active) {
		XLB_COUNT(inactive);
		return XDP_PASS;
	}
	return -1;
}

/* Whether the VIP has a service for the frame's L4 protocol. */
static __always_inline int xlb_vip_has_proto(const struct xlb_vip_val *v, __u8 proto)
{
	if (proto == IPPROTO_TCP)
		return v->tcp;
	if (proto == IPPROTO_UDP)
		return v->udp;
	/* Unparseable IPv6 chain to a VIP: let userspace count it. */
	if (proto == XLB_PROTO_UNKNOWN)
		return v->tcp || v->udp;
	return 0;
}

SEC("xdp")
int xlb_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct xlb_pkt pkt = {};
	struct xlb_vip_key vk = {};
	struct xlb_svc_key sk = {};
	struct xlb_vip_val *vip;
	struct xlb_ctl *c;
	__u32 zero = 0, queue;
	int kind, act, unbound;

	kind = xlb_parse(data, end, &pkt);
	if (kind == XLB_KIND_OTHER)
		goto pass;

	/* Fast path, the common case: a regular frame for a configured VIP:port/protocol
	 * (a service implies its VIP with that protocol, so the vips lookup is skipped:
	 * one hash lookup per redirected frame instead of two). */
	if (kind == XLB_KIND_IP && !pkt.irregular) {
		__builtin_memcpy(sk.addr, pkt.addr, sizeof(sk.addr));
		sk.port = pkt.dport;
		sk.proto = pkt.proto;
		if (bpf_map_lookup_elem(&services, &sk)) {
			c = bpf_map_lookup_elem(&ctl, &zero);
			if (!c)
				goto pass;
			act = xlb_gate(c);
			if (act >= 0)
				return act;
			goto steer;
		}
	}

	__builtin_memcpy(vk.addr, pkt.addr, sizeof(vk.addr));
	vip = bpf_map_lookup_elem(&vips, &vk);
	if (!vip)
		goto pass;
	c = bpf_map_lookup_elem(&ctl, &zero);
	if (!c)
		goto pass;

	if (kind == XLB_KIND_ND) {
		if (xlb_stale(c)) {
			XLB_COUNT(dropped_nd_stale);
			return XDP_DROP;
		}
		goto pass;
	}

	/* Nothing for the VIP reaches a dead director's kernel, whatever the protocol: it
	 * would RST, or answer pings for an address that now belongs to the backup. */
	if (xlb_stale(c)) {
		XLB_COUNT(dropped_stale);
		return XDP_DROP;
	}
	if (!xlb_vip_has_proto(vip, pkt.proto))
		goto pass;
	if (!c->active) {
		XLB_COUNT(inactive);
		return XDP_PASS;
	}
	if (pkt.irregular) {
		XLB_COUNT(irregular);
	} else {
		/* sk holds (VIP, port, proto) and the fast path found no service for it:
		 * try the VIP's every-port service of the protocol. */
		sk.port = 0;
		if (!bpf_map_lookup_elem(&services, &sk)) {
			XLB_COUNT(no_service);
			return XDP_PASS;
		}
	}

steer:
	queue = ctx->rx_queue_index;
	unbound = (c->flags & XLB_CTL_DROP_UNBOUND) ? XDP_DROP : XDP_PASS;
	if (!bpf_map_lookup_elem(&xsks, &queue)) {
		XLB_COUNT(no_socket);
		return unbound;
	}
	act = bpf_redirect_map(&xsks, queue, unbound);
	if (act == XDP_REDIRECT)
		XLB_COUNT(redirected);
	else
		XLB_COUNT(no_socket);
	return act;

pass:
	XLB_COUNT(passed);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
