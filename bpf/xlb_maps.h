/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* The maps of the XDP program. Userspace (src/dataplane/bpf.rs) fills them. */
#ifndef XLB_MAPS_H
#define XLB_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "xlb_shared.h"

/* rx queue index -> AF_XDP socket. */
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, XLB_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

/* (VIP, port or 0, proto) -> service. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XLB_MAX_SERVICES);
	__type(key, struct xlb_svc_key);
	__type(value, struct xlb_svc_val);
} services SEC(".maps");

/* VIP -> protocols with a service on it. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XLB_MAX_VIPS);
	__type(key, struct xlb_vip_key);
	__type(value, struct xlb_vip_val);
} vips SEC(".maps");

/* Control-plane state, one entry. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xlb_ctl);
} ctl SEC(".maps");

/* Per-CPU counters, one entry. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xlb_stats);
} stats SEC(".maps");

#endif /* XLB_MAPS_H */
