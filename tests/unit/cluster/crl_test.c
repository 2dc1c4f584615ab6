/* The per-worker cache of the cluster's rate-limit refusals (issue 9). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>

#include "cluster/crl.h"

static void test_learn_and_expire(void **state)
{
    (void)state;
    struct crl *c = crl_new(0);
    assert_non_null(c);
    assert_int_equal(crl_blocked(c, STR_LIT("1.2.3.4"), 1000), 0);
    crl_learn(c, STR_LIT("1.2.3.4"), 1000, 500);
    assert_int_equal(crl_blocked(c, STR_LIT("1.2.3.4"), 1000), 500);
    assert_int_equal(crl_blocked(c, STR_LIT("1.2.3.4"), 1400), 100);
    assert_int_equal(crl_blocked(c, STR_LIT("1.2.3.4"), 1500), 0);
    assert_int_equal(crl_blocked(c, STR_LIT("1.2.3.5"), 1000), 0);
    /* a later verdict replaces the earlier one; 0 forgets */
    crl_learn(c, STR_LIT("1.2.3.4"), 2000, 50);
    assert_int_equal(crl_blocked(c, STR_LIT("1.2.3.4"), 2000), 50);
    crl_learn(c, STR_LIT("1.2.3.4"), 2000, 0);
    assert_int_equal(crl_blocked(c, STR_LIT("1.2.3.4"), 2000), 0);
    crl_free(c);
}

/* Many more keys than slots: the table never grows, never fails, and
 * the newest verdicts are the ones kept. */
static void test_full_table_keeps_newest(void **state)
{
    (void)state;
    struct crl *c = crl_new(256);
    char k[32];
    for (int i = 0; i < 10000; i++) {
        int n = snprintf(k, sizeof(k), "10.0.%d.%d", i / 256, i % 256);
        crl_learn(c, str_make(k, (size_t)n), i, 1000000);
    }
    int kept = 0;
    for (int i = 10000 - 64; i < 10000; i++) {
        int n = snprintf(k, sizeof(k), "10.0.%d.%d", i / 256, i % 256);
        kept += crl_blocked(c, str_make(k, (size_t)n), 10000) > 0;
    }
    assert_true(kept >= 60);
    crl_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_learn_and_expire),
        cmocka_unit_test(test_full_table_keeps_newest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
