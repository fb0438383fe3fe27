/* tools_api.h - the one internal header the pi0 command (tools/) includes besides the public API
 * (include/pi0.h, include/pi0_policy.h).
 *
 * Why not public: these are the library's file readers and debug hooks, which the command needs to
 * read and write files and to look inside a run, but which an application embedding pi0 does not:
 * making them API would freeze their layout and grow the exported symbols (tests/test_symbols.py
 * keeps those to the PI0_API functions). Why one header: what the command depends on beyond the API
 * is listed here, once, with its reason; tests/test_header.py checks that no tools/ file includes
 * anything else from src/. A tool that needs more adds it here, saying why. */
#ifndef PI0_TOOLS_API_H
#define PI0_TOOLS_API_H

#include "debug.h"          /* expected tensors and config presets (gen-random), per-op statistics with their
                             * stage (audit, bench), tap copies compared by PCC (check), pi0_cpu_count (the
                             * default thread count audit and bench print), the parameters each weights kind
                             * gets (info, audit: what --weights int8 quantizes) */
#include "err.h"            /* pi0_err: a tool's own errors reach pi0_last_error like the library's */
#include "io/image.h"       /* run --image: PNG/JPEG decoding, as the policy's camera input */
#include "io/lerobot.h"     /* info: a LeRobot checkpoint's features and normalization */
#include "io/prompt.h"      /* tokenize: the π0 / π0.5 prompt formats */
#include "io/safetensors.h" /* model-level case files, gen-random's checkpoints, run --out / --taps /
                             * --prev-actions */
#include "io/tokenizer.h"   /* tokenize: the SentencePiece model */
#include "rt/cpu.h"         /* bench: the machine's peaks per instruction set */

#endif
