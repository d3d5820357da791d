#define _GNU_SOURCE
#include "CHTTPSupport.h"
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#if defined(__linux__)
int chttp_accept_cloexec_nonblock(int fd) {
    return accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
}

int chttp_pipe_cloexec_nonblock(int fds[2]) {
    return pipe2(fds, O_CLOEXEC | O_NONBLOCK);
}

int chttp_socket_cloexec_nonblock(int family) {
    return socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
}
#else
/* Platforms without the atomic flags: set them right after creation. */
static int chttp_flags(int fd) {
    if (fd < 0) return fd;
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

int chttp_accept_cloexec_nonblock(int fd) { return chttp_flags(accept(fd, NULL, NULL)); }

int chttp_pipe_cloexec_nonblock(int fds[2]) {
    if (pipe(fds) != 0) return -1;
    chttp_flags(fds[0]);
    chttp_flags(fds[1]);
    return 0;
}

int chttp_socket_cloexec_nonblock(int family) { return chttp_flags(socket(family, SOCK_STREAM, 0)); }
#endif
