// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* xlb XDP entry point: placeholder that passes everything (replaced by the data plane). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xlb_xdp(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
