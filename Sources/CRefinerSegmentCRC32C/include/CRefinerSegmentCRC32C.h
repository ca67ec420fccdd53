// CRC-32C with the processor's own instruction (SSE 4.2 on x86-64, the CRC extension on ARMv8), for the
// file store's record checksums. Swift cannot call these instructions without a C target: the intrinsics
// need a function compiled for the feature, and the package stays free of unsafe compiler flags.
#ifndef C_REFINER_SEGMENT_CRC32C_H
#define C_REFINER_SEGMENT_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/// 1 when this processor has the CRC-32C instruction, so ``refiner_segment_crc32c`` may be called; else 0.
int refiner_segment_crc32c_available(void);

/// The CRC-32C of `count` bytes at `bytes`, continuing from `crc` (the checksum of what came before, 0 at
/// the start); only when ``refiner_segment_crc32c_available`` returned 1.
uint32_t refiner_segment_crc32c(uint32_t crc, const void *bytes, size_t count);

#endif
