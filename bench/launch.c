/*
 * The benchmark harness (bench/run.sh compiles it at run time).
 *
 * Every run starts ARGV (an init and the APP it wraps, or the APP alone) as
 * PID 1 of a fresh PID namespace with its own /proc, exactly as
 * `unshare --pid --fork --mount-proc ARGV` would, and times it on
 * CLOCK_MONOTONIC, the clock bench/app.c stamps with:
 *
 *   launch startup RUNS -- ARGV...
 *       per run: "<execve(init) -> APP's main() ns> <execve(init) -> init reaped ns>"
 *       (ARGV's APP must be `app stamp`)
 *   launch signal RUNS -- ARGV...
 *       per run: "<kill(init, SIGTERM) -> APP's handler ns>"
 *       (ARGV's APP must be `app sigterm`)
 *   launch orphans RUNS COUNT -- ARGV...
 *       per run: "<release of COUNT orphans -> none left ns> <zombies left>"
 *       (ARGV's APP must be `app orphans COUNT`); the namespace's processes
 *       are counted by listing the namespace's own /proc, through
 *       /proc/<init>/root/proc, so a zombie is counted until it is reaped.
 *
 * The init's stderr is ours; its stdout is a pipe we read. Exits 1 on any
 * failure (after killing what it started), so run.sh can mark the figure.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DEADLINE_NS (30LL * 1000000000LL)
#define SETTLE_NS (5LL * 1000000LL)

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void sleep_ns(long long ns) {
    struct timespec ts = {ns / 1000000000LL, ns % 1000000000LL};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* The init being measured, killed on any failure. */
static pid_t current_init = -1;

static void fail(const char *format, ...) {
    va_list args;
    va_start(args, format);
    fprintf(stderr, "launch: ");
    vfprintf(stderr, format, args);
    fprintf(stderr, "\n");
    va_end(args);
    if (current_init > 0) {
        kill(current_init, SIGKILL);
        waitpid(current_init, NULL, 0);
    }
    exit(1);
}

/* Written by the child right before execve, read by the parent. */
struct shared {
    long long exec_ns;
};

/* A running init: its host pid, the write end of its stdin (or -1) and the
 * read end of its stdout. */
struct init {
    pid_t pid;
    int stdin_fd;
    int stdout_fd;
    char buf[4096];
    size_t len;
};

/* SIGINT/SIGTERM/SIGHUP: take the init (and so its whole namespace) down with us. */
static void on_interrupt(int signo) {
    if (current_init > 0)
        kill(current_init, SIGKILL);
    _exit(128 + signo);
}

static void child_exec(char **argv, int stdin_fd, int stdout_fd, struct shared *shared) {
    /* Should this harness die (even by SIGKILL), the init and its namespace go too. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    signal(SIGPIPE, SIG_DFL); /* an ignored signal would stay ignored across execve */
    /* What unshare --mount-proc does: keep our mounts from propagating back,
     * then give the new PID namespace its own /proc. */
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0) {
        perror("launch: mount");
        _exit(126);
    }
    if (stdin_fd < 0)
        stdin_fd = open("/dev/null", 0);
    dup2(stdin_fd, STDIN_FILENO);
    dup2(stdout_fd, STDOUT_FILENO);
    syscall(SYS_close_range, 3, ~0U, 0);
    shared->exec_ns = now_ns();
    execv(argv[0], argv);
    perror("launch: execv");
    _exit(127);
}

static void start_init(struct init *init, char **argv, int with_stdin, struct shared *shared) {
    int out[2], in[2] = {-1, -1};
    if (pipe2(out, O_CLOEXEC) != 0 || (with_stdin && pipe2(in, O_CLOEXEC) != 0))
        fail("pipe: %s", strerror(errno));
    fflush(stdout);
    /* A raw clone without a new stack behaves like fork(2). */
    pid_t pid = (pid_t)syscall(SYS_clone, CLONE_NEWPID | CLONE_NEWNS | SIGCHLD, NULL, NULL, NULL, NULL);
    if (pid < 0)
        fail("clone: %s", strerror(errno));
    if (pid == 0)
        child_exec(argv, in[0], out[1], shared);
    close(out[1]);
    if (with_stdin)
        close(in[0]);
    init->pid = pid;
    init->stdin_fd = in[1];
    init->stdout_fd = out[0];
    init->len = 0;
    current_init = pid;
}

/* Reads the init's stdout until a line starting with `prefix`; copies the
 * rest of that line into `rest`. Other lines (the init's own logs) are skipped. */
static void expect_line(struct init *init, const char *prefix, char *rest, size_t rest_size) {
    long long deadline = now_ns() + DEADLINE_NS;
    for (;;) {
        char *newline;
        while ((newline = memchr(init->buf, '\n', init->len)) != NULL) {
            size_t line_len = (size_t)(newline - init->buf);
            size_t prefix_len = strlen(prefix);
            int match = line_len >= prefix_len && memcmp(init->buf, prefix, prefix_len) == 0;
            if (match) {
                size_t n = line_len - prefix_len;
                if (n >= rest_size)
                    n = rest_size - 1;
                memcpy(rest, init->buf + prefix_len, n);
                rest[n] = '\0';
            }
            init->len -= line_len + 1;
            memmove(init->buf, newline + 1, init->len);
            if (match)
                return;
        }
        if (init->len == sizeof init->buf)
            init->len = 0; /* an absurdly long log line: drop it */
        long long left = deadline - now_ns();
        struct pollfd pfd = {init->stdout_fd, POLLIN, 0};
        int ready = poll(&pfd, 1, left > 0 ? (int)(left / 1000000) : 0);
        if (ready == 0)
            fail("timed out waiting for \"%s\"", prefix);
        if (ready < 0 && errno != EINTR)
            fail("poll: %s", strerror(errno));
        ssize_t n = read(init->stdout_fd, init->buf + init->len, sizeof init->buf - init->len);
        if (n == 0)
            fail("the init's stdout closed before \"%s\"", prefix);
        if (n > 0)
            init->len += (size_t)n;
    }
}

/* Closes our ends, reads the init's stdout to EOF and reaps it; returns the
 * time it was reaped. Fails unless it exits within the deadline. */
static long long finish_init(struct init *init) {
    if (init->stdin_fd >= 0)
        close(init->stdin_fd);
    char sink[4096];
    long long deadline = now_ns() + DEADLINE_NS;
    for (;;) {
        long long left = deadline - now_ns();
        struct pollfd pfd = {init->stdout_fd, POLLIN, 0};
        int ready = poll(&pfd, 1, left > 0 ? (int)(left / 1000000) : 0);
        if (ready == 0)
            fail("timed out waiting for the init to exit");
        if (ready > 0 && read(init->stdout_fd, sink, sizeof sink) == 0)
            break;
    }
    close(init->stdout_fd);
    int status;
    while (waitpid(init->pid, &status, 0) < 0)
        if (errno != EINTR)
            fail("waitpid: %s", strerror(errno));
    long long reaped = now_ns();
    current_init = -1;
    return reaped;
}

static long long parse_ns(const char *text) {
    char *end;
    long long value = strtoll(text, &end, 10);
    if (end == text)
        fail("not a timestamp: \"%s\"", text);
    return value;
}

static void run_startup(char **argv, struct shared *shared) {
    struct init init;
    char rest[64];
    start_init(&init, argv, 0, shared);
    expect_line(&init, "STAMP ", rest, sizeof rest);
    long long app_started = parse_ns(rest);
    long long reaped = finish_init(&init);
    printf("%lld %lld\n", app_started - shared->exec_ns, reaped - shared->exec_ns);
}

static void run_signal(char **argv, struct shared *shared) {
    struct init init;
    char rest[64];
    start_init(&init, argv, 0, shared);
    expect_line(&init, "READY", rest, sizeof rest);
    sleep_ns(SETTLE_NS); /* let the init go back to waiting, as it would in steady state */
    long long sent = now_ns();
    if (kill(init.pid, SIGTERM) != 0)
        fail("kill: %s", strerror(errno));
    expect_line(&init, "TERM ", rest, sizeof rest);
    long long handled = parse_ns(rest);
    finish_init(&init);
    printf("%lld\n", handled - sent);
}

/* How many processes (thread groups) the init's PID namespace holds,
 * zombies included, read from the namespace's own /proc. */
static int processes_in_namespace(pid_t init_pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/root/proc", (int)init_pid);
    DIR *dir = opendir(path);
    if (dir == NULL)
        fail("opendir %s: %s", path, strerror(errno));
    int count = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL)
        if (entry->d_name[0] >= '1' && entry->d_name[0] <= '9')
            count++;
    closedir(dir);
    return count;
}

static void run_orphans(int orphans, char **argv, struct shared *shared) {
    struct init init;
    char rest[64];
    start_init(&init, argv, 1, shared);
    expect_line(&init, "READY", rest, sizeof rest);
    /* The init and the APP, plus every orphan (alive, waiting for release). */
    int expected = orphans + 2;
    int count = processes_in_namespace(init.pid);
    if (count != expected)
        fail("expected %d processes in the namespace before the release, found %d", expected, count);
    long long released = now_ns();
    if (write(init.stdin_fd, "\n", 1) != 1)
        fail("write: %s", strerror(errno));
    long long deadline = released + DEADLINE_NS;
    long long done;
    for (;;) {
        count = processes_in_namespace(init.pid);
        done = now_ns();
        if (count <= 2 || done > deadline)
            break;
        sleep_ns(50000);
    }
    finish_init(&init);
    printf("%lld %d\n", done - released, count - 2);
}

int main(int argc, char **argv) {
    if (argc < 4)
        fail("usage: launch startup|signal RUNS -- ARGV... | launch orphans RUNS COUNT -- ARGV...");
    const char *mode = argv[1];
    int runs = atoi(argv[2]);
    int orphans = 0;
    int first = 3;
    if (strcmp(mode, "orphans") == 0)
        orphans = atoi(argv[first++]);
    if (first >= argc || strcmp(argv[first], "--") != 0 || first + 1 >= argc)
        fail("expected -- ARGV...");
    char **command = argv + first + 1;
    struct shared *shared = mmap(NULL, sizeof *shared, PROT_READ | PROT_WRITE,
                                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED)
        fail("mmap: %s", strerror(errno));
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_interrupt);
    signal(SIGTERM, on_interrupt);
    signal(SIGHUP, on_interrupt);
    for (int i = 0; i < runs; i++) {
        if (strcmp(mode, "startup") == 0)
            run_startup(command, shared);
        else if (strcmp(mode, "signal") == 0)
            run_signal(command, shared);
        else if (strcmp(mode, "orphans") == 0)
            run_orphans(orphans, command, shared);
        else
            fail("unknown mode %s", mode);
    }
    return 0;
}
