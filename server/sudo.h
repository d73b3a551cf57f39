/* server/sudo.h — SUDO_PASSWORD support: every real `sudo` in command position becomes
 * `sudo -S -p ''` so it reads the password from stdin, which the server fills with one
 * password line per sudo. The password never appears on a command line or in the
 * environment of commands. */
#ifndef SW_SUDO_H
#define SW_SUDO_H

#include <stdbool.h>

/* Returns the rewritten command (caller frees) and the number of sudo words in *count,
 * or NULL when the command has none in command position. Quoted text, comments and
 * arguments (grep sudo, echo sudo) are left alone; /usr/bin/sudo and "sudo" count. */
char *sw_sudo_rewrite(const char *command, int *count);
/* True when a sudo in command position already reads its password from stdin (-S), which
 * without SUDO_PASSWORD can only mean guessing one. */
bool sw_sudo_reads_stdin(const char *command);

#endif
