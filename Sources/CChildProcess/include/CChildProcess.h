#ifndef CCHILDPROCESS_H
#define CCHILDPROCESS_H

#include <spawn.h>

/// pipe2(fds, O_CLOEXEC): both ends close-on-exec from their creation, so a program spawned
/// by another thread at the same moment never inherits them (Swift's Glibc hides pipe2).
int cchild_pipe_cloexec(int fds[2]);

/// mkostemp(template, O_CLOEXEC): a new 0600 file, close-on-exec from its creation.
int cchild_mkstemp_cloexec(char *template_path);

/// Makes the child close every descriptor from `lowest` up before it runs the program:
/// posix_spawn_file_actions_addclosefrom_np where glibc has it (2.34+). Returns 0, or ENOSYS
/// where the C library has no such action (every descriptor this process opens is
/// close-on-exec, so nothing leaks there either).
int cchild_addclosefrom(posix_spawn_file_actions_t *actions, int lowest);

/// Sets the attributes every child gets: every catchable signal back to its default action,
/// an empty signal mask, and (on macOS) POSIX_SPAWN_CLOEXEC_DEFAULT.
int cchild_default_attributes(posix_spawnattr_t *attributes);

#endif
