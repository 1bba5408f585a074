/* Load generator for scripts/bench-pps.sh (MODE=direct): run by BPF_PROG_RUN in
 * live-frames mode (xdpgen.c), it turns every frame into a 60-byte UDP frame from
 * 10.99.0.10 (source port 1024..1279, random) to VIP:PORT, addressed to the director's
 * MAC, and XDP_TXes it out of the ingress device (the switch port facing the director,
 * whose peer is the director's eth0). Pages are recycled after the director and the sink
 * have seen (and rewritten) them, so every header is written again on every run.
 * FLOW_BITS (default 8: the 256 flows above; at most 24) random bits pick the flow: the
 * low 8 the source port, the others XORed into the source address's middle bytes
 * (10.x.y.10), so that e.g. -DFLOW_BITS=24 offers 16M flows and churns a 1M flow table. */
#include "bench_xdp.h"

#ifndef GEN_MAC
#define GEN_MAC 0x029900000010ULL /* the client's */
#endif
#define SADDR 0x0a63000a          /* 10.99.0.10 */
#ifndef FLOW_BITS
#define FLOW_BITS 8
#endif

static long (*bpf_get_prandom_u32)(void) = (void *)7;

INLINE __u16 ip_csum(__u32 saddr)
{
	__u32 s = 0x4500 + 46 + 0 + 0x4000 + (64 << 8 | IPPROTO_UDP) + (saddr >> 16) +
		  (saddr & 0xffff) + (VIP >> 16) + (VIP & 0xffff);

	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return ~s;
}

SEC("xdp")
int xdpgen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);
	__u32 r = bpf_get_prandom_u32() & ((1u << FLOW_BITS) - 1);
	__u32 saddr = SADDR ^ ((r >> 8) << 8);

	if ((void *)(udp + 1) > end)
		return XDP_ABORTED;
	put_mac(eth->h_dest, LOCAL);
	put_mac(eth->h_source, GEN_MAC);
	eth->h_proto = BE16(ETH_P_IP);
	ip->version = 4;
	ip->ihl = 5;
	ip->tos = 0;
	ip->tot_len = BE16(46);
	ip->id = 0;
	ip->frag_off = BE16(0x4000);
	ip->ttl = 64;
	ip->protocol = IPPROTO_UDP;
	ip->check = BE16(ip_csum(saddr));
	ip->saddr = BE32(saddr);
	ip->daddr = BE32(VIP);
	udp->source = BE16(1024 + (r & 0xff));
	udp->dest = BE16(PORT);
	udp->len = BE16(26);
	udp->check = 0;
	return XDP_TX;
}

char _license[] SEC("license") = "GPL";
