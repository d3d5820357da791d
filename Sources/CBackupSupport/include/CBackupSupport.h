#ifndef CBACKUPSUPPORT_H
#define CBACKUPSUPPORT_H

/// mkostemp(template, O_CLOEXEC): a new 0600 file, close-on-exec from its creation.
int cbackup_mkstemp_cloexec(char *template_path);

#endif
