/*
 * This node's place in a cluster: whether it is leaving (draining).
 *
 * Draining is process-wide: the graceful stop (SIGTERM, "gatehouse drain")
 * sets it, the
 * health endpoint answers 503 from then on so the L4 balancer stops sending
 * new connections, and the workers finish what they have (idle keep-alive
 * connections closed, "Connection: close" on the next response of busy
 * ones), stop accepting after cluster.drain_delay, and exit when empty.
 */
#ifndef GH_CLUSTER_NODE_H
#define GH_CLUSTER_NODE_H

#include <stdbool.h>
#include <stdint.h>

/* Marks the node as leaving. Safe from any thread. */
void node_drain_begin(void);

/* True once node_drain_begin() was called: health checks must fail. */
bool node_draining(void);

/* Wall-clock ms when draining began (0: not draining). */
int64_t node_drain_since(void);

#endif
