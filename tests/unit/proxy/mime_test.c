/* Media types of static files (src/proxy/mime.c): the mime.types line
 * parser and the lookup with its built-in fallback. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/mime.h"

struct seen {
    char s[8][48];
    int n;
};

static void collect(void *arg, struct str type, struct str ext)
{
    struct seen *x = arg;
    snprintf(x->s[x->n++], 48, "%.*s=%.*s", (int)ext.len, ext.p, (int)type.len, type.p);
}

static void test_parse_line(void **state)
{
    (void)state;
    struct seen x = { .n = 0 };
    const char *l = "text/html\t\thtml htm shtml";
    assert_int_equal(mime_parse_line(l, strlen(l), collect, &x), 3);
    assert_string_equal(x.s[0], "html=text/html");
    assert_string_equal(x.s[2], "shtml=text/html");
    x.n = 0;
    l = "# comment text/x";
    assert_int_equal(mime_parse_line(l, strlen(l), collect, &x), 0);
    l = "application/x-none";
    assert_int_equal(mime_parse_line(l, strlen(l), collect, &x), 0);
    l = "  image/png png # trailing";
    assert_int_equal(mime_parse_line(l, strlen(l), collect, &x), 1);
    l = "notatype ext";
    assert_int_equal(mime_parse_line(l, strlen(l), collect, &x), 0);
}

static void test_lookup(void **state)
{
    (void)state;
    /* no system file: the built-in table alone */
    setenv("GATEHOUSE_MIME_TYPES", "/nonexistent/mime.types", 1);
    assert_string_equal(mime_type(STR_LIT("a/b/style.css")), "text/css");
    assert_string_equal(mime_type(STR_LIT("LOGO.PNG")), "image/png");
    assert_string_equal(mime_type(STR_LIT("x.tar.gz")), "application/gzip");
    assert_string_equal(mime_type(STR_LIT("README")), MIME_DEFAULT);
    assert_string_equal(mime_type(STR_LIT(".bashrc")), MIME_DEFAULT);
    assert_string_equal(mime_type(STR_LIT("dir.d/file")), MIME_DEFAULT);
    assert_string_equal(mime_type(STR_LIT("x.unknownext")), MIME_DEFAULT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_line),
        cmocka_unit_test(test_lookup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
