/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Frame parsing for the XDP program: Ethernet with zero or one 802.1Q/802.1ad tag, then
 * IPv4 (IHL checked), IPv6 (up to XLB_MAX_IPV6_EXT_HDRS extension headers walked), ARP
 * requests and ICMPv6 Neighbor Solicitations. Every read is bounds-checked against
 * data_end; nothing here loops without a bound.
 */
#ifndef XLB_PARSE_H
#define XLB_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "xlb_shared.h"

/* pkt.proto when the IPv6 header chain could not be walked to the L4 header. */
#define XLB_PROTO_UNKNOWN 255
#define XLB_IP_MF_OFFSET 0x3fff
#define XLB_ARP_HTYPE_ETHER 1
#define XLB_ARP_OP_REQUEST 1
#define XLB_ND_NEIGHBOR_SOLICIT 135

enum xlb_kind {
	XLB_KIND_OTHER = 0, /* not IP, or the IP destination is not readable */
	XLB_KIND_IP,        /* pkt.addr = IP destination */
	XLB_KIND_ND,        /* ARP request or NS: pkt.addr = the address asked for */
};

struct xlb_pkt {
	__u8 addr[16];  /* IPv4-mapped for IPv4 and ARP */
	__u16 dport;    /* host order; meaningful when !irregular */
	__u8 proto;     /* L4 protocol, or XLB_PROTO_UNKNOWN */
	__u8 irregular; /* fragment, truncated L4 header or malformed IP header */
};

struct xlb_vlan_hdr {
	__be16 tci;
	__be16 proto;
};

struct xlb_ports {
	__be16 source;
	__be16 dest;
};

struct xlb_ipv6_ext {
	__u8 nexthdr;
	__u8 len; /* in 8-byte units, not counting the first 8 bytes */
};

struct xlb_ipv6_frag {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off;
	__be32 id;
};

struct xlb_arp_ipv4 {
	__be16 htype;
	__be16 ptype;
	__u8 hlen;
	__u8 plen;
	__be16 op;
	__u8 sha[ETH_ALEN];
	__u8 spa[4];
	__u8 tha[ETH_ALEN];
	__u8 tpa[4];
};

struct xlb_nd_ns {
	__u8 type;
	__u8 code;
	__be16 csum;
	__be32 reserved;
	__u8 target[16];
};

static __always_inline void xlb_v4mapped(__u8 *addr, const void *v4)
{
	__builtin_memset(addr, 0, 10);
	addr[10] = 0xff;
	addr[11] = 0xff;
	__builtin_memcpy(&addr[12], v4, 4);
}

static __always_inline int xlb_parse_ipv4(void *pos, void *end, struct xlb_pkt *p)
{
	struct iphdr *ip = pos;
	struct xlb_ports *ports;
	__u8 vihl;

	if ((void *)(ip + 1) > end)
		return XLB_KIND_OTHER;
	xlb_v4mapped(p->addr, &ip->daddr);
	p->proto = ip->protocol;
	p->dport = 0;
	p->irregular = 1;
	vihl = *(__u8 *)ip;
	if ((vihl >> 4) != 4 || (vihl & 0xf) < 5)
		return XLB_KIND_IP;
	if (ip->frag_off & bpf_htons(XLB_IP_MF_OFFSET))
		return XLB_KIND_IP;
	ports = pos + (vihl & 0xf) * 4;
	if ((void *)(ports + 1) > end)
		return XLB_KIND_IP;
	p->dport = bpf_ntohs(ports->dest);
	p->irregular = 0;
	return XLB_KIND_IP;
}

static __always_inline int xlb_is_ipv6_ext(__u8 nh)
{
	return nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_DSTOPTS ||
	       nh == IPPROTO_FRAGMENT;
}

static __always_inline int xlb_parse_ipv6(void *pos, void *end, struct xlb_pkt *p)
{
	struct ipv6hdr *ip6 = pos;
	struct xlb_ports *ports;
	struct xlb_nd_ns *ns;
	__u8 nh;
	int i;

	if ((void *)(ip6 + 1) > end)
		return XLB_KIND_OTHER;
	__builtin_memcpy(p->addr, &ip6->daddr, 16);
	nh = ip6->nexthdr;
	p->proto = nh;
	p->dport = 0;
	p->irregular = 1;
	if ((*(__u8 *)ip6 >> 4) != 6)
		return XLB_KIND_IP;
	pos = ip6 + 1;

#pragma unroll
	for (i = 0; i < XLB_MAX_IPV6_EXT_HDRS; i++) {
		if (nh == IPPROTO_FRAGMENT) {
			struct xlb_ipv6_frag *fh = pos;

			/* Any fragment header: userspace decides (and drops). */
			p->proto = (void *)(fh + 1) > end ? XLB_PROTO_UNKNOWN : fh->nexthdr;
			return XLB_KIND_IP;
		}
		if (nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_DSTOPTS) {
			struct xlb_ipv6_ext *ext = pos;

			if ((void *)(ext + 1) > end) {
				p->proto = XLB_PROTO_UNKNOWN;
				return XLB_KIND_IP;
			}
			nh = ext->nexthdr;
			pos += (ext->len + 1) * 8;
		}
	}
	if (xlb_is_ipv6_ext(nh)) {
		/* More extension headers than we walk. */
		p->proto = XLB_PROTO_UNKNOWN;
		return XLB_KIND_IP;
	}
	p->proto = nh;
	if (nh == IPPROTO_ICMPV6) {
		ns = pos;
		if ((void *)(ns + 1) <= end && ns->type == XLB_ND_NEIGHBOR_SOLICIT && ns->code == 0) {
			__builtin_memcpy(p->addr, ns->target, 16);
			return XLB_KIND_ND;
		}
		return XLB_KIND_IP;
	}
	ports = pos;
	if ((void *)(ports + 1) > end)
		return XLB_KIND_IP;
	p->dport = bpf_ntohs(ports->dest);
	p->irregular = 0;
	return XLB_KIND_IP;
}

static __always_inline int xlb_parse_arp(void *pos, void *end, struct xlb_pkt *p)
{
	struct xlb_arp_ipv4 *arp = pos;

	if ((void *)(arp + 1) > end)
		return XLB_KIND_OTHER;
	if (arp->htype != bpf_htons(XLB_ARP_HTYPE_ETHER) || arp->ptype != bpf_htons(ETH_P_IP) ||
	    arp->hlen != ETH_ALEN || arp->plen != 4 || arp->op != bpf_htons(XLB_ARP_OP_REQUEST))
		return XLB_KIND_OTHER;
	xlb_v4mapped(p->addr, arp->tpa);
	return XLB_KIND_ND;
}

/* Classifies the frame and fills *p for XLB_KIND_IP and XLB_KIND_ND. */
static __always_inline int xlb_parse(void *data, void *end, struct xlb_pkt *p)
{
	struct ethhdr *eth = data;
	void *pos;
	__be16 type;

	if ((void *)(eth + 1) > end)
		return XLB_KIND_OTHER;
	type = eth->h_proto;
	pos = eth + 1;
	if (type == bpf_htons(ETH_P_8021Q) || type == bpf_htons(ETH_P_8021AD)) {
		struct xlb_vlan_hdr *vh = pos;

		if ((void *)(vh + 1) > end)
			return XLB_KIND_OTHER;
		type = vh->proto;
		pos = vh + 1;
	}
	if (type == bpf_htons(ETH_P_IP))
		return xlb_parse_ipv4(pos, end, p);
	if (type == bpf_htons(ETH_P_IPV6))
		return xlb_parse_ipv6(pos, end, p);
	if (type == bpf_htons(ETH_P_ARP))
		return xlb_parse_arp(pos, end, p);
	return XLB_KIND_OTHER;
}

#endif /* XLB_PARSE_H */
