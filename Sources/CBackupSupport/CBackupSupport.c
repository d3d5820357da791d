#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
#include "CBackupSupport.h"

int cbackup_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

int cbackup_mkstemp_cloexec(char *template_path) { return mkostemp(template_path, O_CLOEXEC); }
