#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <unistd.h>
#include "CChildProcess.h"

int cchild_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

int cchild_mkstemp_cloexec(char *template_path) { return mkostemp(template_path, O_CLOEXEC); }

int cchild_addclosefrom(posix_spawn_file_actions_t *actions, int lowest) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    return posix_spawn_file_actions_addclosefrom_np(actions, lowest);
#else
    (void)actions;
    (void)lowest;
    return ENOSYS;
#endif
}

int cchild_default_attributes(posix_spawnattr_t *attributes) {
    sigset_t all, none;
    sigemptyset(&all);
    sigemptyset(&none);
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
#ifdef __GLIBC__
        // sigaddset refuses glibc's internal signals (32 and 33), and posix_spawn leaves those
        // ignored in the child unless they are in the default set: set their bits directly.
        unsigned long *words = (unsigned long *)&all;
        const int bits = 8 * (int)sizeof(unsigned long);
        words[(sig - 1) / bits] |= 1UL << ((sig - 1) % bits);
#else
        sigaddset(&all, sig);
#endif
    }
    int result = posix_spawnattr_setsigdefault(attributes, &all);
    if (result == 0) result = posix_spawnattr_setsigmask(attributes, &none);
    short flags = POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK;
#ifdef POSIX_SPAWN_CLOEXEC_DEFAULT
    flags |= POSIX_SPAWN_CLOEXEC_DEFAULT;
#endif
    if (result == 0) result = posix_spawnattr_setflags(attributes, flags);
    return result;
}
