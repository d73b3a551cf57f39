/* server/main.c — start-up and shutdown: configuration, signals, state directories, the
 * signal thread (SIGCHLD reaping, SIGTERM/SIGINT/SIGHUP shutdown), then the stdio loop. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backends/backend.h"
#include "backends/local.h"
#include "backends/proc.h"
#include "server/childenv.h"
#include "server/config.h"
#include "server/env.h"
#include "server/log.h"
#include "server/mcp.h"
#include "server/output.h"
#include "server/registry.h"
#include "server/rpc.h"
#include "server/tools.h"
#include "server/util.h"

/* At exit, how long releasing the environments (containers, sandboxes) may take in all. */
#define SHUTDOWN_CLOSE_MS 4000

extern char **environ;

static char *runtime_dir;
static sigset_t handled;

/* Kills everything the server started and exits. Safe to call from any thread once. */
static void shutdown_now(int code)
{
    static pthread_mutex_t once = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&once);          /* never unlocked: the process ends here */
    sw_rpc_cancel_all();
    sw_env_shutdown(SHUTDOWN_CLOSE_MS);   /* sandboxes released, remote processes ended */
    sw_proc_shutdown();
    sw_reg_shutdown();
    if (runtime_dir) sw_rm_rf(runtime_dir);
    sw_rpc_lock_output();               /* no half-written line on stdout */
    _exit(code);
}

static void *shutdown_main(void *arg)
{
    (void)arg;
    shutdown_now(0);
    return NULL;
}

static void *signal_main(void *arg)
{
    int fd = *(int *)arg;
    for (;;) {
        struct signalfd_siginfo si;
        ssize_t r = read(fd, &si, sizeof si);
        if (r < 0 && errno == EINTR) continue;
        if (r != (ssize_t)sizeof si) continue;
        if (si.ssi_signo == SIGCHLD) {
            sw_proc_reap();
        } else {
            /* Shut down from another thread: this one must go on reaping children while
             * the calls in flight are cancelled and the environments closed. */
            sw_info("signal %d: shutting down", (int)si.ssi_signo);
            if (sw_thread_detached(shutdown_main, NULL, 256 * 1024) != 0) shutdown_now(0);
        }
    }
    return NULL;
}

/* fds 0-2 must exist so that no file the server opens lands on them. */
static void ensure_std_fds(void)
{
    for (int fd = 0; fd < 3; fd++)
        if (fcntl(fd, F_GETFD) < 0) {
            int n = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
            if (n >= 0 && n != fd) { dup2(n, fd); close(n); }
        }
}

static int print_tools(void)
{
    char *s = json_dumps(sw_mcp_tools(), JSON_INDENT(2));
    if (!s) return 1;
    puts(s);
    free(s);
    return 0;
}

/* --check: open the configured backend for real and run a command in it, without
 * serving. One line per requirement; exit status 1 if any fails. */
static int run_check(const sw_config *cfg, char **child_env)
{
    int failures = 0;
    printf("shellwire %s: checking the %s backend\n\nconfiguration:\n", SW_VERSION, cfg->backend);
    sw_config_print(cfg, stdout);
    printf("\n");
    char *probe = sw_printf("%s/.check-%ld", cfg->state_dir, (long)getpid());
    int fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        printf("FAIL state directory %s is not writable: %s\n", cfg->state_dir, strerror(errno));
        failures++;
    } else {
        close(fd);
        unlink(probe);
        printf("ok   state directory %s is writable\n", cfg->state_dir);
    }
    free(probe);
    const sw_backend_ops *ops = sw_backend_find(cfg->backend);
    sw_open_opts o = {
        .config = cfg, .task_id = "check", .state_dir = runtime_dir, .marker_id = "0123456789abcdef",
        .cwd = cfg->cwd, .child_env = child_env, .connect_timeout_ms = 15000,
    };
    sw_backend *b = NULL;
    char err[512] = "";
    if (ops->open(&o, &b, err, sizeof err) != SW_BE_OK) {
        printf("FAIL the %s backend cannot be opened: %s\n", cfg->backend, err);
        return 1;
    }
    printf("ok   the %s backend opened\n", cfg->backend);
    if (ops->health && ops->health(b, err, sizeof err) != 0) {
        printf("FAIL health check: %s\n", err);
        failures++;
    }
    sw_run_req rq = {.command = "true", .cwd = cfg->cwd, .timeout_ms = 15000};
    sw_run_res rs = {0};
    int rc = ops->run(b, &rq, &rs);
    if (rc != SW_BE_OK || rs.exit_code != 0) {
        printf("FAIL a test command did not run (exit %d%s%s)\n", rs.exit_code,
               rc != SW_BE_OK ? ": " : "", rc != SW_BE_OK ? rs.error : "");
        failures++;
    } else {
        printf("ok   a test command ran in %s\n", cfg->cwd);
    }
    ops->close(b);
    printf("\n%s\n", failures ? "some checks failed" : "all checks passed");
    return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
    /* The Landlock trampoline: restrict, then exec the command; no server at all. */
    if (argc > 1 && !strcmp(argv[1], "--landlock-exec")) return sw_landlock_exec_main(argc, argv);
    ensure_std_fds();
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&handled);
    sigaddset(&handled, SIGCHLD);
    sigaddset(&handled, SIGTERM);
    sigaddset(&handled, SIGINT);
    sigaddset(&handled, SIGHUP);
    /* Blocked before any thread exists, so only the signal thread ever sees them. */
    pthread_sigmask(SIG_BLOCK, &handled, NULL);

    sw_config cfg;
    int rc = sw_config_load(&cfg, argc, argv);
    if (rc != SW_CONFIG_RUN) return rc == SW_CONFIG_EXIT_OK ? 0 : 2;
    sw_log_set_level(sw_log_parse_level(cfg.log_level));
    if (sw_terminal_init(&cfg) < 0 || sw_mcp_init(&cfg) < 0) return 1;
    if (cfg.print_tools) return print_tools();

    if (!strcmp(cfg.confine, "auto") && sw_landlock_abi() == 0) {
        sw_warn("SHELLWIRE_CONFINE=auto: this kernel has no Landlock; commands run unconfined");
        free(cfg.confine);
        cfg.confine = sw_strdup("off");
    }
    if (sw_proc_init() < 0) sw_warn("cannot become a child subreaper: %s", strerror(errno));
    char rnd[9];
    sw_random_hex(rnd, 4);
    runtime_dir = sw_printf("%s/run/%ld-%s", cfg.state_dir, (long)getpid(), rnd);
    char *out_dir = sw_printf("%s/output", cfg.state_dir);
    if (sw_mkdir_p(runtime_dir, 0700) < 0) {
        fprintf(stderr, "shellwire: SHELLWIRE_STATE_DIR: cannot create %s: %s\n", runtime_dir,
                strerror(errno));
        return 2;
    }
    chmod(cfg.state_dir, 0700);
    sw_mkdir_p(out_dir, 0700);
    sw_out_prune_spills(out_dir, 7L * 24 * 3600);
    free(out_dir);

    int sfd = signalfd(-1, &handled, SFD_CLOEXEC);
    pthread_t st;
    if (sfd < 0 || pthread_create(&st, NULL, signal_main, &sfd) != 0) {
        fprintf(stderr, "shellwire: cannot set up signal handling: %s\n", strerror(errno));
        return 1;
    }
    char **child_env = sw_childenv_build(environ, cfg.pass_env);
    if (cfg.check) {
        int crc = run_check(&cfg, child_env);
        sw_proc_shutdown();
        sw_rm_rf(runtime_dir);
        return crc;
    }
    if (sw_env_init(&cfg, sw_backend_find(cfg.backend), runtime_dir, child_env) < 0) {
        fprintf(stderr, "shellwire: cannot start the environment manager\n");
        return 1;
    }
    if (sw_reg_init(&cfg, sw_backend_find(cfg.backend)) < 0) {
        fprintf(stderr, "shellwire: cannot start the background process registry\n");
        return 1;
    }
    sw_info("ready: backend %s, cwd %s", cfg.backend, cfg.cwd);
    sw_rpc_serve(&cfg);
    /* stdin closed and every call answered: clean up like on SIGTERM. */
    shutdown_now(0);
}
