/*
 * The APP that every init wraps in the benchmark (bench/run.sh compiles it
 * statically, so the dynamic loader never adds to what is measured).
 *
 *   app stamp          print "STAMP <CLOCK_MONOTONIC ns>" as the first thing
 *                      main() does, then exit 0 (startup latency).
 *   app sigterm        install a SIGTERM handler, print "READY", wait; the
 *                      handler prints "TERM <CLOCK_MONOTONIC ns>" and exits 0
 *                      (signal-forwarding latency).
 *   app orphans N      fork N children that each fork a grandchild and exit,
 *                      so N grandchildren are re-parented to PID 1; print
 *                      "READY"; on a line on stdin, release the grandchildren
 *                      (they exit at once and become the init's zombies);
 *                      exit when stdin reaches EOF (reaping).
 *   app lines LEN MIB  write MIB MiB of LEN-byte lines ("xxx...x\n") in
 *                      64 KiB writes, then exit 0 (logged-output throughput).
 *
 * Everything written is a single write(2) on stdout, so the harness reading
 * the pipe sees whole lines.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Async-signal-safe: formats and writes "<tag> <ns>\n" with one write(2). */
static void write_stamp(const char *tag, long long ns) {
    char buf[64];
    size_t len = strlen(tag);
    memcpy(buf, tag, len);
    buf[len++] = ' ';
    char digits[24];
    int n = 0;
    do {
        digits[n++] = (char)('0' + ns % 10);
        ns /= 10;
    } while (ns > 0);
    while (n > 0)
        buf[len++] = digits[--n];
    buf[len++] = '\n';
    ssize_t ignored = write(STDOUT_FILENO, buf, len);
    (void)ignored;
}

static void say(const char *line) {
    ssize_t ignored = write(STDOUT_FILENO, line, strlen(line));
    (void)ignored;
}

static void on_sigterm(int signo) {
    (void)signo;
    write_stamp("TERM", now_ns());
    _exit(0);
}

static int run_sigterm(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_sigterm;
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGTERM, &action, NULL) != 0) {
        perror("app: sigaction");
        return 1;
    }
    say("READY\n");
    for (;;)
        pause();
}

/* Reads stdin until a newline or EOF; returns 0 on a newline, -1 on EOF. */
static int read_line(void) {
    char c;
    for (;;) {
        ssize_t n = read(STDIN_FILENO, &c, 1);
        if (n == 1 && c == '\n')
            return 0;
        if (n == 0 || (n < 0 && errno != EINTR))
            return -1;
    }
}

static int run_orphans(int count) {
    int release[2];
    if (pipe(release) != 0) {
        perror("app: pipe");
        return 1;
    }
    for (int i = 0; i < count; i++) {
        pid_t child = fork();
        if (child < 0) {
            perror("app: fork");
            return 1;
        }
        if (child == 0) {
            if (fork() == 0) {
                /* The grandchild: wait for the release, then exit. */
                char byte;
                close(release[1]);
                while (read(release[0], &byte, 1) < 0 && errno == EINTR)
                    ;
                _exit(0);
            }
            _exit(0); /* orphans the grandchild */
        }
        while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    close(release[0]);
    say("READY\n");
    if (read_line() != 0)
        return 1;
    close(release[1]); /* every grandchild sees EOF and exits */
    while (read_line() == 0)
        ;
    return 0;
}

static int run_lines(long length, long mib) {
    static char buffer[65536];
    long total = mib * 1048576, lines_per_buffer;
    if (length < 1 || length > (long)sizeof buffer) {
        fprintf(stderr, "app: a line is 1 to %zu bytes\n", sizeof buffer);
        return 2;
    }
    lines_per_buffer = (long)sizeof buffer / length;
    memset(buffer, 'x', sizeof buffer);
    for (long i = 1; i <= lines_per_buffer; i++)
        buffer[i * length - 1] = '\n';
    /* Whole lines only: the last write is cut to what is left, in lines. */
    while (total > 0) {
        long chunk = lines_per_buffer * length;
        if (chunk > total)
            chunk = total / length * length;
        if (chunk == 0)
            break;
        for (long done = 0; done < chunk;) {
            ssize_t n = write(STDOUT_FILENO, buffer + done, (size_t)(chunk - done));
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                perror("app: write");
                return 1;
            }
            done += n;
        }
        total -= chunk;
    }
    return 0;
}

int main(int argc, char **argv) {
    long long started = now_ns();
    if (argc >= 2 && strcmp(argv[1], "stamp") == 0) {
        write_stamp("STAMP", started);
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "sigterm") == 0)
        return run_sigterm();
    if (argc >= 3 && strcmp(argv[1], "orphans") == 0)
        return run_orphans(atoi(argv[2]));
    if (argc >= 4 && strcmp(argv[1], "lines") == 0)
        return run_lines(atol(argv[2]), atol(argv[3]));
    fprintf(stderr, "usage: app stamp | app sigterm | app orphans N | app lines LEN MIB\n");
    return 2;
}
