/* The committed inputs of fuzz/fuzz_chunked.c, replayed (see replay.h). */
#include "../../../fuzz/fuzz_chunked.c"

#define REPLAY_TARGET "chunked"
#include "replay.h"
