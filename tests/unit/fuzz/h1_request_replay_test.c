/* The committed inputs of fuzz/fuzz_h1_request.c, replayed (see replay.h). */
#include "../../../fuzz/fuzz_h1_request.c"

#define REPLAY_TARGET "h1_request"
#include "replay.h"
