/* Shared bits of the benchmark XDP programs (scripts/bench-pps.sh builds them with
 * clang -target bpf; no libbpf headers needed). Compile-time parameters come as -D:
 *   VIP (IPv4, host order as 0xAABBCCDD), PORT (UDP destination port), and the MACs
 *   below. */
#ifndef BENCH_XDP_H
#define BENCH_XDP_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>

#define SEC(name) __attribute__((section(name), used))
#define INLINE static inline __attribute__((always_inline))
#define BE16(x) ((__u16)__builtin_bswap16((__u16)(x)))
#define BE32(x) ((__u32)__builtin_bswap32((__u32)(x)))

#ifndef VIP
#define VIP 0x0a630064 /* 10.99.0.100 */
#endif
#ifndef PORT
#define PORT 9000
#endif
/* MACs as 0xAABBCCDDEEFF: the three real servers and the director (LOCAL). */
#ifndef RS1
#define RS1 0x029900000011ULL
#define RS2 0x029900000012ULL
#define RS3 0x029900000013ULL
#define LOCAL 0x029900000002ULL
#endif

INLINE __u64 get_mac(const unsigned char *p)
{
	return (__u64)p[0] << 40 | (__u64)p[1] << 32 | (__u64)p[2] << 24 | (__u64)p[3] << 16 |
	       (__u64)p[4] << 8 | p[5];
}

INLINE void put_mac(unsigned char *p, __u64 m)
{
	p[0] = m >> 40;
	p[1] = m >> 32;
	p[2] = m >> 24;
	p[3] = m >> 16;
	p[4] = m >> 8;
	p[5] = m;
}

/* Returns the UDP header of an IPv4 UDP packet to VIP:PORT (no IP options), or 0. */
INLINE struct udphdr *vip_udp(void *data, void *end, struct iphdr **ipp)
{
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);

	if ((void *)(udp + 1) > end)
		return 0;
	if (eth->h_proto != BE16(ETH_P_IP) || ip->ihl != 5 || ip->protocol != IPPROTO_UDP)
		return 0;
	if (ip->daddr != BE32(VIP) || udp->dest != BE16(PORT))
		return 0;
	*ipp = ip;
	return udp;
}

#endif
