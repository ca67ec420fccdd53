#include "CRefinerSegmentCRC32C.h"

#include <string.h>

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))

#include <cpuid.h>
#include <nmmintrin.h>

int refiner_segment_crc32c_available(void) {
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
    return (ecx & bit_SSE4_2) != 0;
}

// Compiled for SSE 4.2 alone, and called only once the processor is known to have it.
__attribute__((target("sse4.2"))) uint32_t refiner_segment_crc32c(uint32_t crc, const void *bytes, size_t count) {
    const unsigned char *next = bytes;
    uint64_t value = (uint32_t)~crc;
    while (count >= 8) {
        uint64_t word;
        memcpy(&word, next, 8);
        value = _mm_crc32_u64(value, word);
        next += 8;
        count -= 8;
    }
    uint32_t rest = (uint32_t)value;
    while (count > 0) {
        rest = _mm_crc32_u8(rest, *next);
        next += 1;
        count -= 1;
    }
    return ~rest;
}

#elif defined(__aarch64__) && defined(__ARM_FEATURE_CRC32)

// The target itself has the CRC extension (Apple silicon, or a build for ARMv8.1 and later): no check needed.
#include <arm_acle.h>

int refiner_segment_crc32c_available(void) { return 1; }

uint32_t refiner_segment_crc32c(uint32_t crc, const void *bytes, size_t count) {
    const unsigned char *next = bytes;
    uint32_t value = ~crc;
    while (count >= 8) {
        uint64_t word;
        memcpy(&word, next, 8);
        value = __crc32cd(value, word);
        next += 8;
        count -= 8;
    }
    while (count > 0) {
        value = __crc32cb(value, *next);
        next += 1;
        count -= 1;
    }
    return ~value;
}

#else

// Elsewhere the Swift code's own table-driven checksum is used.
int refiner_segment_crc32c_available(void) { return 0; }

uint32_t refiner_segment_crc32c(uint32_t crc, const void *bytes, size_t count) {
    (void)bytes;
    (void)count;
    return crc;
}

#endif
