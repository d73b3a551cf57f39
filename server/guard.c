/* server/guard.c — see guard.h. The pattern table is the policy; everything else only
 * prepares the text so that each pattern can stay simple. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "server/guard.h"

#include <ctype.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "server/log.h"
#include "server/util.h"

/* Command position, then optional prefixes (sudo, env, VAR=value ...). */
#define CP "(?:^|[;&|(`\\n]|\\$\\()\\s*(?:(?:sudo|doas|env|nohup|exec|time|command|builtin|nice|timeout\\s+\\d+\\w?)(?:\\s+-[\\w-]+)*\\s+|[a-z_][a-z0-9_]*=\\S*\\s+)*"
/* A path of system importance (the whole directory, not something inside it). */
#define SYSDIR "(?:/|/\\*|~/?\\*?|\\$home/?\\*?|\\$\\{home\\}/?\\*?|/(?:bin|boot|dev|etc|home|lib|lib32|lib64|opt|proc|root|sbin|srv|sys|usr|var)/?\\*?)"
#define SHELLS "(?:ba|z|da|k|c|tc|fi)?sh"
#define SQL_CLIENT CP "(?:psql|mysql|mariadb|sqlite3|sqlcmd|clickhouse-client|cockroach\\s+sql|duckdb)\\b[^\\n]*"

struct pattern {
    enum sw_guard_verdict verdict;
    const char *key;
    const char *description;
    const char *re;
    const char *hints;   /* '|'-separated literals, one of which a match needs (lower case) */
};

static struct pattern patterns[] = {
    /* ---- hardline: never run ---- */
    {SW_GUARD_HARDLINE, "rm_root", "recursive delete of the root, a system directory or the home directory",
     CP "rm\\s+(?:\\S+\\s+)*?(?:-[a-z]*r[a-z]*|--recursive)\\s+(?:\\S+\\s+)*?" SYSDIR "(?:\\s|$)", "rm"},
    {SW_GUARD_HARDLINE, "rm_no_preserve_root", "rm with --no-preserve-root",
     CP "rm\\b[^\\n;&|]*--no-preserve-root", "no-preserve-root"},
    {SW_GUARD_HARDLINE, "mkfs", "formatting or wiping a block device",
     CP "(?:mkfs(?:\\.\\w+)?|mke2fs|mkswap|wipefs|blkdiscard|sgdisk\\s+--zap-all)\\b[^\\n;&|]*/dev/", "/dev/"},
    {SW_GUARD_HARDLINE, "dd_device", "dd writing onto a block device",
     CP "dd\\b[^\\n;&|]*\\bof=/dev/(?:sd|hd|vd|xvd|nvme|mmcblk|dm-|md|loop|disk)", "of=/dev/"},
    {SW_GUARD_HARDLINE, "redirect_device", "output redirected onto a block device",
     ">\\s*/dev/(?:sd|hd|vd|xvd|nvme|mmcblk|dm-|md|disk)\\w*", "/dev/"},
    {SW_GUARD_HARDLINE, "fork_bomb", "a fork bomb",
     "(\\w+|:)\\s*\\(\\s*\\)\\s*\\{[^}]*\\1\\s*\\|\\s*\\1\\s*&", "&"},
    {SW_GUARD_HARDLINE, "kill_all", "kill -1 (signals every process of the user)",
     CP "kill\\s+(?:-\\w+\\s+)*-1(?:\\s|$)", "kill"},
    {SW_GUARD_HARDLINE, "shutdown", "shutting down or rebooting the machine",
     CP "(?:shutdown|reboot|halt|poweroff|init\\s+[06]|telinit\\s+[06]|systemctl\\s+(?:poweroff|reboot|halt|kexec))(?:\\s|$)", "shutdown|reboot|halt|poweroff|init|kexec"},

    /* ---- approval: run only with the user's consent ---- */
    {SW_GUARD_APPROVAL, "rm_recursive", "recursive delete",
     CP "rm\\s+(?:\\S+\\s+)*?(?:-[a-z]*r[a-z]*|--recursive)(?:\\s|$)", "rm"},
    {SW_GUARD_APPROVAL, "rm_force", "forced delete",
     CP "rm\\s+(?:\\S+\\s+)*?(?:-[a-z]*f[a-z]*|--force)(?:\\s|$)", "rm"},
    {SW_GUARD_APPROVAL, "chmod_world_writable", "making files world-writable",
     CP "chmod\\s+[^\\n;&|]*(?:\\b0?[0-7]?7[0-7]7\\b|\\ba\\+w|\\bo\\+w|\\ba\\+rwx|\\bugo\\+w)", "chmod"},
    {SW_GUARD_APPROVAL, "chmod_recursive_root", "recursive permission change on a system directory",
     CP "chmod\\s+(?:\\S+\\s+)*?-[a-z]*r[a-z]*\\s+(?:\\S+\\s+)*?" SYSDIR "(?:\\s|$)", "chmod"},
    {SW_GUARD_APPROVAL, "chown_recursive_root", "recursive change of owner to root",
     CP "chown\\s+(?:\\S+\\s+)*?-[a-z]*r[a-z]*\\s+(?:\\S+\\s+)*?root\\b", "chown"},
    {SW_GUARD_APPROVAL, "pipe_to_shell", "downloaded content piped into a shell",
     "\\b(?:curl|wget|fetch|aria2c)\\b[^\\n;&]*\\|\\s*(?:sudo\\s+(?:-\\S+\\s+)*)?" SHELLS "\\b", "curl|wget|fetch|aria2c"},
    {SW_GUARD_APPROVAL, "pipe_to_interpreter", "downloaded content piped into an interpreter",
     "\\b(?:curl|wget)\\b[^\\n;&]*\\|\\s*(?:sudo\\s+)?(?:python[0-9.]*|perl|ruby|node|php)\\b", "curl|wget"},
    {SW_GUARD_APPROVAL, "shell_process_substitution", "a shell running downloaded content",
     CP "(?:" SHELLS "|source|\\.)\\s+<\\(\\s*(?:curl|wget)\\b", "<("},
    {SW_GUARD_APPROVAL, "shell_command_substitution", "a shell running downloaded content",
     CP "(?:" SHELLS "\\s+-c\\s+)?\\$\\(\\s*(?:curl|wget)\\b", "$("},
    {SW_GUARD_APPROVAL, "eval_download", "eval of downloaded content",
     CP "eval\\s+\\$\\(\\s*(?:curl|wget)\\b", "eval"},
    {SW_GUARD_APPROVAL, "decode_to_shell", "decoded content piped into a shell",
     "\\b(?:base64\\s+(?:-d|--decode|-D)|base32\\s+(?:-d|--decode)|xxd\\s+-r|openssl\\s+(?:enc\\s+)?(?:-d\\s+)?-?base64\\s+-d)[^\\n;&]*\\|\\s*(?:sudo\\s+)?" SHELLS "\\b", "base64|base32|xxd|openssl"},
    {SW_GUARD_APPROVAL, "sql_drop", "SQL DROP of a table, database or schema",
     SQL_CLIENT "\\bdrop\\s+(?:table|database|schema|index|view)\\b", "drop"},
    {SW_GUARD_APPROVAL, "sql_truncate", "SQL TRUNCATE",
     SQL_CLIENT "\\btruncate\\s+(?:table\\s+)?\\w", "truncate"},
    {SW_GUARD_APPROVAL, "sql_delete_all", "SQL DELETE without WHERE",
     SQL_CLIENT "\\bdelete\\s+from\\s+[\\w.\"`]+\\s*(?:;|$|\\n)", "delete"},
    {SW_GUARD_APPROVAL, "write_etc", "writing into /etc",
     "(?:>>?|\\btee\\s+(?:-a\\s+)?)\\s*/etc/", "/etc/"},
    {SW_GUARD_APPROVAL, "modify_etc", "changing files in /etc",
     CP "(?:sed\\s+(?:\\S+\\s+)*?-i\\S*|cp|mv|install|ln\\s+-s\\S*|rm|truncate)\\s+[^\\n;&|]*\\s/etc/", "/etc/"},
    {SW_GUARD_APPROVAL, "write_shell_rc", "changing a shell start-up file",
     "(?:>>?|\\btee\\s+(?:-a\\s+)?|\\bsed\\s+-i\\S*\\s+[^\\n;&|]*\\s|\\b(?:cp|mv)\\s+[^\\n;&|]*\\s)\\s*\\S*\\.(?:bashrc|bash_profile|bash_login|bash_logout|profile|zshrc|zprofile|zshenv|zlogin|kshrc|cshrc|tcshrc)\\b", "rc|profile|bash_l|zlogin|zshenv"},
    {SW_GUARD_APPROVAL, "write_ssh", "changing SSH keys or configuration",
     "(?:>>?|\\btee\\s+(?:-a\\s+)?|\\b(?:cp|mv|rm|chmod|ssh-keygen\\s+[^\\n;&|]*-f)\\s+[^\\n;&|]*?)\\s*\\S*\\.ssh(?:/|\\b)", ".ssh"},
    {SW_GUARD_APPROVAL, "write_env_file", "writing a .env file",
     "(?:>>?|\\btee\\s+(?:-a\\s+)?)\\s*\\S*\\.env(?:\\.\\w+)?(?:\\s|$)", ".env"},
    {SW_GUARD_APPROVAL, "systemctl_stop", "stopping or disabling a system service",
     CP "systemctl\\s+(?:--\\S+\\s+)*(?:stop|disable|mask|kill|isolate)\\b", "systemctl"},
    {SW_GUARD_APPROVAL, "service_stop", "stopping a system service",
     CP "service\\s+\\S+\\s+stop\\b", "service"},
    {SW_GUARD_APPROVAL, "kill_force_by_name", "pkill -9 / killall -9",
     CP "(?:pkill|killall)\\s+(?:\\S+\\s+)*?-(?:9|kill|sigkill|s\\s+(?:9|kill))(?:\\s|$)", "kill"},
    {SW_GUARD_APPROVAL, "git_push_force", "git push --force",
     CP "git\\s+(?:-\\S+\\s+)*push\\b[^\\n;&|]*(?:\\s--force(?:-with-lease)?\\b|\\s-[a-z]*f\\b|\\s\\+\\S)", "push"},
    {SW_GUARD_APPROVAL, "git_reset_hard", "git reset --hard",
     CP "git\\b[^\\n;&|]*\\sreset\\b[^\\n;&|]*--hard", "--hard"},
    {SW_GUARD_APPROVAL, "git_clean_force", "git clean -f",
     CP "git\\s+(?:-\\S+\\s+)*clean\\b[^\\n;&|]*\\s-[a-z]*f", "clean"},
    {SW_GUARD_APPROVAL, "git_checkout_discard", "discarding local changes with git checkout/restore",
     CP "git\\s+(?:-\\S+\\s+)*(?:checkout\\s+(?:--\\s+)?\\.|restore\\s+(?:--\\S+\\s+)*\\.)(?:\\s|$)", "checkout|restore"},
    {SW_GUARD_APPROVAL, "git_branch_force_delete", "git branch -D",
     CP "git\\s+(?:-\\S+\\s+)*branch\\s+(?:\\S+\\s+)*?(?:(?-i:-[a-zA-Z]*D)|--delete\\s+--force|-d\\s+-f|-f\\s+-d)(?:\\s|$)", "branch"},
    {SW_GUARD_APPROVAL, "git_stash_clear", "dropping all git stashes",
     CP "git\\s+(?:-\\S+\\s+)*stash\\s+clear\\b", "stash"},
    {SW_GUARD_APPROVAL, "find_delete", "find -delete",
     CP "find\\b[^\\n;&|]*\\s-delete\\b", "-delete"},
    {SW_GUARD_APPROVAL, "find_exec_rm", "find -exec rm",
     CP "find\\b[^\\n;&|]*-exec(?:dir)?\\s+(?:sudo\\s+)?rm\\b", "-exec"},
    {SW_GUARD_APPROVAL, "xargs_rm", "xargs rm",
     "\\bxargs\\s+(?:-\\S+\\s+)*(?:sudo\\s+)?rm\\b", "xargs"},
    {SW_GUARD_APPROVAL, "cloud_metadata", "reading a cloud metadata endpoint (credentials)",
     "(?:169\\.254\\.169\\.254|metadata\\.google\\.internal|100\\.100\\.100\\.200|fd00:ec2::254|169\\.254\\.170\\.2)", "169.254|metadata|100.100.100.200|fd00:ec2"},
    {SW_GUARD_APPROVAL, "package_remove", "uninstalling system packages",
     CP "(?:apt-get|apt|aptitude|yum|dnf|zypper|pacman|apk|snap|dpkg)\\s+(?:-\\S+\\s+)*(?:remove|purge|autoremove|erase|uninstall|del|-r|-p|-R\\w*)\\b", "apt|yum|dnf|zypper|pacman|apk|snap|dpkg"},
    {SW_GUARD_APPROVAL, "pip_uninstall", "uninstalling Python packages",
     CP "(?:pip[0-9.]*|python[0-9.]*\\s+-m\\s+pip|uv\\s+pip)\\s+uninstall\\b", "uninstall"},
    {SW_GUARD_APPROVAL, "npm_uninstall_global", "uninstalling global npm packages",
     CP "(?:npm|pnpm|yarn)\\s+(?:uninstall|remove|rm|un)\\s+(?:\\S+\\s+)*?(?:-g|--global)\\b", "npm|pnpm|yarn"},
    {SW_GUARD_APPROVAL, "shred", "shredding files",
     CP "shred\\b", "shred"},
    {SW_GUARD_APPROVAL, "truncate_zero", "truncating files to zero",
     CP "truncate\\s+(?:\\S+\\s+)*?-s\\s*0\\b", "truncate"},
    {SW_GUARD_APPROVAL, "crontab_remove", "removing the crontab",
     CP "crontab\\s+(?:\\S+\\s+)*?-r\\b", "crontab"},
    {SW_GUARD_APPROVAL, "firewall_flush", "flushing firewall rules",
     CP "(?:iptables|ip6tables|nft)\\s+(?:\\S+\\s+)*?(?:-F|--flush|flush\\s+ruleset)\\b", "tables|nft"},
    {SW_GUARD_APPROVAL, "docker_destroy", "removing Docker containers, images or volumes",
     CP "docker\\s+(?:(?:system|volume|image|container|network|builder)\\s+prune|rm\\s+(?:\\S+\\s+)*?-f|rmi\\s+(?:\\S+\\s+)*?-f|volume\\s+rm)\\b", "docker"},
    {SW_GUARD_APPROVAL, "kubectl_delete", "deleting Kubernetes resources",
     CP "kubectl\\s+(?:\\S+\\s+)*?delete\\b", "kubectl"},
    {SW_GUARD_APPROVAL, "terraform_destroy", "terraform destroy",
     CP "(?:terraform|tofu)\\s+(?:\\S+\\s+)*?(?:destroy|apply\\s+(?:\\S+\\s+)*?-destroy)\\b", "terraform|tofu"},
    {SW_GUARD_APPROVAL, "chattr_immutable", "changing file attributes (chattr)",
     CP "chattr\\b", "chattr"},
    {SW_GUARD_APPROVAL, "mv_to_dev_null", "moving files onto /dev/null",
     CP "mv\\s+[^\\n;&|]*\\s/dev/null(?:\\s|$)", "/dev/null"},
    {SW_GUARD_APPROVAL, "user_admin", "deleting users or changing passwords",
     CP "(?:userdel|deluser|groupdel|passwd|chpasswd|usermod\\s+(?:\\S+\\s+)*?-[a-z]*L)\\b", "user|passwd|groupdel"},
};
#define NPATTERNS (sizeof patterns / sizeof patterns[0])
static pcre2_code *codes[NPATTERNS];   /* compiled once by sw_guard_init */
/* `bash -c '...'`, `sh -c "..."`, `eval $'...'`: the quoted payload in group 1, 2 or 3. */
static pcre2_code *payload_re;

/* Compiling and JIT-compiling every rule takes a few milliseconds, so it happens on a
 * thread of its own at start; the first check waits for it if it has to. */
static pthread_once_t compiled = PTHREAD_ONCE_INIT;

static int compile_patterns(void)
{
    int ecode;
    PCRE2_SIZE eoff;
    payload_re = pcre2_compile(
        (PCRE2_SPTR)"\\b(?:" SHELLS "\\s+(?:-\\w+\\s+)*-c|eval)\\s+(?:'([^']*)'|\"((?:[^\"\\\\]|\\\\.)*)\"|\\$'((?:[^'\\\\]|\\\\.)*)')",
        PCRE2_ZERO_TERMINATED, PCRE2_CASELESS, &ecode, &eoff, NULL);
    if (!payload_re) {
        sw_error("guard payload pattern does not compile at %zu", (size_t)eoff);
        return -1;
    }
    pcre2_jit_compile(payload_re, PCRE2_JIT_COMPLETE);
    for (size_t i = 0; i < NPATTERNS; i++) {
        int code;
        PCRE2_SIZE off;
        codes[i] = pcre2_compile((PCRE2_SPTR)patterns[i].re, PCRE2_ZERO_TERMINATED,
                                         PCRE2_CASELESS | PCRE2_MULTILINE, &code, &off, NULL);
        if (codes[i]) pcre2_jit_compile(codes[i], PCRE2_JIT_COMPLETE);   /* best effort */
        if (!codes[i]) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(code, msg, sizeof msg);
            sw_error("guard pattern %s: %s at %zu", patterns[i].key, (char *)msg, (size_t)off);
            return -1;
        }
    }
    return 0;
}

static void compile_once(void) { compile_patterns(); }
static void ready(void) { pthread_once(&compiled, compile_once); }

static void *compile_main(void *arg)
{
    (void)arg;
    ready();
    return NULL;
}

int sw_guard_init(void)
{
    if (sw_thread_detached(compile_main, NULL, 256 * 1024) != 0) ready();
    return 0;
}

int sw_guard_count(enum sw_guard_verdict v)
{
    int n = 0;
    for (size_t i = 0; i < NPATTERNS; i++) n += patterns[i].verdict == v;
    return n;
}

/* Appends the payload of `bash -c '...'`, `sh -c "..."` and `eval '...'` (as written, with
 * its own quotes stripped) to out, each on a new line, so it is checked in command
 * position. Runs on the text before quotes are removed. */
static void add_payloads(const char *s, char **out, size_t *len, size_t *cap)
{
    pcre2_code *re = payload_re;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    size_t start = 0, n = strlen(s);
    while (start < n && pcre2_match(re, (PCRE2_SPTR)s, n, start, 0, md, NULL) > 0) {
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        for (int g = 1; g <= 3; g++) {
            if (ov[2 * g] == PCRE2_UNSET) continue;
            size_t pl = ov[2 * g + 1] - ov[2 * g];
            while (*len + pl + 2 > *cap) *out = sw_xrealloc(*out, *cap *= 2);
            (*out)[(*len)++] = '\n';
            memcpy(*out + *len, s + ov[2 * g], pl);
            *len += pl;
        }
        start = ov[1] > start ? ov[1] : start + 1;
    }
    pcre2_match_data_free(md);
}

char *sw_guard_normalize(const char *command)
{
    ready();
    size_t n = strlen(command), cap = 2 * n + 64, len = 0;
    char *t = sw_xmalloc(cap);
    /* 1. Escape sequences and NULs out; backslash-newline folded; $IFS becomes a space;
     *    backslash escapes inside words dropped (r\m -> rm). */
    for (size_t i = 0; i < n; i++) {
        char c = command[i];
        if (c == 0x1b) {   /* skip ESC [ ... final, or ESC ] ... BEL */
            if (command[i + 1] == '[') {
                i += 2;
                while (i < n && !(command[i] >= 0x40 && command[i] <= 0x7e)) i++;
            } else if (command[i + 1] == ']') {
                while (i < n && command[i] != 7) i++;
            } else {
                i++;
            }
            continue;
        }
        if (c == '\\' && command[i + 1] == '\n') { i++; continue; }
        if (c == '\\' && command[i + 1] && command[i + 1] != '\\') continue;
        if (!strncmp(command + i, "${IFS}", 6)) { t[len++] = ' '; i += 5; continue; }
        if (!strncmp(command + i, "$IFS", 4)) { t[len++] = ' '; i += 3; continue; }
        t[len++] = c;
    }
    t[len] = '\0';
    /* 2. Payloads of nested shells are commands too. */
    char *raw = sw_strdup(t);
    add_payloads(raw, &t, &len, &cap);
    free(raw);
    t[len] = '\0';
    /* 3. Inside quotes, separators become spaces (quoted prose is not a command); then the
     *    quote characters go, so "r""m" and "/" read as rm and /. */
    char q = 0;
    size_t w = 0;
    for (size_t i = 0; i < len; i++) {
        char c = t[i];
        if (q) {
            if (c == q) { q = 0; continue; }
            if (strchr(";&|()`$\n<>", c)) c = ' ';
            t[w++] = c;
        } else if (c == '\'' || c == '"') {
            q = c;
        } else {
            t[w++] = c;
        }
    }
    t[w] = '\0';
    return t;
}

/* Cheap pre-check: can the text contain a match at all? */
static bool hinted(const char *lower, const char *hints)
{
    char one[64];
    for (const char *h = hints; *h;) {
        size_t n = strcspn(h, "|");
        if (n < sizeof one) {
            memcpy(one, h, n);
            one[n] = '\0';
            if (strstr(lower, one)) return true;
        }
        h += n;
        if (*h == '|') h++;
    }
    return false;
}

sw_guard_hit sw_guard_check(const char *command)
{
    ready();
    sw_guard_hit hit = {SW_GUARD_ALLOW, NULL, NULL};
    char *t = sw_guard_normalize(command);
    char *lower = sw_strdup(t);
    for (char *p = lower; *p; p++) *p = (char)tolower((unsigned char)*p);
    for (size_t i = 0; i < NPATTERNS; i++) {
        if (!codes[i] || patterns[i].verdict <= hit.verdict) continue;
        if (!hinted(lower, patterns[i].hints)) continue;
        pcre2_match_data *md = pcre2_match_data_create_from_pattern(codes[i], NULL);
        int rc = pcre2_match(codes[i], (PCRE2_SPTR)t, PCRE2_ZERO_TERMINATED, 0, 0, md, NULL);
        pcre2_match_data_free(md);
        if (rc >= 0) {
            hit.verdict = patterns[i].verdict;
            hit.key = patterns[i].key;
            hit.description = patterns[i].description;
        }
    }
    free(t);
    free(lower);
    return hit;
}
