#ifndef CBACKUPSUPPORT_H
#define CBACKUPSUPPORT_H

/// pipe2(fds, O_CLOEXEC): both ends close-on-exec from their creation, so a program spawned
/// by another thread at the same moment never inherits them (Swift's Glibc hides pipe2).
int cbackup_pipe_cloexec(int fds[2]);

/// mkostemp(template, O_CLOEXEC): a new 0600 file, close-on-exec from its creation.
int cbackup_mkstemp_cloexec(char *template_path);

#endif
