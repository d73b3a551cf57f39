/* server/childenv.c — see childenv.h. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "server/childenv.h"
#include "server/util.h"

static bool has_suffix(const char *s, size_t len, const char *suf)
{
    size_t n = strlen(suf);
    return len >= n && !memcmp(s + len - n, suf, n);
}

static bool has_prefix(const char *s, size_t len, const char *pre)
{
    size_t n = strlen(pre);
    return len >= n && !memcmp(s, pre, n);
}

bool sw_childenv_is_secret(const char *name, size_t len)
{
    static const char *exact[] = {
        "TOOL_GATEWAY_USER_TOKEN", "GH_TOKEN", "GITHUB_TOKEN", "SUDO_PASSWORD",
        "ANTHROPIC_AUTH_TOKEN", "OPENAI_ORG_ID", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN",
        "TERMINAL_SSH_KEY_PASSPHRASE",
    };
    for (size_t i = 0; i < sizeof exact / sizeof *exact; i++)
        if (strlen(exact[i]) == len && !memcmp(name, exact[i], len)) return true;
    return has_suffix(name, len, "_API_KEY") || has_prefix(name, len, "MODAL_TOKEN_");
}

static bool listed(const char *name, size_t len, const char *list)
{
    const char *p = list;
    while (p && *p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        while (n > 0 && *p == ' ') { p++; n--; }
        while (n > 0 && p[n - 1] == ' ') n--;
        if (n == len && !memcmp(p, name, len)) return true;
        p = end ? end + 1 : NULL;
    }
    return false;
}

char **sw_childenv_build(char **env, const char *pass_env)
{
    size_t n = 0;
    while (env && env[n]) n++;
    char **out = sw_xcalloc(n + 1, sizeof *out);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(env[i], '=');
        if (!eq) continue;
        size_t len = (size_t)(eq - env[i]);
        if (sw_childenv_is_secret(env[i], len) && !listed(env[i], len, pass_env)) continue;
        out[k++] = sw_strdup(env[i]);
    }
    out[k] = NULL;
    return out;
}
