/* A stand-in for Windows' bcryptprimitives.dll, for running Rust programs under Wine 8.
 *
 * The Rust standard library (1.78 and later) gets its random numbers from ProcessPrng in
 * bcryptprimitives.dll, which Windows 10 and later have and Wine 8 lacks: without it every
 * Rust program fails to start under Wine. This DLL exports ProcessPrng and answers it with
 * advapi32's RtlGenRandom (SystemFunction036), which Wine has. The tests build it with mingw
 * and copy it into the Wine prefix's system32 (tests/windows.rs); it is never shipped, and a
 * real Windows machine uses its own. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    /* RtlGenRandom takes a ULONG length: fill large buffers in pieces. */
    while (length > 0) {
        ULONG piece = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, piece))
            return FALSE;
        data += piece;
        length -= piece;
    }
    return TRUE;
}
