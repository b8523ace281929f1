#ifndef CTRANSPORT_SHIM_H
#define CTRANSPORT_SHIM_H

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <netdb.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <stdint.h>
#include <stddef.h>
#include <time.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <poll.h>

/* Glibc's epoll_event is packed on x86_64; these accessors keep Swift away from its layout. */
static inline uint64_t ctransport_epoll_event_data(const struct epoll_event *event) {
    return event->data.u64;
}

static inline uint32_t ctransport_epoll_event_events(const struct epoll_event *event) {
    return event->events;
}

static inline int ctransport_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data) {
    struct epoll_event event;
    memset(&event, 0, sizeof(event));
    event.events = events;
    event.data.u64 = data;
    return epoll_ctl(epfd, op, fd, &event);
}

static inline size_t ctransport_epoll_event_size(void) {
    return sizeof(struct epoll_event);
}

/* Copies a path into sockaddr_un; returns the address length, or -1 when the path does not fit. */
static inline int ctransport_make_sockaddr_un(struct sockaddr_un *address, const char *path) {
    size_t length = strlen(path);
    memset(address, 0, sizeof(*address));
    address->sun_family = AF_UNIX;
    if (length >= sizeof(address->sun_path)) {
        return -1;
    }
    memcpy(address->sun_path, path, length);
    return (int)(offsetof(struct sockaddr_un, sun_path) + length + 1);
}

static inline uint64_t ctransport_monotonic_nanoseconds(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
}

static inline void ctransport_set_thread_name(const char *name) {
    prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0);
}

/* Waits up to `nanoseconds` on the calling thread for `fd` to become readable, giving up early
   when the eventfd `wakefd` is signalled (the reactor's way of asking for the thread back), and
   then consuming that signal. Returns 1 when `fd` is readable (or hung up, or in error: the next
   read reports which), 0 on timeout, on the signal or on EINTR, -1 on failure. The raw ppoll
   system call gives sub-millisecond timeouts without _GNU_SOURCE. */
static inline int ctransport_wait_readable(int fd, int wakefd, int64_t nanoseconds) {
    struct pollfd probes[2];
    probes[0].fd = fd;
    probes[0].events = POLLIN | 0x2000; /* POLLRDHUP, a GNU name */
    probes[0].revents = 0;
    probes[1].fd = wakefd;
    probes[1].events = POLLIN;
    probes[1].revents = 0;
    struct timespec timeout;
    timeout.tv_sec = (time_t)(nanoseconds / 1000000000);
    timeout.tv_nsec = (long)(nanoseconds % 1000000000);
    long result = syscall(SYS_ppoll, probes, 2, &timeout, NULL, 0);
    if (result < 0) {
        return errno == EINTR ? 0 : -1;
    }
    if (probes[1].revents != 0) {
        uint64_t value;
        (void)read(wakefd, &value, sizeof(value));
    }
    return probes[0].revents != 0 ? 1 : 0;
}

/* Whether `fd` has input waiting or its peer hung up, without waiting: 1 if so, 0 if not, -1 on
   failure. For a connection nobody reads (an idle pooled one), either means it is not fit to use. */
static inline int ctransport_has_input_or_hangup(int fd) {
    struct pollfd probe;
    probe.fd = fd;
    probe.events = POLLIN | 0x2000; /* POLLRDHUP */
    probe.revents = 0;
    int result = poll(&probe, 1, 0);
    if (result < 0) {
        return -1;
    }
    return result > 0 && probe.revents != 0 ? 1 : 0;
}

#endif
