"""Memory at integer addresses, for the compiled loops (imported only with numba).

The loops of :mod:`._bytematch_jit` and :mod:`._csv_encode_jit` read Arrow
columns where Arrow keeps them: the string views, and the trace bytes they
point into.  numba cannot index a list of arrays of different types cheaply,
so the loops take integer addresses from live pyarrow buffers (which their
callers keep referenced) and read through these intrinsics.  Both loops
share them, so a string view is read the same way by both.

numba's on-disk cache of a loop checks the content of the loop's own source
file only, so each loop module records a hash of this file (``BUILT_FROM``):
an edit here changes the loops' files too, and their caches are rebuilt
(tests/pipeline/test_jit_sources.py fails until the hashes are updated).
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic


def _pointer(to: types.Type):  # type: ignore[no-untyped-def]
    @intrinsic
    def at(typingctx, addr):  # type: ignore[no-untyped-def]
        """The memory at integer address ``addr`` as a ``to`` pointer."""
        def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
            return builder.inttoptr(args[0], context.get_value_type(signature.return_type))

        return types.CPointer(to)(types.int64), codegen

    return at


bytes_at = _pointer(types.uint8)
int32_at = _pointer(types.int32)


def _unaligned_load(bits: int):  # type: ignore[no-untyped-def]
    @intrinsic
    def load(typingctx, addr):  # type: ignore[no-untyped-def]
        """The uint``bits`` at an integer address, any alignment, as uint64."""
        def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
            ptr = builder.inttoptr(args[0], ir.IntType(bits).as_pointer())
            value = builder.load(ptr, align=1)
            return builder.zext(value, ir.IntType(64)) if bits < 64 else value

        return types.uint64(types.int64), codegen

    return load


load8 = _unaligned_load(64)
load4 = _unaligned_load(32)
load2 = _unaligned_load(16)


def _memcpy(context, builder, dst, src, count):  # type: ignore[no-untyped-def]
    u8p = context.get_value_type(types.CPointer(types.uint8))
    cgutils.raw_memcpy(builder, builder.inttoptr(dst, u8p), builder.inttoptr(src, u8p),
                       count, 1)
    return context.get_dummy_value()


@intrinsic
def copy(typingctx, dst, src, n):  # type: ignore[no-untyped-def]
    """memcpy(dst, src, n) between integer addresses.  (A byte loop from a
    pointer into an array is not vectorised: they might overlap.)"""
    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return _memcpy(context, builder, *args)

    return types.void(types.int64, types.int64, types.int64), codegen


def _fixed_copy(size: int):  # type: ignore[no-untyped-def]
    @intrinsic
    def copy_n(typingctx, dst, src):  # type: ignore[no-untyped-def]
        """memcpy of a constant ``size``: one unaligned load and store."""
        def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
            return _memcpy(context, builder, *args, ir.Constant(ir.IntType(64), size))

        return types.void(types.int64, types.int64), codegen

    return copy_n


copy8 = _fixed_copy(8)
copy4 = _fixed_copy(4)


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def copy_bytes(dst, src, n):  # type: ignore[no-untyped-def]
    """memcpy; the short copies of most fields as two overlapping fixed-size
    moves instead of a call into the C library."""
    if n > 16:
        copy(dst, src, n)
    elif n >= 8:
        copy8(dst, src)
        copy8(dst + n - 8, src + n - 8)
    elif n >= 4:
        copy4(dst, src)
        copy4(dst + n - 4, src + n - 4)
    else:
        d = bytes_at(dst)
        s = bytes_at(src)
        for j in range(n):
            d[j] = s[j]


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def same_bytes(a, b, n):  # type: ignore[no-untyped-def]
    """Are the n bytes at ``a`` and at ``b`` equal?  Compared a word at a
    time; the chunks overlap at the end rather than read past it."""
    if n >= 8:
        j = 0
        while j + 8 < n:
            if load8(a + j) != load8(b + j):
                return False
            j += 8
        return load8(a + n - 8) == load8(b + n - 8)
    if n >= 4:
        return load4(a) == load4(b) and load4(a + n - 4) == load4(b + n - 4)
    x = bytes_at(a)
    y = bytes_at(b)
    for j in range(n):  # noqa: SIM110 (a generator would need numba's reference counting)
        if x[j] != y[j]:
            return False
    return True


@intrinsic
def find_pair16(typingctx, addr, first, second):  # type: ignore[no-untyped-def]
    """The least i < 16 with byte i at ``addr`` == ``first`` and byte i + 1 ==
    ``second``, else 16.  Reads 17 bytes: two overlapping vector loads."""
    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        vt = ir.VectorType(ir.IntType(8), 16)
        base = args[0]

        def matches(offset: int, byte):  # type: ignore[no-untyped-def]
            at = builder.add(base, ir.Constant(ir.IntType(64), offset))
            v = builder.load(builder.inttoptr(at, vt.as_pointer()), align=1)
            b = builder.trunc(byte, ir.IntType(8))
            splat = builder.insert_element(ir.Constant(vt, None), b, ir.Constant(ir.IntType(32), 0))
            splat = builder.shuffle_vector(splat, ir.Constant(vt, None),
                                           ir.Constant(ir.VectorType(ir.IntType(32), 16), [0] * 16))
            return builder.icmp_unsigned("==", v, splat)

        both = builder.and_(matches(0, args[1]), matches(1, args[2]))
        bits = builder.zext(builder.bitcast(both, ir.IntType(16)), ir.IntType(32))
        # Bit 16 set: cttz gives 16 when no byte matched.
        bits = builder.or_(bits, ir.Constant(ir.IntType(32), 1 << 16))
        index = builder.cttz(bits, ir.Constant(ir.IntType(1), 1))
        return builder.zext(index, ir.IntType(64))

    return types.int64(types.int64, types.int64, types.int64), codegen


@intrinsic
def count_trailing_zeros(typingctx, v):  # type: ignore[no-untyped-def]
    """Trailing zero bits of a uint64 (64 for 0): one instruction."""
    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 0))

    return types.int64(types.uint64), codegen
