#ifndef CHTTPSUPPORT_H
#define CHTTPSUPPORT_H

/// accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK): the accepted socket is close-on-exec
/// and non-blocking from its creation, so a program spawned by another thread at the same
/// moment never inherits it (Swift's Glibc module hides accept4).
int chttp_accept_cloexec_nonblock(int fd);

/// pipe2(fds, O_CLOEXEC | O_NONBLOCK): the server's wake-up pipe.
int chttp_pipe_cloexec_nonblock(int fds[2]);

/// socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0).
int chttp_socket_cloexec_nonblock(int family);

#endif
