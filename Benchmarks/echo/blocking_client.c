/* The baseline: plain blocking sockets, one thread per connection, 1-byte ping-pong.
 * usage: blocking_client PORT CONNECTIONS SECONDS  -> prints round trips per second */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int port;
static double seconds;
static atomic_long total;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void *worker(void *unused) {
    (void)unused;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port) };
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&address, sizeof address) != 0) { perror("connect"); exit(1); }
    char byte = 'x';
    long count = 0;
    double end = now() + seconds;
    while ((count & 63) != 0 || now() < end) {
        if (send(fd, &byte, 1, MSG_NOSIGNAL) != 1 || recv(fd, &byte, 1, 0) != 1) { perror("ping"); exit(1); }
        count++;
    }
    atomic_fetch_add(&total, count);
    close(fd);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: %s PORT CONNECTIONS SECONDS\n", argv[0]); return 2; }
    port = atoi(argv[1]);
    int connections = atoi(argv[2]);
    seconds = atof(argv[3]);
    pthread_t *threads = calloc((size_t)connections, sizeof *threads);
    double start = now();
    for (int i = 0; i < connections; i++) pthread_create(&threads[i], NULL, worker, NULL);
    for (int i = 0; i < connections; i++) pthread_join(threads[i], NULL);
    printf("%.0f\n", (double)atomic_load(&total) / (now() - start));
    return 0;
}
