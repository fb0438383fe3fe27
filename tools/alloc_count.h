/* alloc_count.h - counts of heap allocations and memcpy/memmove bytes made by anything linked into
 * the pi0 binary (the library included), via the linker's --wrap (see mk/tools.mk). The audit reads
 * them around the denoising loop. */
#ifndef PI0_ALLOC_COUNT_H
#define PI0_ALLOC_COUNT_H

#include <stdint.h>

int64_t pi0_count_allocs(void);
int64_t pi0_count_copied_bytes(void);

#endif
