/* The in-kernel ceiling for scripts/bench-pps.sh: the same work xlb does for a packet to
 * VIP:PORT (pick one of three real servers by a hash of the 5-tuple, rewrite the
 * destination MAC to it and the source MAC to the director's, leave the IP packet as it
 * is) and XDP_TX it back out. No flow table: a plain hash pick. Everything else passes.
 * The MACs come from bench_xdp.h (-D RS1/RS2/RS3/LOCAL). */
#include "bench_xdp.h"

SEC("xdp")
int dr_tx(struct xdp_md *ctx)
{
	struct iphdr *ip;
	struct udphdr *udp;
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 h;
	__u64 mac;

	udp = vip_udp(data, end, &ip);
	if (!udp)
		return XDP_PASS;
	h = ip->saddr ^ ((__u32)udp->source << 16 | udp->dest);
	h ^= h >> 16;
	h *= 0x45d9f3b;
	h ^= h >> 16;
	switch (h % 3) {
	case 0: mac = RS1; break;
	case 1: mac = RS2; break;
	default: mac = RS3; break;
	}
	put_mac(eth->h_dest, mac);
	put_mac(eth->h_source, LOCAL);
	return XDP_TX;
}

char _license[] SEC("license") = "GPL";
