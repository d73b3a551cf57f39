/* server/childenv.h — the environment commands get: the server's own, minus the secrets
 * the server holds for itself (provider API keys, sandbox tokens, GitHub tokens, the sudo
 * password), except names the user lists in SHELLWIRE_PASS_ENV. */
#ifndef SW_CHILDENV_H
#define SW_CHILDENV_H

#include <stdbool.h>

/* True when a variable of this name is withheld from commands by default. */
bool sw_childenv_is_secret(const char *name, size_t len);
/* A NULL-terminated copy of environ without secrets (caller owns it and its strings). */
char **sw_childenv_build(char **environ_, const char *pass_env);

#endif
