/* XDP_PASS everything: attached to a veth's peer so that native XDP_TX / redirects into
 * that veth are delivered (DESIGN.md §5), and to give a veth NAPI for threaded polling. */
#include "bench_xdp.h"

SEC("xdp")
int pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
