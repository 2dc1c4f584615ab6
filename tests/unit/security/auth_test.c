/* Basic credentials against htpasswd users (hashes made here by libcrypt),
 * the credentials cache, and the per-address failure slow-down. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <crypt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/macros.h"
#include "security/auth.h"

static char *hashed(const char *prefix, const char *pw)
{
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    struct crypt_data cd;
    memset(&cd, 0, sizeof(cd));
    assert_non_null(crypt_gensalt_rn(prefix, strcmp(prefix, "$2b$") ? 0 : 4,
                                     NULL, 0, salt, sizeof(salt)));
    return strdup(crypt_r(pw, salt, &cd));
}

static void test_b64(void **state)
{
    (void)state;
    unsigned char out[64];
    assert_int_equal(auth_b64decode(STR_LIT(""), out, sizeof(out)), 0);
    assert_int_equal(auth_b64decode(STR_LIT("Zg=="), out, sizeof(out)), 1);
    assert_memory_equal(out, "f", 1);
    assert_int_equal(auth_b64decode(STR_LIT("Zm8="), out, sizeof(out)), 2);
    assert_memory_equal(out, "fo", 2);
    assert_int_equal(auth_b64decode(STR_LIT("Zm9v"), out, sizeof(out)), 3);
    assert_int_equal(auth_b64decode(STR_LIT("dXNlcjpwYXNz"), out, sizeof(out)), 9);
    assert_memory_equal(out, "user:pass", 9);
    assert_int_equal(auth_b64decode(STR_LIT("Zm9"), out, sizeof(out)), -1);
    assert_int_equal(auth_b64decode(STR_LIT("Zm9v!A=="), out, sizeof(out)), -1);
    assert_int_equal(auth_b64decode(STR_LIT("Z==="), out, sizeof(out)), -1);
    assert_int_equal(auth_b64decode(STR_LIT("Zg==Zg=="), out, sizeof(out)), -1);
    assert_int_equal(auth_b64decode(STR_LIT("Zm9v"), out, 2), -1);
    /* non-canonical: bits dropped by the padding are not zero */
    assert_int_equal(auth_b64decode(STR_LIT("Zh=="), out, sizeof(out)), -1);
    assert_int_equal(auth_b64decode(STR_LIT("Zm9="), out, sizeof(out)), -1);
}

static struct cfg_htuser users[2];
static struct cfg_forward fwd;

static int setup(void **state)
{
    (void)state;
    users[0] = (struct cfg_htuser){ "alice", hashed("$2b$", "wonder land") };
    users[1] = (struct cfg_htuser){ "bob", hashed("$6$", "b:o:b") };
    fwd.users = users;
    fwd.nusers = 2;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free((char *)users[0].hash);
    free((char *)users[1].hash);
    return 0;
}

static struct str basic(const char *b64, char *buf, size_t len)
{
    snprintf(buf, len, "Basic %s", b64);
    return str_cstr(buf);
}

static void test_check(void **state)
{
    (void)state;
    struct auth *a = auth_new();
    const char *user = NULL;
    char b[128];
    assert_int_equal(auth_check(a, &fwd, STR_NULL, 0, &user), AUTH_MISSING);
    /* alice:wonder land */
    assert_int_equal(auth_check(a, &fwd, basic("YWxpY2U6d29uZGVyIGxhbmQ=", b,
                                               sizeof(b)), 0, &user), AUTH_OK);
    assert_string_equal(user, "alice");
    /* bob:b:o:b (a colon in the password) */
    user = NULL;
    assert_int_equal(auth_check(a, &fwd, str_cstr("basic   Ym9iOmI6bzpi "), 0,
                                &user), AUTH_OK);
    assert_string_equal(user, "bob");
    /* alice:wrong */
    assert_int_equal(auth_check(a, &fwd, basic("YWxpY2U6d3Jvbmc=", b, sizeof(b)),
                                0, &user), AUTH_FAILED);
    /* eve:wonder land */
    assert_int_equal(auth_check(a, &fwd, basic("ZXZlOndvbmRlciBsYW5k", b,
                                               sizeof(b)), 0, &user),
                     AUTH_FAILED);
    assert_int_equal(auth_check(a, &fwd, str_cstr("Bearer abc"), 0, &user),
                     AUTH_MALFORMED);
    assert_int_equal(auth_check(a, &fwd, str_cstr("Basic !!!!"), 0, &user),
                     AUTH_MALFORMED);
    assert_int_equal(auth_check(a, &fwd, str_cstr("Basic"), 0, &user),
                     AUTH_MALFORMED);
    /* "alicewonder" has no colon */
    assert_int_equal(auth_check(a, &fwd, basic("YWxpY2V3b25kZXI=", b, sizeof(b)),
                                0, &user), AUTH_MALFORMED);
    /* a NUL inside: "a\0:x" */
    assert_int_equal(auth_check(a, &fwd, basic("YQA6eA==", b, sizeof(b)), 0,
                                &user), AUTH_MALFORMED);
    auth_free(a);
}

static void test_cache(void **state)
{
    (void)state;
    struct auth *a = auth_new();
    const char *user = NULL;
    struct str ok = str_cstr("Basic YWxpY2U6d29uZGVyIGxhbmQ=");
    assert_int_equal(auth_check(a, &fwd, ok, 1000, &user), AUTH_OK);
    /* the password changes (a reload with a new hash): the remembered
     * credentials no longer pass */
    const char *old = users[0].hash;
    users[0].hash = hashed("$6$", "new one");
    assert_int_equal(auth_check(a, &fwd, ok, 2000, &user), AUTH_FAILED);
    free((char *)users[0].hash);
    users[0].hash = old;
    assert_int_equal(auth_check(a, &fwd, ok, 3000, &user), AUTH_OK);
    /* remembered: still OK long after, until it expires and is checked
     * again (still right) */
    assert_int_equal(auth_check(a, &fwd, ok, 3000 + 299000, &user), AUTH_OK);
    assert_int_equal(auth_check(a, &fwd, ok, 3000 + 301000, &user), AUTH_OK);
    /* a token differing in one byte is not the remembered one */
    assert_int_equal(auth_check(a, &fwd, str_cstr("Basic YWxpY2U6d29uZGVyIGxhbmR="),
                                4000, &user), AUTH_MALFORMED);
    auth_free(a);
}

static struct sockaddr_in ip4(const char *s)
{
    struct sockaddr_in in = { .sin_family = AF_INET };
    inet_pton(AF_INET, s, &in.sin_addr);
    return in;
}

static void test_slowdown(void **state)
{
    (void)state;
    struct auth *a = auth_new();
    struct sockaddr_in x = ip4("192.0.2.1"), y = ip4("192.0.2.2");
    const struct sockaddr *sx = (const struct sockaddr *)&x;
    const struct sockaddr *sy = (const struct sockaddr *)&y;
    int64_t want[] = { 0, 0, 0, 500, 1000, 2000, 4000, 5000, 5000 };
    int64_t now = 100000;
    for (size_t i = 0; i < ARRAY_LEN(want); i++) {
        assert_int_equal(auth_wait(a, sx, now), 0);
        assert_int_equal(auth_failed(a, sx, now), want[i]);
        if (want[i] > 0) {
            assert_int_equal(auth_wait(a, sx, now + 100), want[i] - 100);
            assert_int_equal(auth_wait(a, sy, now + 100), 0); /* others not */
        }
        now += want[i];
    }
    auth_passed(a, sx);
    assert_int_equal(auth_failed(a, sx, now), 0);
    /* failures are forgotten after ten quiet minutes */
    for (int i = 0; i < 5; i++)
        auth_failed(a, sy, now);
    assert_int_equal(auth_failed(a, sy, now + 11 * 60 * 1000), 0);
    auth_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64),
        cmocka_unit_test_setup_teardown(test_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache, setup, teardown),
        cmocka_unit_test(test_slowdown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
