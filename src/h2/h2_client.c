/*
 * HTTP/2 client sessions on libnghttp2 (see h2_client.h for the contract).
 *
 * nghttp2 checks what the server sends (pseudo-fields, connection-specific
 * fields, Content-Length against DATA, flow control) and resets a stream
 * that breaks the rules with PROTOCOL_ERROR; here we only sort HEADERS
 * blocks into interim heads, the final head and trailers, and bound the
 * size of a head so a server cannot make us hold more than max_list bytes.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <nghttp2/nghttp2.h>

#include "core/log.h"
#include "core/macros.h"
#include "h2/h2_client.h"

#define NV_STACK 64
#define MAX_LIST (256u * 1024u) /* response head or trailers, HPACK-counted */

/* Per-stream state (nghttp2's stream user data). */
struct cs {
    struct cs *prev, *next; /* every open stream of the session */
    void *sud;       /* NULL once reset by us */
    uint32_t hbytes; /* of the current block */
    int status;      /* of the current head block, 0 for trailers */
    bool final_seen; /* a final (>= 200) head was delivered */
    bool trailer;    /* the current block is trailers */
};

struct h2_cli {
    nghttp2_session *ng;
    const struct h2_cli_cbs *cbs;
    uint8_t *out;
    size_t out_len, out_cap;
    int64_t goaway; /* the server's GOAWAY code, -1: none */
    bool broken;
    uint8_t seen;  /* bytes of the server's first frame seen, up to 4 */
    struct cs *streams;
    size_t nstreams;
};

static nghttp2_session_callbacks *callbacks;
static nghttp2_option *options;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static struct cs *cs_of(nghttp2_session *ng, int32_t id)
{
    return nghttp2_session_get_stream_user_data(ng, id);
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    (void)ud;
    struct cs *s = cs_of(ng, f->hd.stream_id);
    if (f->hd.type != NGHTTP2_HEADERS || s == NULL)
        return 0;
    s->hbytes = 0;
    s->status = 0;
    s->trailer = s->final_seen; /* after the final head: trailers */
    return 0;
}

static int parse_status(const uint8_t *v, size_t len)
{
    if (len != 3)
        return 0;
    int st = 0;
    for (size_t i = 0; i < 3; i++) {
        if (v[i] < '0' || v[i] > '9')
            return 0;
        st = st * 10 + (v[i] - '0');
    }
    return st >= 100 ? st : 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name,
                     size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags,
                     void *ud)
{
    (void)flags;
    struct h2_cli *c = ud;
    struct cs *s = cs_of(ng, f->hd.stream_id);
    if (f->hd.type != NGHTTP2_HEADERS || s == NULL || s->sud == NULL)
        return 0;
    s->hbytes += (uint32_t)MIN(nlen + vlen + 32, MAX_LIST);
    if (s->hbytes > MAX_LIST)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
    if (nlen == 7 && memcmp(name, ":status", 7) == 0) {
        s->status = parse_status(value, vlen); /* nghttp2 checked it */
        s->trailer = false;
    }
    c->cbs->field(s->sud, (const char *)name, nlen, (const char *)value, vlen,
                  s->trailer);
    return 0;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    struct h2_cli *c = ud;
    bool end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (f->hd.type == NGHTTP2_GOAWAY) {
        c->goaway = f->goaway.error_code;
        return 0;
    }
    if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA)
        return 0;
    struct cs *s = cs_of(ng, f->hd.stream_id);
    if (s == NULL || s->sud == NULL)
        return 0;
    if (f->hd.type == NGHTTP2_HEADERS && !s->trailer) {
        if (s->status >= 200)
            s->final_seen = true;
        c->cbs->head(s->sud, s->status, end);
    }
    if (end && s->sud != NULL)
        c->cbs->end(s->sud);
    return 0;
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id,
                         const uint8_t *data, size_t len, void *ud)
{
    (void)flags;
    struct h2_cli *c = ud;
    struct cs *s = cs_of(ng, id);
    if (s == NULL || s->sud == NULL) {
        nghttp2_session_consume(ng, id, len); /* nobody wants it */
        return 0;
    }
    c->cbs->data(s->sud, data, len);
    return 0;
}

static void unlink_cs(struct h2_cli *c, struct cs *s)
{
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        c->streams = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    c->nstreams--;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *ud)
{
    struct h2_cli *c = ud;
    struct cs *s = cs_of(ng, id);
    if (s == NULL)
        return 0;
    nghttp2_session_set_stream_user_data(ng, id, NULL);
    unlink_cs(c, s);
    if (s->sud != NULL)
        c->cbs->close(s->sud, code);
    free(s);
    return 0;
}

static ssize_t on_send(nghttp2_session *ng, const uint8_t *data, size_t len, int flags,
                       void *ud)
{
    (void)ng, (void)flags;
    struct h2_cli *c = ud;
    size_t n = MIN(len, c->out_cap - c->out_len);
    if (n == 0)
        return NGHTTP2_ERR_WOULDBLOCK;
    memcpy(c->out + c->out_len, data, n);
    c->out_len += n;
    return (ssize_t)n;
}

static nghttp2_nv *nv_array(const struct h2_nv *nv, size_t n, nghttp2_nv *stack)
{
    nghttp2_nv *nva = n <= NV_STACK ? stack : malloc(n * sizeof(*nva));
    if (nva == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        nva[i] = (nghttp2_nv){ (uint8_t *)nv[i].name, (uint8_t *)nv[i].value, nv[i].nlen,
                               nv[i].vlen, NGHTTP2_NV_FLAG_NONE };
    return nva;
}

/* The owner's request trailers of stream <id>, if any (nghttp2 copies
 * them). 0 when submitted, -1 when there are none. */
static int submit_trailers(struct h2_cli *c, int32_t id, void *sud)
{
    const struct h2_nv *nv = NULL;
    size_t n = c->cbs->trailers(sud, &nv);
    if (n == 0)
        return -1;
    nghttp2_nv stack[NV_STACK];
    nghttp2_nv *nva = nv_array(nv, n, stack);
    if (nva == NULL)
        return -1;
    int rv = nghttp2_submit_trailer(c->ng, id, nva, n);
    if (nva != stack)
        free(nva);
    return rv == 0 ? 0 : -1;
}

static ssize_t on_read(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len,
                       uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    (void)src;
    struct h2_cli *c = ud;
    struct cs *s = cs_of(ng, id);
    if (s == NULL || s->sud == NULL) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        return 0;
    }
    bool eof = false;
    ssize_t n = c->cbs->pull(s->sud, buf, len, &eof);
    if (n == -EAGAIN)
        return NGHTTP2_ERR_DEFERRED;
    if (n < 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
    if (eof) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (c->cbs->trailers != NULL && submit_trailers(c, id, s->sud) == 0)
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM; /* HEADERS ends it */
    }
    return n;
}

static int on_error(nghttp2_session *ng, int code, const char *msg, size_t len, void *ud)
{
    (void)ng, (void)ud, (void)code;
    log_debug("h2 upstream: %.*s", (int)len, msg);
    return 0;
}

static void init_once(void)
{
    nghttp2_session_callbacks *cb;
    if (nghttp2_session_callbacks_new(&cb) != 0 || nghttp2_option_new(&options) != 0) {
        log_err("h2: out of memory at start");
        abort();
    }
    nghttp2_session_callbacks_set_send_callback(cb, on_send);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_session_callbacks_set_error_callback2(cb, on_error);
    callbacks = cb;
    /* window updates follow what the proxy passed on, not what arrived */
    nghttp2_option_set_no_auto_window_update(options, 1);
    nghttp2_option_set_no_closed_streams(options, 1);
    nghttp2_option_set_max_outbound_ack(options, 64);
    nghttp2_option_set_max_settings(options, 16);
    nghttp2_option_set_peer_max_concurrent_streams(options, 100);
}

/* ---- API ---- */

struct h2_cli *h2_cli_new(const struct h2_cli_cbs *cbs, uint32_t window,
                          uint32_t conn_window)
{
    pthread_once(&once, init_once);
    struct h2_cli *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->cbs = cbs;
    c->goaway = -1;
    if (nghttp2_session_client_new2(&c->ng, callbacks, c, options) != 0) {
        free(c);
        return NULL;
    }
    nghttp2_settings_entry iv[] = {
        { NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
        { NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, window },
        { NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, MAX_LIST },
    };
    if (nghttp2_submit_settings(c->ng, NGHTTP2_FLAG_NONE, iv, ARRAY_LEN(iv)) != 0 ||
        nghttp2_session_set_local_window_size(c->ng, NGHTTP2_FLAG_NONE, 0,
                                              (int32_t)conn_window) != 0) {
        h2_cli_free(c);
        return NULL;
    }
    return c;
}

void h2_cli_free(struct h2_cli *c)
{
    if (c == NULL)
        return;
    nghttp2_session_del(c->ng); /* frees its streams without callbacks */
    while (c->streams != NULL) {
        struct cs *s = c->streams;
        c->streams = s->next;
        free(s);
    }
    free(c);
}

int h2_cli_recv(struct h2_cli *c, const uint8_t *p, size_t len)
{
    if (c->broken)
        return -EPROTO;
    /* RFC 9113 §3.4: the server's first frame is SETTINGS; anything else
     * (an HTTP/1.1 answer to our preface) is not HTTP/2 at all */
    if (c->seen < 4 && len > 0) {
        size_t k = 3 - c->seen;
        if (k < len && p[k] != NGHTTP2_SETTINGS) {
            c->broken = true;
            return -EPROTO;
        }
        c->seen = (uint8_t)MIN(4u, c->seen + len);
    }
    ssize_t rv = nghttp2_session_mem_recv(c->ng, p, len);
    if (rv < 0) {
        log_debug("h2 upstream: %s", nghttp2_strerror((int)rv));
        c->broken = true;
        nghttp2_session_terminate_session(c->ng, NGHTTP2_PROTOCOL_ERROR);
        return -EPROTO;
    }
    return 0;
}

ssize_t h2_cli_send(struct h2_cli *c, uint8_t *out, size_t cap)
{
    c->out = out;
    c->out_len = 0;
    c->out_cap = cap;
    int rv = nghttp2_session_send(c->ng);
    c->out = NULL;
    if (rv != 0) {
        log_debug("h2 upstream: send: %s", nghttp2_strerror(rv));
        c->broken = true;
        return -EPROTO;
    }
    return (ssize_t)c->out_len;
}

bool h2_cli_want_write(struct h2_cli *c)
{
    return nghttp2_session_want_write(c->ng) != 0;
}

int32_t h2_cli_request(struct h2_cli *c, const struct h2_nv *nv, size_t n, bool body,
                       void *sud)
{
    if (!h2_cli_usable(c) || !nghttp2_session_check_request_allowed(c->ng))
        return -EAGAIN;
    struct cs *s = calloc(1, sizeof(*s));
    nghttp2_nv stack[NV_STACK];
    nghttp2_nv *nva = nv_array(nv, n, stack);
    if (s == NULL || nva == NULL) {
        free(s);
        if (nva != stack)
            free(nva);
        return -ENOMEM;
    }
    s->sud = sud;
    nghttp2_data_provider dp = { .source.ptr = NULL, .read_callback = on_read };
    int32_t id = nghttp2_submit_request(c->ng, NULL, nva, n, body ? &dp : NULL, s);
    if (nva != stack)
        free(nva);
    if (id < 0) {
        free(s);
        return id == NGHTTP2_ERR_NOMEM ? -ENOMEM
               : id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE ? -EAGAIN
                                                           : -EINVAL;
    }
    s->next = c->streams;
    if (c->streams != NULL)
        c->streams->prev = s;
    c->streams = s;
    c->nstreams++;
    return id;
}

void h2_cli_resume(struct h2_cli *c, int32_t id)
{
    nghttp2_session_resume_data(c->ng, id);
}

void h2_cli_consume(struct h2_cli *c, int32_t id, size_t n)
{
    if (n > 0 && nghttp2_session_consume(c->ng, id, n) != 0)
        nghttp2_session_consume_connection(c->ng, n);
}

void h2_cli_reset(struct h2_cli *c, int32_t id, uint32_t code)
{
    struct cs *s = cs_of(c->ng, id);
    if (s != NULL)
        s->sud = NULL;
    nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, id, code);
}

bool h2_cli_usable(struct h2_cli *c)
{
    return !c->broken && c->goaway < 0 && nghttp2_session_want_read(c->ng) &&
           nghttp2_session_get_next_stream_id(c->ng) < (1u << 30);
}

int64_t h2_cli_goaway(const struct h2_cli *c)
{
    return c->goaway;
}

size_t h2_cli_streams(struct h2_cli *c)
{
    return c->nstreams;
}
