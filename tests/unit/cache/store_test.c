/*
 * The store: keys and secondary keys, S3-FIFO, objects and bodies,
 * collapsing, a reader following a writer on another thread, eviction
 * within the budget, purge, 304 updates, and the disk tier (write, restart,
 * torn and corrupt files).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache/cache.h"
#include "cache/s3fifo.h"

/* ---- keys ---- */

static void test_key(void **state)
{
    (void)state;
    char b[256];
    size_t n = cache_key_write(b, sizeof(b), STR_NULL, STR_LIT("Example.COM:80"),
                               STR_LIT("/a?B=1"));
    assert_int_equal(n, strlen("http://example.com/a?B=1"));
    assert_memory_equal(b, "http://example.com/a?B=1", n);
    n = cache_key_write(b, sizeof(b), STR_LIT("HTTP"), STR_LIT("example.com:8080"),
                        STR_LIT(""));
    assert_memory_equal(b, "http://example.com:8080/", n);
    n = cache_key_write(b, sizeof(b), STR_LIT("http"), STR_LIT("[::1]:80"),
                        STR_LIT("?x"));
    assert_memory_equal(b, "http://[::1]/?x", n);
    n = cache_key_write(b, sizeof(b), STR_LIT("http"), STR_LIT("a.example."),
                        STR_LIT("/%2e"));
    assert_memory_equal(b, "http://a.example/%2e", n);
    assert_int_equal(cache_key_write(b, 10, STR_NULL, STR_LIT("example.com"),
                                     STR_LIT("/")), 0);
    assert_true(cache_hash("abc", 3) != cache_hash("abd", 3));
    assert_true(cache_hash("", 0) != cache_hash("a", 1));
}

static void test_vary(void **state)
{
    (void)state;
    struct h1_field f1[] = {
        { STR_LIT("Accept-Encoding"), STR_LIT("gzip, br") },
        { STR_LIT("X-A"), STR_LIT("1") },
        { STR_LIT("x-a"), STR_LIT("2") },
    };
    char vk[256];
    int n = cache_vary_key(vk, sizeof(vk), STR_LIT("Accept-Encoding, X-A, X-None"), f1, 3);
    assert_true(n > 0);
    static const char want[] = "accept-encoding\0gzip,br\0x-a\0001,2\0x-none\0\1";
    assert_int_equal(n, sizeof(want));
    assert_memory_equal(vk, want, sizeof(want));
    /* whitespace differences do not matter; values do */
    struct h1_field f2[] = {
        { STR_LIT("accept-encoding"), STR_LIT("gzip,br") },
        { STR_LIT("X-A"), STR_LIT("1 , 2") },
    };
    assert_true(cache_vary_match(vk, (size_t)n, f2, 2));
    struct h1_field f3[] = {
        { STR_LIT("accept-encoding"), STR_LIT("gzip") },
        { STR_LIT("X-A"), STR_LIT("1, 2") },
    };
    assert_false(cache_vary_match(vk, (size_t)n, f3, 2));
    /* absent differs from empty */
    struct h1_field f4[] = {
        { STR_LIT("accept-encoding"), STR_LIT("gzip,br") },
        { STR_LIT("X-A"), STR_LIT("1,2") },
        { STR_LIT("X-None"), STR_LIT("") },
    };
    assert_false(cache_vary_match(vk, (size_t)n, f4, 3));
    assert_int_equal(cache_vary_key(vk, sizeof(vk), STR_LIT("a, *"), f1, 3), -EINVAL);
    assert_int_equal(cache_vary_key(vk, 4, STR_LIT("accept-encoding"), f1, 3), -ENOBUFS);
    assert_true(cache_vary_match("", 0, f1, 3));
}

/* ---- S3-FIFO ---- */

static void test_s3fifo(void **state)
{
    (void)state;
    struct s3 s;
    assert_int_equal(s3_init(&s, 100, 100), 0);
    struct s3_node hot[5], cold[200];
    memset(hot, 0, sizeof(hot));
    memset(cold, 0, sizeof(cold));
    for (int i = 0; i < 5; i++) {
        hot[i].size = 10;
        hot[i].hash = 1000 + (uint64_t)i;
        s3_insert(&s, &hot[i]);
        s3_hit(&hot[i]);
        s3_hit(&hot[i]);
    }
    /* a scan of one-hit items: the hot ones must survive */
    int evicted_hot = 0;
    for (int i = 0; i < 200; i++) {
        cold[i].size = 10;
        cold[i].hash = 5000 + (uint64_t)i;
        s3_insert(&s, &cold[i]);
        while (s3_used(&s) > s.cap) {
            struct s3_node *v = s3_evict(&s);
            assert_non_null(v);
            if (v >= hot && v < hot + 5)
                evicted_hot++;
        }
        for (int j = 0; j < 5; j++)
            if (hot[j].where != S3_NONE && i % 10 == 0)
                s3_hit(&hot[j]);
    }
    assert_int_equal(evicted_hot, 0);
    assert_true(s3_used(&s) <= 100);
    /* a ghost hit goes to the main queue */
    struct s3_node again = { .size = 10, .hash = 5000 + 199 - 5 };
    s3_insert(&s, &again);
    assert_true(again.where == S3_MAIN || again.where == S3_SMALL);
    s3_remove(&s, &again);
    assert_int_equal(again.where, S3_NONE);
    s3_fini(&s);
}

/* ---- objects ---- */

static bool match_all(void *arg, const char *vary, size_t len)
{
    (void)arg;
    (void)vary;
    (void)len;
    return true;
}

static struct cache *new_cache(uint64_t mem, const char *disk)
{
    struct cache_params p = { .mem_bytes = mem, .max_object = mem / 4,
                              .disk_path = disk, .disk_bytes = 64 << 20 };
    char err[256];
    struct cache *c = cache_new(&p, err, sizeof(err));
    if (c == NULL)
        fail_msg("cache_new: %s", err);
    return c;
}

static struct cache_head head200(uint64_t len, const char *tags, size_t tlen)
{
    struct cache_head h;
    memset(&h, 0, sizeof(h));
    h.meta.status = 200;
    h.meta.date = h.meta.req_time = h.meta.resp_time = 1700000000;
    h.meta.expires = DATE_NONE;
    h.meta.last_modified = DATE_NONE;
    cc_resp_init(&h.meta.cc);
    h.meta.cc.max_age = 60;
    h.status = 200;
    h.fields = STR_LIT("Content-Type: text/plain\r\nETag: \"v1\"\r\n");
    h.etag = STR_LIT("\"v1\"");
    h.tags = str_make(tags, tlen);
    h.body_len = len;
    return h;
}

static void key_of(struct cache_key *k, char *buf, size_t cap, const char *path)
{
    size_t n = cache_key_write(buf, cap, STR_NULL, STR_LIT("example.com"), str_cstr(path));
    cache_key_set(k, buf, n);
}

static void read_all(struct cache_obj *o, char *out, size_t *len)
{
    struct cache_reader rd;
    cache_reader_init(o, &rd, 0);
    *len = 0;
    struct iovec iov[8];
    int n;
    while ((n = cache_read_iov(o, &rd, iov, 8, UINT64_MAX)) > 0) {
        size_t got = 0;
        for (int i = 0; i < n; i++) {
            memcpy(out + *len, iov[i].iov_base, iov[i].iov_len);
            *len += iov[i].iov_len;
            got += iov[i].iov_len;
        }
        cache_read_skip(o, &rd, got);
    }
}

static void test_collapse_publish(void **state)
{
    (void)state;
    struct cache *c = new_cache(64 << 20, NULL);
    char kb[256];
    struct cache_key k;
    key_of(&k, kb, sizeof(kb), "/x");
    struct cache_found f1, f2, f3;
    cache_lookup(c, &k, match_all, NULL, CL_COLLAPSE, &f1);
    assert_null(f1.hit);
    assert_non_null(f1.busy);
    assert_true(f1.mine);
    cache_lookup(c, &k, match_all, NULL, CL_COLLAPSE, &f2);
    assert_ptr_equal(f2.busy, f1.busy);
    assert_false(f2.mine);
    assert_false(cache_obj_ready(f2.busy));
    struct cache_head h = head200(11, NULL, 0);
    assert_int_equal(cache_publish(c, f1.busy, &h), 0);
    assert_true(cache_obj_ready(f2.busy));
    assert_int_equal(cache_append(c, f1.busy, "hello ", 6), 0);
    assert_int_equal(cache_append(c, f1.busy, "world", 5), 0);
    uint64_t len;
    assert_int_equal(cache_obj_state(f1.busy, &len), CB_FILLING);
    assert_int_equal(len, 11);
    cache_complete(c, f1.busy);
    assert_int_equal(cache_obj_state(f2.busy, &len), CB_COMPLETE);
    cache_lookup(c, &k, match_all, NULL, CL_COLLAPSE, &f3);
    assert_non_null(f3.hit);
    assert_null(f3.busy);
    struct cache_view v;
    cache_obj_view(f3.hit, &v);
    assert_true(str_eq(v.status_line, STR_LIT("HTTP/1.1 200 OK\r\n")));
    assert_true(str_eq(v.etag, STR_LIT("\"v1\"")));
    char out[64];
    size_t n;
    read_all(f3.hit, out, &n);
    assert_int_equal(n, 11);
    assert_memory_equal(out, "hello world", 11);
    /* a read from the middle (Range) */
    struct cache_reader rd;
    struct iovec iov[4];
    cache_reader_init(f3.hit, &rd, 6);
    int ni = cache_read_iov(f3.hit, &rd, iov, 4, 3);
    assert_int_equal(ni, 1);
    assert_int_equal(iov[0].iov_len, 3);
    assert_memory_equal(iov[0].iov_base, "wor", 3);
    cache_obj_unref(f1.busy);
    cache_obj_unref(f2.busy);
    cache_obj_unref(f3.hit);
    cache_free(c);
}

static void test_abort_pass(void **state)
{
    (void)state;
    struct cache *c = new_cache(64 << 20, NULL);
    char kb[256];
    struct cache_key k;
    key_of(&k, kb, sizeof(kb), "/p");
    struct cache_found f1, f2;
    cache_lookup(c, &k, match_all, NULL, CL_COLLAPSE, &f1);
    cache_abort(c, f1.busy, true);
    assert_int_equal(cache_obj_state(f1.busy, NULL), CB_PASS);
    cache_lookup(c, &k, match_all, NULL, 0, &f2);
    assert_null(f2.hit);
    assert_null(f2.busy);
    cache_obj_unref(f1.busy);
    /* a failed fill is never found */
    cache_lookup(c, &k, match_all, NULL, CL_COLLAPSE, &f1);
    struct cache_head h = head200(CACHE_LEN_UNKNOWN, NULL, 0);
    assert_int_equal(cache_publish(c, f1.busy, &h), 0);
    assert_int_equal(cache_append(c, f1.busy, "partial", 7), 0);
    cache_abort(c, f1.busy, false);
    assert_int_equal(cache_obj_state(f1.busy, NULL), CB_FAILED);
    cache_lookup(c, &k, match_all, NULL, 0, &f2);
    assert_null(f2.hit);
    cache_obj_unref(f1.busy);
    /* too big */
    cache_lookup(c, &k, match_all, NULL, CL_COLLAPSE, &f1);
    h = head200(1ull << 40, NULL, 0);
    assert_int_equal(cache_publish(c, f1.busy, &h), -EFBIG);
    cache_obj_unref(f1.busy);
    cache_free(c);
}

/* A writer on another thread; we follow it with a waiter. */
struct writer_arg {
    struct cache *c;
    struct cache_obj *o;
    size_t total;
};

static char pattern_at(size_t i)
{
    return (char)('a' + (i * 7 + i / 13) % 26);
}

static void *writer(void *arg)
{
    struct writer_arg *wa = arg;
    struct cache_head h = head200(CACHE_LEN_UNKNOWN, NULL, 0);
    usleep(20000);
    cache_publish(wa->c, wa->o, &h);
    char buf[3000];
    size_t off = 0;
    while (off < wa->total) {
        size_t n = wa->total - off < sizeof(buf) ? wa->total - off : sizeof(buf);
        for (size_t i = 0; i < n; i++)
            buf[i] = pattern_at(off + i);
        cache_append(wa->c, wa->o, buf, n);
        off += n;
        if (off % 30000 == 0)
            usleep(1000);
    }
    cache_complete(wa->c, wa->o);
    return NULL;
}

static void woke(void *arg)
{
    (*(int *)arg)++;
}

static void test_follow_writer(void **state)
{
    (void)state;
    struct cache *c = new_cache(64 << 20, NULL);
    char kb[256];
    struct cache_key k;
    key_of(&k, kb, sizeof(kb), "/stream");
    struct cache_found f1, f2;
    cache_lookup(c, &k, match_all, NULL, CL_COLLAPSE, &f1);
    cache_lookup(c, &k, match_all, NULL, CL_COLLAPSE, &f2);
    struct cache_notifier *nt = cache_notifier_new();
    assert_non_null(nt);
    int wakes = 0;
    struct cache_waiter w = { .fn = woke, .arg = &wakes, .nt = nt };
    struct writer_arg wa = { c, f1.busy, 1000000 };
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, writer, &wa), 0);
    struct cache_obj *o = f2.busy;
    /* wait for the head */
    while (cache_wait(o, &w, UINT64_MAX) == 0) {
        struct pollfd pfd = { cache_notifier_fd(nt), POLLIN, 0 };
        assert_true(poll(&pfd, 1, 5000) == 1);
        cache_notifier_run(nt);
    }
    assert_true(cache_obj_ready(o));
    struct cache_reader rd;
    cache_reader_init(o, &rd, 0);
    size_t got = 0;
    for (;;) {
        struct iovec iov[16];
        int n = cache_read_iov(o, &rd, iov, 16, UINT64_MAX);
        if (n > 0) {
            size_t sum = 0;
            for (int i = 0; i < n; i++) {
                const char *p = iov[i].iov_base;
                for (size_t j = 0; j < iov[i].iov_len; j++)
                    assert_int_equal(p[j], pattern_at(got + sum + j));
                sum += iov[i].iov_len;
            }
            cache_read_skip(o, &rd, sum);
            got += sum;
            continue;
        }
        uint64_t len;
        enum cache_bstate st = cache_obj_state(o, &len);
        if (st == CB_COMPLETE && rd.pos == len)
            break;
        assert_int_equal(st, CB_FILLING);
        if (cache_wait(o, &w, rd.pos) == 0) {
            struct pollfd pfd = { cache_notifier_fd(nt), POLLIN, 0 };
            assert_true(poll(&pfd, 1, 5000) == 1);
            cache_notifier_run(nt);
        }
    }
    pthread_join(th, NULL);
    assert_int_equal(got, 1000000);
    assert_true(wakes > 0);
    cache_unwait(&w);
    cache_notifier_free(nt);
    cache_obj_unref(f1.busy);
    cache_obj_unref(f2.busy);
    cache_free(c);
}

static void put_obj(struct cache *c, const char *path, size_t len, const char *tags,
                    size_t tlen)
{
    char kb[256];
    struct cache_key k;
    key_of(&k, kb, sizeof(kb), path);
    struct cache_obj *o = cache_obj_new(c, &k);
    struct cache_head h = head200(len, tags, tlen);
    assert_int_equal(cache_publish(c, o, &h), 0);
    char *buf = malloc(len + 1);
    memset(buf, 'x', len);
    assert_int_equal(cache_append(c, o, buf, len), 0);
    free(buf);
    cache_complete(c, o);
    cache_obj_unref(o);
}

static bool present(struct cache *c, const char *path)
{
    char kb[256];
    struct cache_key k;
    key_of(&k, kb, sizeof(kb), path);
    struct cache_found f;
    cache_lookup(c, &k, match_all, NULL, 0, &f);
    bool hit = f.hit != NULL;
    cache_obj_unref(f.hit);
    cache_obj_unref(f.busy);
    return hit;
}

static void test_evict_budget(void **state)
{
    (void)state;
    struct cache *c = new_cache(1 << 20, NULL);
    for (int i = 0; i < 2000; i++) {
        char p[32];
        snprintf(p, sizeof(p), "/o%d", i);
        put_obj(c, p, 1024, NULL, 0);
    }
    struct cache_stats st;
    cache_stats(c, &st);
    assert_true(st.bytes <= 1 << 20);
    assert_true(st.objects > 300);
    assert_true(st.evictions > 0);
    assert_true(present(c, "/o1999"));
    cache_free(c);
}

static void test_purge(void **state)
{
    (void)state;
    struct cache *c = new_cache(64 << 20, NULL);
    put_obj(c, "/a/1", 10, "red\0blue", 9);
    put_obj(c, "/a/2", 10, "blue", 5);
    put_obj(c, "/b/1", 10, "red", 4);
    put_obj(c, "/b/2", 10, NULL, 0);
    assert_int_equal(cache_purge_tag(c, STR_LIT("red")), 2);
    assert_false(present(c, "/a/1"));
    assert_false(present(c, "/b/1"));
    assert_true(present(c, "/a/2"));
    assert_int_equal(cache_purge_prefix(c, STR_LIT("http://example.com/a/")), 1);
    assert_false(present(c, "/a/2"));
    char kb[256];
    struct cache_key k;
    key_of(&k, kb, sizeof(kb), "/b/2");
    assert_int_equal(cache_purge_key(c, &k), 1);
    assert_false(present(c, "/b/2"));
    assert_int_equal(cache_purge_key(c, &k), 0);
    cache_free(c);
}

static void test_update(void **state)
{
    (void)state;
    struct cache *c = new_cache(64 << 20, NULL);
    put_obj(c, "/u", 5, NULL, 0);
    char kb[256];
    struct cache_key k;
    key_of(&k, kb, sizeof(kb), "/u");
    struct cache_found f;
    cache_lookup(c, &k, match_all, NULL, 0, &f);
    assert_non_null(f.hit);
    struct cache_head h = head200(5, NULL, 0);
    h.fields = STR_LIT("Content-Type: text/plain\r\nX-New: 1\r\n");
    struct cache_obj *n = cache_update(c, f.hit, &h);
    assert_non_null(n);
    struct cache_found g;
    cache_lookup(c, &k, match_all, NULL, 0, &g);
    assert_ptr_equal(g.hit, n);
    struct cache_view v;
    cache_obj_view(g.hit, &v);
    assert_non_null(strstr(v.fields.p, "X-New: 1"));
    char out[16];
    size_t len;
    read_all(g.hit, out, &len);
    assert_int_equal(len, 5);
    assert_int_equal(cache_obj_state(g.hit, NULL), CB_COMPLETE);
    cache_obj_unref(f.hit);
    cache_obj_unref(g.hit);
    cache_obj_unref(n);
    cache_free(c);
}

/* ---- disk ---- */

static void rm_rf(const char *path)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
    assert_int_equal(system(cmd), 0);
}

static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

static struct cache_obj *wait_obj(struct cache *c, const char *path)
{
    char kb[256];
    struct cache_key k;
    key_of(&k, kb, sizeof(kb), path);
    struct cache_found f;
    cache_lookup(c, &k, match_all, NULL, 0, &f);
    if (f.hit != NULL)
        return f.hit;
    if (f.busy == NULL)
        return NULL;
    assert_true(f.from_disk);
    for (int i = 0; i < 500; i++) {
        uint64_t len;
        enum cache_bstate st = cache_obj_state(f.busy, &len);
        if (st == CB_COMPLETE)
            return f.busy;
        if (st != CB_FILLING) {
            cache_obj_unref(f.busy);
            return NULL;
        }
        usleep(10000);
    }
    fail_msg("disk load did not finish");
    return NULL;
}

static void test_disk_restart(void **state)
{
    (void)state;
    char dir[] = "/tmp/gh-cache-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    struct cache *c = new_cache(64 << 20, dir);
    put_obj(c, "/d/1", 100000, "t1", 3);
    put_obj(c, "/d/2", 10, NULL, 0);
    cache_flush(c);
    struct cache_stats st;
    cache_stats(c, &st);
    assert_int_equal(st.disk_objects, 2);
    cache_free(c);

    /* a torn write left behind, and a corrupt file */
    char p[512];
    snprintf(p, sizeof(p), "%s/tmp/99.tmp", dir);
    int fd = open(p, O_WRONLY | O_CREAT, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "GHCACHE1partial", 15), 15);
    close(fd);
    snprintf(p, sizeof(p), "%s/00/0000000000000001-0000000000000000", dir);
    fd = open(p, O_WRONLY | O_CREAT, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "garbage", 7), 7);
    close(fd);

    c = new_cache(64 << 20, dir);
    snprintf(p, sizeof(p), "%s/tmp", dir);
    assert_int_equal(count_files(p), 0);
    snprintf(p, sizeof(p), "%s/00", dir);
    assert_int_equal(count_files(p), 0);
    cache_stats(c, &st);
    assert_int_equal(st.disk_objects, 2);
    struct cache_obj *o = wait_obj(c, "/d/1");
    assert_non_null(o);
    char *buf = malloc(200000);
    size_t len;
    read_all(o, buf, &len);
    assert_int_equal(len, 100000);
    assert_int_equal(buf[0], 'x');
    assert_int_equal(buf[99999], 'x');
    free(buf);
    struct cache_view v;
    cache_obj_view(o, &v);
    assert_int_equal(v.status, 200);
    assert_int_equal(v.meta->cc.max_age, 60);
    assert_true(str_eq(v.tags, STR_LIT("t1\0")));
    cache_obj_unref(o);
    /* purge reaches the disk */
    assert_int_equal(cache_purge_tag(c, STR_LIT("t1")), 2); /* memory + disk */
    cache_free(c);
    c = new_cache(64 << 20, dir);
    assert_null(wait_obj(c, "/d/1"));
    o = wait_obj(c, "/d/2");
    assert_non_null(o);
    cache_obj_unref(o);
    cache_free(c);
    rm_rf(dir);
}

static void test_disk_budget(void **state)
{
    (void)state;
    char dir[] = "/tmp/gh-cache-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    struct cache_params p = { .mem_bytes = 64 << 20, .max_object = 1 << 20,
                              .disk_path = dir, .disk_bytes = 1 << 20 };
    char err[256];
    struct cache *c = cache_new(&p, err, sizeof(err));
    assert_non_null(c);
    for (int i = 0; i < 40; i++) {
        char path[32];
        snprintf(path, sizeof(path), "/big%d", i);
        put_obj(c, path, 100000, NULL, 0);
    }
    cache_flush(c);
    struct cache_stats st;
    cache_stats(c, &st);
    assert_true(st.disk_bytes <= 1 << 20);
    assert_true(st.disk_objects >= 5);
    cache_free(c);
    rm_rf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key),
        cmocka_unit_test(test_vary),
        cmocka_unit_test(test_s3fifo),
        cmocka_unit_test(test_collapse_publish),
        cmocka_unit_test(test_abort_pass),
        cmocka_unit_test(test_follow_writer),
        cmocka_unit_test(test_evict_budget),
        cmocka_unit_test(test_purge),
        cmocka_unit_test(test_update),
        cmocka_unit_test(test_disk_restart),
        cmocka_unit_test(test_disk_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
