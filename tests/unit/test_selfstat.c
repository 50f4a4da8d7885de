/* test_selfstat.c: the agent's own cost: /proc/self/statm parsing, and real figures from this process. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cleanup.h"
#include "selfstat.h"
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A real /proc/<pid>/statm (Linux 6.18): size resident shared text lib data dt, in pages. */
#define STATM "2463 626 469 94 0 174 0\n"

/* Parses the len bytes of s from an unterminated heap copy, so ASan catches a read past len. */
static int parse(const char *s, size_t len, uint64_t *rss, char *msg, size_t msg_len) {
        _cleanup_free_ char *copy = tu_copy_unterminated(s, len);

        return plat_parse_proc_statm(copy, len, 4096, rss, msg, msg_len);
}

static void test_statm_gives_the_resident_size_in_bytes(void **state) {
        uint64_t rss = 0;
        char msg[128];

        (void)state;
        assert_int_equal(parse(STATM, strlen(STATM), &rss, msg, sizeof(msg)), 0);
        assert_int_equal(rss, 626 * 4096);
        /* The newline is optional. */
        assert_int_equal(parse("1 2 3 4 5 6 7", 13, &rss, msg, sizeof(msg)), 0);
        assert_int_equal(rss, 2 * 4096);
}

static void test_statm_not_seven_figures_is_eproto_and_named(void **state) {
        static const char *const bad[] = {
                "",
                "\n",
                "1 2 3 4 5 6\n",
                "1 2 3 4 5 6 7 8\n",
                "1 2 3 4 5 6 x\n",
                "1  2 3 4 5 6 7",
                "1 2 3 4 5 6 7 ",
                "1 -2 3 4 5 6 7",
                "1 2 3 4 5 6 7\n\n",
                "1\t2 3 4 5 6 7",
        };
        uint64_t rss = 7;
        char msg[128];

        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                msg[0] = '\0';
                assert_int_equal(parse(bad[i], strlen(bad[i]), &rss, msg, sizeof(msg)), -EPROTO);
                assert_non_null(strstr(msg, "/proc/self/statm: "));
        }
        /* Out-params are written only on success. */
        assert_int_equal(rss, 7);
        /* Only len bytes count: cut after three figures, the copy's later ones are not seen. */
        assert_int_equal(parse(STATM, 12, &rss, msg, sizeof(msg)), -EPROTO);
        assert_non_null(strstr(msg, "3 figures, not 7"));
}

static void test_statm_figure_past_64_bits_is_erange(void **state) {
        /* 2^64 / 4096 pages is 2^52: 4503599627370496 pages do not fit in bytes. */
        const char *big = "1 4503599627370496 3 4 5 6 7";
        const char *huge = "1 2 3 4 5 6 99999999999999999999";
        uint64_t rss = 7;
        char msg[128];

        (void)state;
        assert_int_equal(parse(big, strlen(big), &rss, msg, sizeof(msg)), -ERANGE);
        assert_non_null(strstr(msg, "past 64 bits in bytes"));
        assert_int_equal(parse(huge, strlen(huge), &rss, msg, sizeof(msg)), -ERANGE);
        assert_non_null(strstr(msg, "figure 7"));
        assert_int_equal(rss, 7);
}

/* utime + stime of this process from /proc/self/stat, in microseconds (clock-tick resolution). */
static uint64_t proc_stat_cpu_usec(void) {
        unsigned long long utime, stime;
        char buf[1024], *p;
        FILE *f = fopen("/proc/self/stat", "r");

        assert_non_null(f);
        assert_non_null(fgets(buf, sizeof(buf), f));
        fclose(f);
        p = strrchr(buf, ')');
        assert_non_null(p);
        assert_int_equal(
                sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime), 2);
        return (utime + stime) * 1000000ULL / (unsigned long long)sysconf(_SC_CLK_TCK);
}

static void burn_cpu_ms(unsigned ms) {
        struct timespec t0, t;
        volatile uint64_t x = 0;

        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
        do {
                for (int i = 0; i < 10000; i++)
                        x += (uint64_t)i * x + 1;
                clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
        } while ((uint64_t)(t.tv_sec - t0.tv_sec) * 1000 + (uint64_t)(t.tv_nsec - t0.tv_nsec) / 1000000 <
                 ms);
}

static void test_self_usage_follows_cpu_work_and_memory(void **state) {
        const size_t big = 32u << 20;
        struct plat_self_usage a, b;
        char msg[128] = "";
        char *mem;

        (void)state;
        uint64_t proc_before = proc_stat_cpu_usec();

        assert_int_equal(plat_self_usage(&a, msg, sizeof(msg)), 0);
        assert_true(a.rss_bytes > 0);
        assert_true(a.peak_rss_bytes >= a.rss_bytes);
        burn_cpu_ms(120);
        mem = malloc(big);
        assert_non_null(mem);
        memset(mem, 0x5a, big); /* resident only once touched */
        assert_int_equal(plat_self_usage(&b, msg, sizeof(msg)), 0);
        assert_true(b.cpu_usec >= a.cpu_usec + 100000);
        assert_true(b.rss_bytes >= a.rss_bytes + big * 3 / 4);
        assert_true(b.peak_rss_bytes >= b.rss_bytes);
        /* /proc/self/stat (ticks, truncated) saw the same work. qemu-user (the arm64 test run)
         * makes up that file with zero times: nothing to compare there. */
        {
                uint64_t tick = 1000000 / (uint64_t)sysconf(_SC_CLK_TCK), after = proc_stat_cpu_usec();

                if (after || proc_before)
                        assert_true(after >= proc_before + 100000 - 2 * tick);
        }
        free(mem);
}

static int open_fds(void) {
        int n = 0;
        DIR *d = opendir("/proc/self/fd");
        struct dirent *e;

        assert_non_null(d);
        while ((e = readdir(d)))
                n += e->d_name[0] != '.';
        closedir(d);
        return n - 1; /* the directory stream's own fd */
}

/* The per-tick reader keeps one fd on /proc/self/statm across reads, and still sees the figures
 * move: each pread() is a fresh print of the file. */
static void test_reader_keeps_one_fd_and_sees_fresh_figures(void **state) {
        const size_t big = 16u << 20;
        struct plat_self_usage a, b;
        struct plat_self s;
        char msg[128] = "";
        int fds = open_fds();
        char *mem;

        (void)state;
        plat_self_init(&s);
        assert_int_equal(open_fds(), fds); /* nothing opened until the first read */
        assert_int_equal(plat_self_read(&s, &a, msg, sizeof(msg)), 0);
        assert_int_equal(open_fds(), fds + 1);
        mem = malloc(big);
        assert_non_null(mem);
        memset(mem, 0x5a, big);
        burn_cpu_ms(30);
        assert_int_equal(plat_self_read(&s, &b, msg, sizeof(msg)), 0);
        assert_int_equal(open_fds(), fds + 1);
        assert_true(b.rss_bytes >= a.rss_bytes + big * 3 / 4);
        assert_true(b.cpu_usec >= a.cpu_usec + 20000);
        free(mem);
        plat_self_done(&s);
        assert_int_equal(open_fds(), fds);
        /* Done is not the end: the next read opens the file again. */
        assert_int_equal(plat_self_read(&s, &a, msg, sizeof(msg)), 0);
        assert_true(a.rss_bytes > 0 && a.peak_rss_bytes >= b.rss_bytes);
        plat_self_done(&s);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_statm_gives_the_resident_size_in_bytes),
                cmocka_unit_test(test_statm_not_seven_figures_is_eproto_and_named),
                cmocka_unit_test(test_statm_figure_past_64_bits_is_erange),
                cmocka_unit_test(test_self_usage_follows_cpu_work_and_memory),
                cmocka_unit_test(test_reader_keeps_one_fd_and_sees_fresh_figures),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
