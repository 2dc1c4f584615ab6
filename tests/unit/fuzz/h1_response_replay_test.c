/* The committed inputs of fuzz/fuzz_h1_response.c, replayed (see replay.h). */
#include "../../../fuzz/fuzz_h1_response.c"

#define REPLAY_TARGET "h1_response"
#include "replay.h"
