#define _GNU_SOURCE
/* A single-threaded epoll echo server, the common peer for the transport benchmark.
 * usage: echo_server PORT  (binds 127.0.0.1; prints "ready" once listening) */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: %s PORT\n", argv[0]); return 2; }
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[1])) };
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listener, (struct sockaddr *)&address, sizeof address) != 0 || listen(listener, 1024) != 0) {
        perror("bind/listen");
        return 1;
    }
    int epfd = epoll_create1(0);
    struct epoll_event event = { .events = EPOLLIN, .data.fd = listener };
    epoll_ctl(epfd, EPOLL_CTL_ADD, listener, &event);
    printf("ready\n");
    fflush(stdout);
    struct epoll_event events[256];
    char buffer[65536];
    for (;;) {
        int count = epoll_wait(epfd, events, 256, -1);
        for (int i = 0; i < count; i++) {
            int fd = events[i].data.fd;
            if (fd == listener) {
                int client;
                while ((client = accept4(listener, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct epoll_event client_event = { .events = EPOLLIN, .data.fd = client };
                    epoll_ctl(epfd, EPOLL_CTL_ADD, client, &client_event);
                }
                continue;
            }
            ssize_t received = recv(fd, buffer, sizeof buffer, 0);
            if (received <= 0) {
                if (received < 0 && errno == EAGAIN) continue;
                close(fd);
                continue;
            }
            ssize_t sent = 0;
            while (sent < received) {
                ssize_t n = send(fd, buffer + sent, (size_t)(received - sent), MSG_NOSIGNAL);
                if (n < 0) { if (errno == EAGAIN) continue; break; }
                sent += n;
            }
        }
    }
}
