/*
 * Small HTTP/1 helpers with no state: the byte class table the parsers share,
 * reason phrases and IMF-fixdate formatting.
 *
 * The date is computed from the integer time with the days-to-civil algorithm
 * (H. Hinnant, "chrono-Compatible Low-Level Date Algorithms") rather than with
 * gmtime_r/strftime: no locale, no time zone lookups, no lock, and it is the
 * same on every libc.
 */
#include <stdint.h>
#include <string.h>

#include "http/h1.h"
#include "http/h1_int.h"

/* H1__* bits for every byte; one row per 8 bytes. See h1_int.h. */
const uint8_t h1__ctab[256] = {
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* 0x00 */
    0x00, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* 0x08 HTAB */
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* 0x10 */
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* 0x18 */
    0x84, 0x97, 0x06, 0x87, 0x97, 0x97, 0x97, 0x97, /* 0x20  !"#$%&' */
    0x96, 0x96, 0x97, 0xb7, 0x96, 0xb7, 0xb7, 0x86, /* 0x28 ()*+,-./ */
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* 0x30 01234567 */
    0xff, 0xff, 0x86, 0x96, 0x86, 0x96, 0x86, 0x86, /* 0x38 89:;<=>? */
    0x86, 0xbf, 0xbf, 0xbf, 0xbf, 0xbf, 0xbf, 0xb7, /* 0x40 @ABCDEFG */
    0xb7, 0xb7, 0xb7, 0xb7, 0xb7, 0xb7, 0xb7, 0xb7, /* 0x48 HIJKLMNO */
    0xb7, 0xb7, 0xb7, 0xb7, 0xb7, 0xb7, 0xb7, 0xb7, /* 0x50 PQRSTUVW */
    0xb7, 0xb7, 0xb7, 0x86, 0x06, 0x86, 0x87, 0x97, /* 0x58 XYZ[\]^_ */
    0x87, 0xbf, 0xbf, 0xbf, 0xbf, 0xbf, 0xbf, 0xb7, /* 0x60 `abcdefg */
    0xb7, 0xb7, 0xb7, 0xb7, 0xb7, 0xb7, 0xb7, 0xb7, /* 0x68 hijklmno */
    0xb7, 0xb7, 0xb7, 0xb7, 0xb7, 0xb7, 0xb7, 0xb7, /* 0x70 pqrstuvw */
    0xb7, 0xb7, 0xb7, 0x86, 0x87, 0x86, 0x97, 0x00, /* 0x78 xyz{|}~ DEL */
    0x84, 0x84, 0x84, 0x84, 0x84, 0x84, 0x84, 0x84, /* 0x80 obs-text */
    0x84, 0x84, 0x84, 0x84, 0x84, 0x84, 0x84, 0x84, /* 0x88 */
    0x84, 0x84, 0x84, 0x84, 0x84, 0x84, 0x84, 0x84, /* 0x90 */
    0x84, 0x84, 0x84, 0x84, 0x84, 0x84, 0x84, 0x84, /* 0x98 */
    0x84, 0x84, 0x84, 0x84, 0x84, 0x84, 0x84, 0x84, /* 0xa0 */
    0x84, 0x84, 0x84, 0x84, 0x84, 0x84, 0x84, 0x84, /* 0xa8 */
    0x84, 0x84, 0x84, 0x84, 0x84, 0x84, 0x84, 0x84, /* 0xb0 */
    0x84, 0x84, 0x84, 0x84, 0x84, 0x84, 0x84, 0x84, /* 0xb8 */
    0x84, 0x84, 0x84, 0x84, 0x84, 0x84, 0x84, 0x84, /* 0xc0 */
    0x84, 0x84, 0x84, 0x84, 0x84, 0x84, 0x84, 0x84, /* 0xc8 */
    0x84, 0x84, 0x84, 0x84, 0x84, 0x84, 0x84, 0x84, /* 0xd0 */
    0x84, 0x84, 0x84, 0x84, 0x84, 0x84, 0x84, 0x84, /* 0xd8 */
    0x84, 0x84, 0x84, 0x84, 0x84, 0x84, 0x84, 0x84, /* 0xe0 */
    0x84, 0x84, 0x84, 0x84, 0x84, 0x84, 0x84, 0x84, /* 0xe8 */
    0x84, 0x84, 0x84, 0x84, 0x84, 0x84, 0x84, 0x84, /* 0xf0 */
    0x84, 0x84, 0x84, 0x84, 0x84, 0x84, 0x84, 0x84, /* 0xf8 */
};

const char *h1_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 102: return "Processing";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 207: return "Multi-Status";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 305: return "Use Proxy";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 423: return "Locked";
    case 424: return "Failed Dependency";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 506: return "Variant Also Negotiates";
    case 507: return "Insufficient Storage";
    case 508: return "Loop Detected";
    case 511: return "Network Authentication Required";
    default: return "Unknown";
    }
}

static char *put2(char *o, unsigned v)
{
    o[0] = (char)('0' + v / 10);
    o[1] = (char)('0' + v % 10);
    return o + 2;
}

/* 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the years that fit in four
   digits, so the result is always 29 bytes. */
#define DATE_MIN INT64_C(-62167219200)
#define DATE_MAX INT64_C(253402300799)

size_t h1_fmt_date(char *out, int64_t t)
{
    static const char wday[7][4] = { "Thu", "Fri", "Sat", "Sun",
                                     "Mon", "Tue", "Wed" }; /* 1970-01-01 */
    static const char mon[12][4] = { "Jan", "Feb", "Mar", "Apr",
                                     "May", "Jun", "Jul", "Aug",
                                     "Sep", "Oct", "Nov", "Dec" };
    if (t < DATE_MIN)
        t = DATE_MIN;
    if (t > DATE_MAX)
        t = DATE_MAX;
    int64_t days = t / 86400, secs = t % 86400;
    if (secs < 0) { /* floor division for times before 1970 */
        secs += 86400;
        days--;
    }
    unsigned wd = (unsigned)(((days % 7) + 7) % 7);

    /* days-to-civil: shift the era so that it starts on 0000-03-01 */
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);                    /* [0, 146096] */
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    int64_t y = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);         /* [0, 365] */
    unsigned mp = (5 * doy + 2) / 153;                              /* [0, 11] */
    unsigned d = doy - (153 * mp + 2) / 5 + 1;                      /* [1, 31] */
    unsigned m = mp < 10 ? mp + 3 : mp - 9;                         /* [1, 12] */
    if (m <= 2)
        y++;

    char *o = out;
    memcpy(o, wday[wd], 3);
    o += 3;
    *o++ = ',';
    *o++ = ' ';
    o = put2(o, d);
    *o++ = ' ';
    memcpy(o, mon[m - 1], 3);
    o += 3;
    *o++ = ' ';
    o = put2(o, (unsigned)(y / 100));
    o = put2(o, (unsigned)(y % 100));
    *o++ = ' ';
    o = put2(o, (unsigned)(secs / 3600));
    *o++ = ':';
    o = put2(o, (unsigned)(secs / 60 % 60));
    *o++ = ':';
    o = put2(o, (unsigned)(secs % 60));
    memcpy(o, " GMT", 4);
    o += 4;
    *o = '\0';
    return (size_t)(o - out);
}
