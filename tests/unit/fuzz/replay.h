/*
 * Replays a fuzz target's committed inputs as a unit test, in every
 * `make test` (the fuzzers themselves only run when FUZZ_SECONDS is set):
 * each file of fuzz/corpus/<target>/ goes through the target's
 * LLVMFuzzerTestOneInput() once, under ASan and UBSan, with the target's
 * own checks. An input that once crashed a target is kept in its corpus
 * (scripts/fuzz.sh puts it there), so the crash stays fixed.
 *
 * Include after the target's .c file, with REPLAY_TARGET defined as the
 * corpus name. The tests run from the repository's root.
 */
#ifndef GH_TESTS_FUZZ_REPLAY_H
#define GH_TESTS_FUZZ_REPLAY_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define REPLAY_MAX (1 << 20)

static int replay_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        fail_msg("%s: cannot open (run from the repository root)", dir);
    static uint8_t buf[REPLAY_MAX];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        ssize_t len = read(fd, buf, sizeof(buf));
        close(fd);
        assert_true(len >= 0 && len < REPLAY_MAX);
        /* a heap copy of exactly the input, so ASan sees any overread */
        uint8_t *copy = malloc((size_t)len + 1);
        assert_non_null(copy);
        memcpy(copy, buf, (size_t)len);
        LLVMFuzzerTestOneInput(copy, (size_t)len);
        free(copy);
        n++;
    }
    closedir(d);
    return n;
}

static void test_replay_corpus(void **state)
{
    (void)state;
    int n = replay_dir("fuzz/corpus/" REPLAY_TARGET);
    print_message("replayed %d inputs of fuzz/corpus/%s\n", n, REPLAY_TARGET);
    assert_true(n > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replay_corpus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#endif
