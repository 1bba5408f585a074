/* xdpgen: drives xdpgen.bpf.o with BPF_PROG_RUN in live-frames mode
 * (BPF_F_TEST_XDP_LIVE_FRAMES), so that frames are XDP_TXed out of DEV, for SECONDS.
 * Prints the number of frames generated. Run it inside DEV's network namespace, pinned
 * to one CPU (scripts/bench-pps.sh does). Loads the ELF object with the system's libbpf
 * (libbpf.so.1; its headers need not be installed, the few prototypes are below).
 *
 *   xdpgen OBJECT DEV SECONDS */
#include <errno.h>
#include <linux/bpf.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct bpf_object;
struct bpf_program;
struct bpf_object *bpf_object__open_file(const char *path, const void *opts);
int bpf_object__load(struct bpf_object *obj);
struct bpf_program *bpf_object__find_program_by_name(const struct bpf_object *obj,
						     const char *name);
int bpf_program__fd(const struct bpf_program *prog);
void bpf_object__close(struct bpf_object *obj);

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	unsigned char frame[60] = { 0 };
	struct xdp_md ctx = { 0 };
	union bpf_attr attr;
	struct bpf_object *obj;
	struct bpf_program *prog;
	unsigned long long total = 0;
	const unsigned int repeat = 1 << 16;
	double secs, t0;
	int fd;

	if (argc != 4 || (secs = atof(argv[3])) <= 0 || secs > 600) {
		fprintf(stderr, "usage: xdpgen OBJECT DEV SECONDS (0 < SECONDS <= 600)\n");
		return 64;
	}
	ctx.ingress_ifindex = if_nametoindex(argv[2]);
	if (!ctx.ingress_ifindex) {
		fprintf(stderr, "xdpgen: no device %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	obj = bpf_object__open_file(argv[1], NULL);
	if (!obj || bpf_object__load(obj)) {
		fprintf(stderr, "xdpgen: cannot load %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	prog = bpf_object__find_program_by_name(obj, "xdpgen");
	if (!prog) {
		fprintf(stderr, "xdpgen: no program 'xdpgen' in %s\n", argv[1]);
		return 1;
	}
	fd = bpf_program__fd(prog);
	ctx.data_end = sizeof(frame);
	t0 = now();
	while (now() - t0 < secs) {
		memset(&attr, 0, sizeof(attr));
		attr.test.prog_fd = fd;
		attr.test.data_in = (uintptr_t)frame;
		attr.test.data_size_in = sizeof(frame);
		attr.test.ctx_in = (uintptr_t)&ctx;
		attr.test.ctx_size_in = sizeof(ctx);
		attr.test.repeat = repeat;
		attr.test.flags = BPF_F_TEST_XDP_LIVE_FRAMES;
		attr.test.batch_size = 64;
		if (syscall(__NR_bpf, BPF_PROG_TEST_RUN, &attr, sizeof(attr))) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "xdpgen: BPF_PROG_TEST_RUN: %s\n", strerror(errno));
			return 1;
		}
		total += repeat;
	}
	printf("%llu frames in %.3f s\n", total, now() - t0);
	bpf_object__close(obj);
	return 0;
}
