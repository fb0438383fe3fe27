# The pi0 binary counts heap allocations and memcpy/memmove bytes (tools/alloc_count.c) so that
# `pi0 audit` can show what happens inside the denoising loop; the library itself is unaffected.
WRAP_COUNTERS := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=posix_memalign,--wrap=aligned_alloc,--wrap=memcpy,--wrap=memmove
$(BUILD)/pi0: LDFLAGS += $(WRAP_COUNTERS)

# tests/test_alloc.c counts allocations the same way.
$(BUILD)/tests/test_alloc: $(BUILD)/tools/alloc_count.o
$(BUILD)/tests/test_alloc: LDFLAGS += $(WRAP_COUNTERS) $(BUILD)/tools/alloc_count.o
# tests/test_int8.c counts them in the int8 denoising loop.
$(BUILD)/tests/test_int8: $(BUILD)/tools/alloc_count.o
$(BUILD)/tests/test_int8: LDFLAGS += $(WRAP_COUNTERS) $(BUILD)/tools/alloc_count.o
