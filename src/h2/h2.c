/*
 * HTTP/2 server sessions on libnghttp2 (see h2.h for the contract).
 *
 * nghttp2 does the framing, HPACK, stream states, flow-control accounting
 * and the checks of RFC 9113 §8 (pseudo-fields, connection-specific
 * fields, Content-Length against DATA). What is added here is the part a
 * library cannot decide for an application: what a connection may cost.
 * Every limit is enforced while the frames arrive, so a hostile client
 * pays for its own abuse with a GOAWAY before it costs more than a bounded
 * amount of CPU and memory.
 *
 * Callbacks into the owner happen only from inside h2_recv() and h2_send();
 * when a defence trips inside a callback, the callback stops nghttp2 at once
 * (NGHTTP2_ERR_CALLBACK_FAILURE) and h2_recv() turns that into a GOAWAY.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nghttp2/nghttp2.h>

#include "core/log.h"
#include "core/macros.h"
#include "h2/h2.h"

#define MAX_CONTINUATIONS 8
/* NGHTTP2_ERR_TOO_MANY_CONTINUATIONS, by value: older headers lack it */
#define ERR_TOO_MANY_CONTINUATIONS (-905)
#define NV_STACK 64

/* Per-stream state kept by this module (nghttp2's stream user data). */
struct hs {
    struct hs *prev, *next; /* every open stream of the session */
    void *sud;         /* the owner's stream, NULL when refused/detached */
    uint32_t hbytes;   /* header list size so far (RFC 9113 §6.5.2) */
    uint32_t nfields;
    bool too_big;      /* a limit was hit: no more fields delivered */
    bool deferred;     /* pull() said -EAGAIN */
};

struct h2_sess {
    nghttp2_session *ng;
    const struct h2_cbs *cbs;
    void *ud;
    struct h2_limits lim;
    uint8_t *out;      /* h2_send's buffer while it runs */
    size_t out_len, out_cap;
    uint64_t tokens_ms; /* reset bucket, in ms-weighted tokens */
    int64_t last_ms;
    uint32_t glitches;
    uint32_t cont;     /* CONTINUATION frames in the current block */
    size_t nstreams;
    struct hs *streams;
    enum h2_end ended;
};

static nghttp2_session_callbacks *callbacks;
static nghttp2_option *options;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Records a defence tripping; the callback then fails so nghttp2 stops. */
static int trip(struct h2_sess *s, enum h2_end why)
{
    if (s->ended == H2_END_NONE)
        s->ended = why;
    return NGHTTP2_ERR_CALLBACK_FAILURE;
}

static int glitch(struct h2_sess *s)
{
    return ++s->glitches > s->lim.max_glitches ? trip(s, H2_END_GLITCHES) : 0;
}

/* One RST_STREAM from the client: a token from the bucket, which holds
 * max_resets and refills at reset_rate per second. Tokens are kept in
 * thousandths so the refill needs no division per frame. */
static int pay_reset(struct h2_sess *s)
{
    int64_t now = now_ms();
    uint64_t cap = (uint64_t)s->lim.max_resets * 1000;
    uint64_t add = (uint64_t)(now - s->last_ms) * s->lim.reset_rate;
    s->last_ms = now;
    s->tokens_ms = s->tokens_ms + add > cap ? cap : s->tokens_ms + add;
    if (s->tokens_ms < 1000)
        return trip(s, H2_END_RESETS);
    s->tokens_ms -= 1000;
    return 0;
}

static struct hs *stream_of(struct h2_sess *s, int32_t id)
{
    return nghttp2_session_get_stream_user_data(s->ng, id);
}

/* ---- nghttp2 callbacks ---- */

static int on_begin_frame(nghttp2_session *ng, const nghttp2_frame_hd *hd, void *ud)
{
    (void)ng;
    struct h2_sess *s = ud;
    if (s->ended != H2_END_NONE)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    if (hd->type == NGHTTP2_HEADERS)
        s->cont = 0;
    else if (hd->type == NGHTTP2_CONTINUATION && ++s->cont > MAX_CONTINUATIONS)
        return trip(s, H2_END_HEADERS);
    return 0;
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    struct h2_sess *s = ud;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    struct hs *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
    nghttp2_session_set_stream_user_data(ng, f->hd.stream_id, h);
    h->next = s->streams;
    if (s->streams != NULL)
        s->streams->prev = h;
    s->streams = h;
    s->nstreams++;
    h->sud = s->cbs->begin(s->ud, f->hd.stream_id);
    if (h->sud == NULL)
        nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, f->hd.stream_id,
                                  NGHTTP2_REFUSED_STREAM);
    return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name,
                     size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags,
                     void *ud)
{
    (void)flags;
    struct h2_sess *s = ud;
    if (s->ended != H2_END_NONE)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    if (f->hd.type != NGHTTP2_HEADERS)
        return 0;
    bool trailer = f->headers.cat != NGHTTP2_HCAT_REQUEST;
    if (trailer && s->cbs->trailer == NULL)
        return 0; /* checked by nghttp2, not forwarded */
    struct hs *h = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
    if (h == NULL || h->sud == NULL || h->too_big)
        return 0;
    /* counted as decoded, so a block that expands (HPACK bomb) stops here */
    h->hbytes += (uint32_t)MIN(nlen + vlen + 32, UINT32_MAX / 4);
    if (++h->nfields > s->lim.max_fields || h->hbytes > s->lim.max_header_list) {
        h->too_big = true;
        return glitch(s);
    }
    if (trailer)
        s->cbs->trailer(h->sud, (const char *)name, nlen, (const char *)value, vlen);
    else
        s->cbs->field(h->sud, (const char *)name, nlen, (const char *)value, vlen);
    return 0;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    struct h2_sess *s = ud;
    if (s->ended != H2_END_NONE)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    bool end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    struct hs *h;
    switch (f->hd.type) {
    case NGHTTP2_HEADERS:
        h = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
        if (h == NULL || h->sud == NULL)
            return 0;
        if (f->headers.cat == NGHTTP2_HCAT_REQUEST)
            s->cbs->head(h->sud, end, h->too_big ? 431 : 0);
        else if (end)
            s->cbs->end(h->sud); /* after trailers */
        return 0;
    case NGHTTP2_DATA:
        if (f->hd.length == 0 && !end)
            return glitch(s); /* empty DATA frames cost us, not them */
        h = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
        if (end && h != NULL && h->sud != NULL)
            s->cbs->end(h->sud);
        return 0;
    case NGHTTP2_RST_STREAM:
        return pay_reset(s);
    default:
        return 0;
    }
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id,
                         const uint8_t *data, size_t len, void *ud)
{
    (void)flags;
    struct h2_sess *s = ud;
    if (s->ended != H2_END_NONE)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    struct hs *h = nghttp2_session_get_stream_user_data(ng, id);
    if (h == NULL || h->sud == NULL) {
        nghttp2_session_consume(ng, id, len); /* nobody wants it */
        return 0;
    }
    s->cbs->data(h->sud, data, len);
    return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *ud)
{
    struct h2_sess *s = ud;
    struct hs *h = nghttp2_session_get_stream_user_data(ng, id);
    if (h == NULL)
        return 0;
    nghttp2_session_set_stream_user_data(ng, id, NULL);
    if (h->prev != NULL)
        h->prev->next = h->next;
    else
        s->streams = h->next;
    if (h->next != NULL)
        h->next->prev = h->prev;
    s->nstreams--;
    if (h->sud != NULL)
        s->cbs->close(h->sud, code);
    free(h);
    return 0;
}

static int on_invalid_frame(nghttp2_session *ng, const nghttp2_frame *f, int err,
                            void *ud)
{
    (void)ng, (void)f, (void)err;
    return glitch(ud);
}

/* RFC 9113 §8.1: a response complete before its request may be followed by
 * RST_STREAM(NO_ERROR), so the client stops sending a body nobody reads. */
static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    (void)ud;
    if ((f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) &&
        (f->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
        nghttp2_session_get_stream_remote_close(ng, f->hd.stream_id) == 0)
        nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, f->hd.stream_id,
                                  NGHTTP2_NO_ERROR);
    return 0;
}

static ssize_t on_send(nghttp2_session *ng, const uint8_t *data, size_t len, int flags,
                       void *ud)
{
    (void)ng, (void)flags;
    struct h2_sess *s = ud;
    size_t n = MIN(len, s->out_cap - s->out_len);
    if (n == 0)
        return NGHTTP2_ERR_WOULDBLOCK;
    memcpy(s->out + s->out_len, data, n);
    s->out_len += n;
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

/* The owner's trailers of stream <id>, if any, as a trailing HEADERS
 * (nghttp2 copies them). 0 when submitted, -1 when there are none. */
static int submit_trailers(struct h2_sess *s, int32_t id, void *sud)
{
    const struct h2_nv *nv = NULL;
    size_t n = s->cbs->trailers(sud, &nv);
    if (n == 0)
        return -1;
    nghttp2_nv stack[NV_STACK];
    nghttp2_nv *nva = nv_array(nv, n, stack);
    if (nva == NULL)
        return -1;
    int rv = nghttp2_submit_trailer(s->ng, id, nva, n);
    if (nva != stack)
        free(nva);
    return rv == 0 ? 0 : -1;
}

static ssize_t on_read(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len,
                       uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    (void)src;
    struct h2_sess *s = ud;
    struct hs *h = nghttp2_session_get_stream_user_data(ng, id);
    if (h == NULL || h->sud == NULL) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        return 0;
    }
    bool eof = false;
    ssize_t n = s->cbs->pull(h->sud, buf, len, &eof);
    if (n == -EAGAIN) {
        h->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    if (n < 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
    if (eof) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (s->cbs->trailers != NULL && submit_trailers(s, id, h->sud) == 0)
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM; /* HEADERS ends it */
    }
    return n;
}

static int on_error(nghttp2_session *ng, int code, const char *msg, size_t len, void *ud)
{
    (void)ng, (void)ud, (void)code;
    log_debug("h2: %.*s", (int)len, msg);
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
    nghttp2_session_callbacks_set_on_begin_frame_callback(cb, on_begin_frame);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cb, on_invalid_frame);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
    nghttp2_session_callbacks_set_error_callback2(cb, on_error);
    callbacks = cb;
    /* window updates follow what the proxy passed on, not what arrived */
    nghttp2_option_set_no_auto_window_update(options, 1);
    /* no priority tree: closed streams need not be kept */
    nghttp2_option_set_no_closed_streams(options, 1);
    nghttp2_option_set_max_outbound_ack(options, 64);
    nghttp2_option_set_max_settings(options, 16);
}

/* ---- API ---- */

struct h2_sess *h2_sess_new(const struct h2_limits *lim, const struct h2_cbs *cbs,
                            void *ud)
{
    pthread_once(&once, init_once);
    struct h2_sess *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->cbs = cbs;
    s->ud = ud;
    s->lim = *lim;
    s->tokens_ms = (uint64_t)lim->max_resets * 1000;
    s->last_ms = now_ms();
    if (nghttp2_session_server_new2(&s->ng, callbacks, s, options) != 0) {
        free(s);
        return NULL;
    }
    nghttp2_settings_entry iv[] = {
        { NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, lim->max_streams },
        { NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, lim->stream_window },
        { NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, lim->max_header_list },
        { NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1 },
    };
    if (nghttp2_submit_settings(s->ng, NGHTTP2_FLAG_NONE, iv, ARRAY_LEN(iv)) != 0 ||
        nghttp2_session_set_local_window_size(s->ng, NGHTTP2_FLAG_NONE, 0,
                                              (int32_t)lim->conn_window) != 0) {
        h2_sess_free(s);
        return NULL;
    }
    return s;
}

void h2_sess_free(struct h2_sess *s)
{
    if (s == NULL)
        return;
    nghttp2_session_del(s->ng); /* frees its streams without callbacks */
    while (s->streams != NULL) {
        struct hs *h = s->streams;
        s->streams = h->next;
        free(h);
    }
    free(s);
}

int h2_recv(struct h2_sess *s, const uint8_t *p, size_t len)
{
    if (s->ended != H2_END_NONE)
        return 0; /* GOAWAY is on its way: the rest is ignored */
    ssize_t rv = nghttp2_session_mem_recv(s->ng, p, len);
    if (s->ended != H2_END_NONE) {
        nghttp2_session_terminate_session(s->ng, NGHTTP2_ENHANCE_YOUR_CALM);
        return 0;
    }
    if (rv < 0) {
        log_debug("h2: %s", nghttp2_strerror((int)rv));
        /* nghttp2's own flood checks (newer versions, or Debian's
         * backports): the same answer as ours */
        if (rv == NGHTTP2_ERR_FLOODED || rv == ERR_TOO_MANY_CONTINUATIONS) {
            s->ended = rv == NGHTTP2_ERR_FLOODED ? H2_END_GLITCHES : H2_END_HEADERS;
            nghttp2_session_terminate_session(s->ng, NGHTTP2_ENHANCE_YOUR_CALM);
            return 0;
        }
        s->ended = H2_END_PROTOCOL;
        if (rv != NGHTTP2_ERR_BAD_CLIENT_MAGIC)
            nghttp2_session_terminate_session(s->ng, NGHTTP2_PROTOCOL_ERROR);
        return -EPROTO;
    }
    return 0;
}

ssize_t h2_send(struct h2_sess *s, uint8_t *out, size_t cap)
{
    s->out = out;
    s->out_len = 0;
    s->out_cap = cap;
    int rv = nghttp2_session_send(s->ng);
    s->out = NULL;
    if (rv != 0) {
        log_debug("h2: send: %s", nghttp2_strerror(rv));
        return -EPROTO;
    }
    return (ssize_t)s->out_len;
}

bool h2_want_read(struct h2_sess *s)
{
    return s->ended == H2_END_NONE && nghttp2_session_want_read(s->ng);
}

bool h2_want_write(struct h2_sess *s)
{
    return nghttp2_session_want_write(s->ng) != 0;
}

int h2_submit(struct h2_sess *s, int32_t id, const struct h2_nv *nv, size_t n,
              bool body, bool interim)
{
    nghttp2_nv stack[NV_STACK];
    nghttp2_nv *nva = nv_array(nv, n, stack);
    if (nva == NULL)
        return -ENOMEM;
    int rv;
    if (interim) {
        rv = nghttp2_submit_headers(s->ng, NGHTTP2_FLAG_NONE, id, NULL, nva, n, NULL);
    } else {
        nghttp2_data_provider dp = { .source.ptr = NULL, .read_callback = on_read };
        rv = nghttp2_submit_response(s->ng, id, nva, n, body ? &dp : NULL);
    }
    if (nva != stack)
        free(nva);
    return rv < 0 ? -EINVAL : 0;
}

void h2_resume(struct h2_sess *s, int32_t id)
{
    struct hs *h = stream_of(s, id);
    if (h != NULL && h->deferred) {
        h->deferred = false;
        nghttp2_session_resume_data(s->ng, id);
    }
}

void h2_consume(struct h2_sess *s, int32_t id, size_t n)
{
    if (n > 0 && nghttp2_session_consume(s->ng, id, n) != 0)
        nghttp2_session_consume_connection(s->ng, n);
}

void h2_reset(struct h2_sess *s, int32_t id, uint32_t code)
{
    nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, id, code);
}

void h2_detach(struct h2_sess *s, int32_t id)
{
    struct hs *h = stream_of(s, id);
    if (h != NULL) {
        h->sud = NULL;
        if (h->deferred) { /* let it pull its end */
            h->deferred = false;
            nghttp2_session_resume_data(s->ng, id);
        }
    }
}

void h2_goaway(struct h2_sess *s)
{
    nghttp2_submit_goaway(s->ng, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(s->ng),
                          NGHTTP2_NO_ERROR, NULL, 0);
}

size_t h2_streams(struct h2_sess *s)
{
    return s->nstreams;
}

enum h2_end h2_ended(const struct h2_sess *s)
{
    return s->ended;
}
