/* cpgload: a CPG load client on the real libcpg.so.4, identical for corosync and totemd.
 *
 *   cpgload MODE GROUP MEMBERS SENDERS SIZE SECONDS [MAXPINGS]
 *
 * MODE is send, recv or ping. Every instance joins GROUP, waits until the group has
 * MEMBERS members, prints "ready" and waits for a line on stdin (the harness starts all
 * nodes at once that way). Then:
 *   send  multicasts SIZE-byte messages (CPG_TYPE_AGREED) as fast as the daemon takes
 *         them for SECONDS, then an END marker, dispatching (CS_DISPATCH_ALL) after every
 *         8 sends; CS_ERR_TRY_AGAIN is answered by dispatching and, if that delivered
 *         nothing, waiting up to 1 ms for the cpg fd (no busy loop), then retrying.
 *   ping  sends one SIZE-byte message, waits for its own delivery, repeats, for SECONDS
 *         or MAXPINGS round trips, then an END marker.
 *   recv  only receives.
 * Every mode counts deliveries (all of them: a sender is a receiver too) until it has
 * seen SENDERS END markers, and checks each sender's sequence for gaps. Finally it prints
 * one JSON line with its counts, the delivery window and latencies (for ping messages:
 * send time to delivery time on this node; CLOCK_MONOTONIC is shared by all network
 * namespaces of one host) and its own CPU time.
 *
 * Client CPU (cpu_s) is not all ours: with the shm transport libqb's qb_ipcc_sendv() follows
 * every request with a one-byte notification on the setup socket and retries that send in a
 * busy loop while the socket is full, i.e. while the daemon lags behind in reading it
 * (perf on this client against totemd: ~80% of its CPU in send() from qb_ipc_us_send).
 *
 * No corosync headers are installed here: the few types and prototypes are declared below
 * as corosync 3.1.7's cpg.h and corotypes.h define them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

typedef uint64_t cpg_handle_t;
typedef int cs_error_t;
#define CS_OK 1
#define CS_ERR_TRY_AGAIN 6
#define CS_DISPATCH_ALL 2
#define CPG_TYPE_AGREED 2

struct cpg_name { uint32_t length; char value[128]; };
struct cpg_address { uint32_t nodeid; uint32_t pid; uint32_t reason; };
typedef void (*cpg_deliver_fn_t)(cpg_handle_t, const struct cpg_name *, uint32_t nodeid,
                                 uint32_t pid, void *msg, size_t msg_len);
typedef void (*cpg_confchg_fn_t)(cpg_handle_t, const struct cpg_name *,
                                 const struct cpg_address *members, size_t n_members,
                                 const struct cpg_address *left, size_t n_left,
                                 const struct cpg_address *joined, size_t n_joined);
typedef struct { cpg_deliver_fn_t cpg_deliver_fn; cpg_confchg_fn_t cpg_confchg_fn; } cpg_callbacks_t;

cs_error_t cpg_initialize(cpg_handle_t *handle, cpg_callbacks_t *callbacks);
cs_error_t cpg_finalize(cpg_handle_t handle);
cs_error_t cpg_fd_get(cpg_handle_t handle, int *fd);
cs_error_t cpg_dispatch(cpg_handle_t handle, int dispatch_types);
cs_error_t cpg_join(cpg_handle_t handle, const struct cpg_name *group);
cs_error_t cpg_local_get(cpg_handle_t handle, unsigned int *local_nodeid);
cs_error_t cpg_mcast_joined(cpg_handle_t handle, int guarantee, const struct iovec *iovec,
                            unsigned int iov_len);

#define MAGIC 0x43504742u /* "CPGB" */
enum { K_DATA = 0, K_END = 1, K_PING = 2 };
struct hdr { uint32_t magic, kind; uint64_t seq; uint64_t ts_ns; };

#define MAX_SENDERS 16
#define MAX_LAT 200000

static cpg_handle_t handle;
static int cpg_fd;
static uint32_t my_nodeid, my_pid;
static size_t n_members;
static int ends;
static uint64_t delivered, bytes, gaps, dups, foreign;
static uint64_t t_first, t_last;
static struct { uint32_t nodeid, pid; uint64_t next; } senders[MAX_SENDERS];
static int n_senders;
static uint64_t ping_waiting = UINT64_MAX;
static int ping_got;
static double *lat_ms;
static size_t n_lat;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void deliver(cpg_handle_t h, const struct cpg_name *g, uint32_t nodeid, uint32_t pid,
                    void *msg, size_t len) {
    (void)h; (void)g;
    struct hdr hd;
    if (len < sizeof hd) { foreign++; return; }
    memcpy(&hd, msg, sizeof hd);
    if (hd.magic != MAGIC) { foreign++; return; }
    uint64_t t = now_ns();
    int s;
    for (s = 0; s < n_senders; s++)
        if (senders[s].nodeid == nodeid && senders[s].pid == pid) break;
    if (s == n_senders && n_senders < MAX_SENDERS) {
        senders[s].nodeid = nodeid; senders[s].pid = pid; senders[s].next = hd.seq; n_senders++;
    }
    if (s < MAX_SENDERS) {
        if (hd.seq > senders[s].next) gaps += hd.seq - senders[s].next;
        else if (hd.seq < senders[s].next) dups++;
        senders[s].next = hd.seq + 1;
    }
    if (hd.kind == K_END) { ends++; return; }
    if (!delivered) t_first = t;
    t_last = t;
    delivered++;
    bytes += len;
    if (hd.kind == K_PING) {
        if (n_lat < MAX_LAT) lat_ms[n_lat++] = (double)(t - hd.ts_ns) / 1e6;
        if (nodeid == my_nodeid && pid == my_pid && hd.seq == ping_waiting) ping_got = 1;
    }
}

static void confchg(cpg_handle_t h, const struct cpg_name *g, const struct cpg_address *m, size_t nm,
                    const struct cpg_address *l, size_t nl, const struct cpg_address *j, size_t nj) {
    (void)h; (void)g; (void)m; (void)l; (void)nl; (void)j; (void)nj;
    n_members = nm;
}

static void die(const char *what, int rc) {
    printf("{\"error\": \"%s\", \"rc\": %d}\n", what, rc);
    fflush(stdout);
    exit(3);
}

/* Wait up to timeout_ms for the cpg fd, then dispatch whatever is there. */
static uint64_t n_poll, n_ready, n_dispatch;

static void dispatch_all(void) {
    n_dispatch++;
    cs_error_t rc = cpg_dispatch(handle, CS_DISPATCH_ALL);
    if (rc != CS_OK && rc != CS_ERR_TRY_AGAIN) die("cpg_dispatch", rc);
}

/* Dispatch whatever is in the event ring (without trusting the fd: a busy daemon may send
 * its notification bytes late, as corosync's cpgbench also dispatches blindly); if that
 * delivered nothing and timeout_ms > 0, wait up to timeout_ms for the fd and dispatch again. */
static void pump(int timeout_ms) {
    uint64_t before = delivered + (uint64_t)ends + foreign;
    dispatch_all();
    if (timeout_ms == 0 || delivered + (uint64_t)ends + foreign != before) return;
    struct pollfd p = { .fd = cpg_fd, .events = POLLIN };
    n_poll++;
    if (poll(&p, 1, timeout_ms) > 0) {
        n_ready++;
        dispatch_all();
    }
}

static uint64_t try_again;

static void mcast(char *buf, size_t size, uint32_t kind, uint64_t seq) {
    struct hdr hd = { MAGIC, kind, seq, 0 };
    struct iovec iov = { buf, size };
    for (;;) {
        hd.ts_ns = now_ns();
        memcpy(buf, &hd, sizeof hd);
        cs_error_t rc = cpg_mcast_joined(handle, CPG_TYPE_AGREED, &iov, 1);
        if (rc == CS_OK) return;
        if (rc != CS_ERR_TRY_AGAIN) die("cpg_mcast_joined", rc);
        try_again++;
        pump(1);
    }
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(double q) {
    if (!n_lat) return -1;
    size_t i = (size_t)(q * (double)(n_lat - 1) + 0.5);
    return lat_ms[i];
}

int main(int argc, char **argv) {
    if (argc < 7) {
        fprintf(stderr, "usage: cpgload send|recv|ping GROUP MEMBERS SENDERS SIZE SECONDS [MAXPINGS]\n");
        return 2;
    }
    const char *mode = argv[1];
    const char *group = argv[2];
    size_t want_members = strtoul(argv[3], NULL, 10);
    int want_ends = atoi(argv[4]);
    size_t size = strtoul(argv[5], NULL, 10);
    double seconds = atof(argv[6]);
    uint64_t maxpings = argc > 7 ? strtoull(argv[7], NULL, 10) : 100000;
    if (size < sizeof(struct hdr)) size = sizeof(struct hdr);
    lat_ms = calloc(MAX_LAT, sizeof *lat_ms);
    char *buf = calloc(1, size);
    for (size_t i = sizeof(struct hdr); i < size; i++) buf[i] = (char)('a' + i % 26);
    my_pid = (uint32_t)getpid();

    cpg_callbacks_t cb = { deliver, confchg };
    cs_error_t rc;
    for (int i = 0; (rc = cpg_initialize(&handle, &cb)) == CS_ERR_TRY_AGAIN && i < 100; i++)
        usleep(100000);
    if (rc != CS_OK) die("cpg_initialize", rc);
    if ((rc = cpg_local_get(handle, &my_nodeid)) != CS_OK) die("cpg_local_get", rc);
    if ((rc = cpg_fd_get(handle, &cpg_fd)) != CS_OK) die("cpg_fd_get", rc);
    struct cpg_name name = { 0 };
    name.length = (uint32_t)strlen(group);
    memcpy(name.value, group, name.length);
    for (int i = 0; (rc = cpg_join(handle, &name)) == CS_ERR_TRY_AGAIN && i < 100; i++)
        usleep(100000);
    if (rc != CS_OK) die("cpg_join", rc);

    uint64_t deadline = now_ns() + 60ull * 1000000000ull;
    while (n_members < want_members) {
        if (now_ns() > deadline) die("members", (int)n_members);
        pump(100);
    }
    printf("ready\n");
    fflush(stdout);
    for (;;) { /* wait for the go line, serving the cpg fd meanwhile */
        struct pollfd p[2] = { { .fd = 0, .events = POLLIN }, { .fd = cpg_fd, .events = POLLIN } };
        if (poll(p, 2, 1000) < 0 && errno != EINTR) die("poll", errno);
        if (p[1].revents) cpg_dispatch(handle, CS_DISPATCH_ALL);
        if (p[0].revents) { char line[64]; if (!fgets(line, sizeof line, stdin)) die("stdin", 0); break; }
    }

    uint64_t t_go = now_ns(), t_stop = t_go + (uint64_t)(seconds * 1e9), sent = 0, seq = 0;
    if (!strcmp(mode, "send")) {
        unsigned k = 0;
        while (now_ns() < t_stop) {
            mcast(buf, size, K_DATA, seq++);
            sent++;
            if ((++k & 7) == 0) pump(0);
        }
        mcast(buf, size, K_END, seq++);
    } else if (!strcmp(mode, "ping")) {
        while (now_ns() < t_stop && sent < maxpings) {
            ping_got = 0;
            ping_waiting = seq;
            mcast(buf, size, K_PING, seq++);
            sent++;
            while (!ping_got) {
                if (now_ns() > t_stop + 30ull * 1000000000ull) die("ping lost", (int)sent);
                pump(100);
            }
        }
        mcast(buf, size, K_END, seq++);
    } else if (strcmp(mode, "recv")) {
        die("mode", 0);
    }
    uint64_t t_sent = now_ns();
    deadline = t_sent + 120ull * 1000000000ull;
    int timed_out = 0;
    while (ends < want_ends) {
        if (now_ns() > deadline) { timed_out = 1; break; }
        pump(100);
    }

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    qsort(lat_ms, n_lat, sizeof *lat_ms, cmp_double);
    double window = delivered > 1 ? (double)(t_last - t_first) / 1e9 : 0;
    printf("{\"mode\": \"%s\", \"nodeid\": %u, \"pid\": %u, \"size\": %zu, \"sent\": %llu, "
           "\"send_s\": %.6f, \"try_again\": %llu, \"delivered\": %llu, \"bytes\": %llu, "
           "\"window_s\": %.6f, \"first_after_go_s\": %.6f, \"gaps\": %llu, \"dups\": %llu, "
           "\"foreign\": %llu, \"ends\": %d, \"timed_out\": %d, \"lat_n\": %zu, "
           "\"lat_p50_ms\": %.4f, \"lat_p99_ms\": %.4f, \"lat_max_ms\": %.4f, \"cpu_s\": %.4f, \"polls\": %llu, \"polls_ready\": %llu, \"dispatches\": %llu}\n",
           mode, my_nodeid, my_pid, size, (unsigned long long)sent, (double)(t_sent - t_go) / 1e9,
           (unsigned long long)try_again, (unsigned long long)delivered, (unsigned long long)bytes,
           window, delivered ? (double)(int64_t)(t_first - t_go) / 1e9 : -1.0,
           (unsigned long long)gaps, (unsigned long long)dups, (unsigned long long)foreign, ends,
           timed_out, n_lat, pct(0.5), pct(0.99), n_lat ? lat_ms[n_lat - 1] : -1.0, cpu,
           (unsigned long long)n_poll, (unsigned long long)n_ready, (unsigned long long)n_dispatch);
    fflush(stdout);
    cpg_finalize(handle);
    return timed_out ? 4 : 0;
}
