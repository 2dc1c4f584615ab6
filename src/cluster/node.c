/*
 * The node's draining state: one process-wide atomic, read by the health
 * endpoint on every check and written once by the main thread.
 */
#include <stdatomic.h>
#include <time.h>

#include "cluster/node.h"

static atomic_llong drain_since; /* wall ms; 0: serving */

void node_drain_begin(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    long long zero = 0;
    atomic_compare_exchange_strong(&drain_since, &zero, ms > 0 ? ms : 1);
}

bool node_draining(void)
{
    return atomic_load_explicit(&drain_since, memory_order_relaxed) != 0;
}

int64_t node_drain_since(void)
{
    return (int64_t)atomic_load_explicit(&drain_since, memory_order_relaxed);
}
