/* Counting sink for scripts/bench-pps.sh: drops the benchmark's UDP packets to VIP:PORT
 * that the director forwarded correctly (source MAC = the director's, destination MAC =
 * one of the three real servers') and passes everything else. veth counts the drops
 * (`ethtool -S`: rx_queue_0_xdp_drops), which is the count the benchmark reads. Attached
 * to the switch port facing the director (default) or to each real server's eth0. */
#include "bench_xdp.h"

SEC("xdp")
int sink(struct xdp_md *ctx)
{
	struct iphdr *ip;
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u64 dst;

	if (!vip_udp(data, end, &ip))
		return XDP_PASS;
	dst = get_mac(eth->h_dest);
	if (get_mac(eth->h_source) != LOCAL || (dst != RS1 && dst != RS2 && dst != RS3))
		return XDP_PASS;
	return XDP_DROP;
}

char _license[] SEC("license") = "GPL";
