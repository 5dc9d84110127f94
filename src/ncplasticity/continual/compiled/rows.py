"""Row operations of the compiled step with a row's accumulators in vector registers.

A batch-1 step of the MLP is a few hundred passes over weight rows of ~100 floats (one per
nonzero input, in the layout of :mod:`.forward`: a layer's weight as [in, out]). As numba
loops, every row reloads and stores the vector it adds to and ends in a scalar remainder. These
three operations are LLVM IR instead (numba intrinsics): a row of 100 floats is 12 vectors of 8
and a partial 13th, the accumulators stay in registers across the rows, a row is read once, and
a forward pass asks for a row's cache lines a few rows ahead (the rows lie at random).

For the rows ``i`` in ``rows[:count]``, with rows of ``n`` floats starting at
``weights[offset + i·n]`` and ``values`` indexed by ``i``:

* :func:`accumulate_rows`: ``out[:n] += Σ_i values[i] · row_i`` (a layer's forward pass);
* :func:`update_rows`: ``row_i += (scale · values[i]) · direction[:n]`` (SGD's rank-1 step);
* :func:`dot_update_rows`: ``dots[i] += row_i · direction`` with the old row, then the step
  of :func:`update_rows` (a layer's input gradient and its step in one pass).

Each output of :func:`accumulate_rows` sums its rows in order; a dot product sums its products
as a fixed tree (vectors in pairs, then lanes). Multiply-adds are ``llvm.fmuladd``: fused where
the CPU has FMA, a multiply and an add on the baseline target of ``portable``. Nothing is
bounds-checked: the caller passes indices inside the arrays.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic

_LANES = 8
_F32 = ir.FloatType()
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_VEC = ir.VectorType(_F32, _LANES)
# Vectors per pass over the rows, the last one partial: 13 covers a row of 97-104 floats in one
# pass with 13 of the 16 AVX registers as accumulators; 4, 2 and 1 serve narrower rows (2: the
# classifier's 10) and the rest of wider ones.
_PASS_VECTORS = (13, 4, 2, 1)


def _int(value: int) -> ir.Constant:
    return ir.Constant(_I64, value)


def _intrinsic_function(builder, name: str, result, arguments):
    return cgutils.get_or_insert_function(builder.module, ir.FunctionType(result, arguments), name)


def _fmuladd(builder, a, b, c):
    name = "llvm.fmuladd.v8f32" if a.type == _VEC else "llvm.fmuladd.f32"
    return builder.call(_intrinsic_function(builder, name, a.type, [a.type] * 3), [a, b, c])


def _splat(builder, scalar):
    vector = ir.VectorType(scalar.type, _LANES)
    lane = builder.insert_element(ir.Constant(vector, ir.Undefined), scalar, _I32(0))
    zeros = ir.Constant(ir.VectorType(_I32, _LANES), [0] * _LANES)
    return builder.shuffle_vector(lane, ir.Constant(vector, ir.Undefined), zeros)


def _vector_address(builder, base, offset):
    return builder.bitcast(builder.gep(base, [offset]), _VEC.as_pointer())


def _pieces(lanes: int) -> list[tuple[int, int]]:
    """(first lane, width) of the pieces, widest first, that cover lanes 0..lanes-1."""
    pieces, lane = [], 0
    for width in (8, 4, 2, 1):
        if lanes - lane >= width:
            pieces.append((lane, width))
            lane += width
    return pieces


def _by_lanes(builder, in_last, emit):
    """Branches on ``min(in_last, 8)`` (``in_last`` ≥ 1) and calls ``emit(lanes)`` in the
    case of each count. A pass over the rows branches once, outside its loop, and each case
    gets a loop of its own for that many lanes in the last vector: a branch per row (an
    indirect jump) cost ~5% of a step; masked loads and stores would instead be microcoded on
    AMD and scalarised lane by lane on the baseline target of ``portable``."""
    lanes = builder.select(builder.icmp_signed("<", in_last, _int(_LANES)), in_last, _int(_LANES))
    done = builder.append_basic_block("lanes.done")
    switch = builder.switch(lanes, done)
    for count in range(1, _LANES + 1):
        case = builder.append_basic_block(f"lanes.{count}")
        switch.add_case(_int(count), case)
        with builder.goto_block(case):
            emit(count)
            builder.branch(done)
    builder.position_at_end(done)


def _piece_address(builder, base, start, lane, width):
    address = builder.gep(base, [builder.add(start, _int(lane))])
    kind = _F32 if width == 1 else ir.VectorType(_F32, width)
    return builder.bitcast(address, kind.as_pointer())


def _load_vectors(builder, base, start, count, lanes):
    """``count`` vectors from ``base[start:]``, of the last one its first ``lanes`` lanes
    (the others 0; memory past them is not read)."""
    vectors = [
        builder.load(_vector_address(builder, base, builder.add(start, _int(_LANES * j))), align=4)
        for j in range(count - 1)
    ]
    last_start = builder.add(start, _int(_LANES * (count - 1)))
    vector = ir.Constant(_VEC, [0.0] * _LANES)
    for lane, width in _pieces(lanes):
        piece = builder.load(_piece_address(builder, base, last_start, lane, width), align=4)
        vector = _insert_piece(builder, vector, piece, lane, width)
    return [*vectors, vector]


def _insert_piece(builder, vector, piece, lane, width):
    if width == 1:
        return builder.insert_element(vector, piece, _I32(lane))
    if width == _LANES:
        return piece
    # Widen the piece to 8 lanes (its lanes at lane..lane+width-1), then take those lanes.
    spread = [i - lane if lane <= i < lane + width else width for i in range(_LANES)]
    zeros = ir.Constant(piece.type, [0.0] * width)
    widened = builder.shuffle_vector(piece, zeros, ir.Constant(ir.VectorType(_I32, _LANES), spread))
    take = [_LANES + i if lane <= i < lane + width else i for i in range(_LANES)]
    return builder.shuffle_vector(vector, widened, ir.Constant(ir.VectorType(_I32, _LANES), take))


def _store_vectors(builder, vectors, base, start, lanes):
    """Stores ``vectors`` at ``base[start:]``, of the last one its first ``lanes`` lanes."""
    for j, vector in enumerate(vectors[:-1]):
        address = _vector_address(builder, base, builder.add(start, _int(_LANES * j)))
        builder.store(vector, address, align=4)
    last_start = builder.add(start, _int(_LANES * (len(vectors) - 1)))
    for lane, width in _pieces(lanes):
        piece = _lanes(builder, vectors[-1], lane, width)
        builder.store(piece, _piece_address(builder, base, last_start, lane, width), align=4)


def _lanes(builder, vector, first, width):
    if width == 1:
        return builder.extract_element(vector, _I32(first))
    if width == _LANES:
        return vector
    indices = ir.Constant(ir.VectorType(_I32, width), list(range(first, first + width)))
    return builder.shuffle_vector(vector, vector, indices)


def _horizontal_sum(builder, vectors):
    """The sum of every lane of ``vectors``: in pairs of vectors, then halves of the lanes."""
    while len(vectors) > 1:
        paired = [builder.fadd(a, b) for a, b in zip(vectors[::2], vectors[1::2], strict=False)]
        vectors = paired + ([vectors[-1]] if len(vectors) % 2 else [])
    total = vectors[0]
    width = _LANES
    while width > 1:
        width //= 2
        indices = ir.Constant(
            ir.VectorType(_I32, _LANES), list(range(width, 2 * width)) * (_LANES // width)
        )
        total = builder.fadd(total, builder.shuffle_vector(total, total, indices))
    return builder.extract_element(total, _I32(0))


def _partial_dots(builder, row, direction):
    """Four partial dot products of ``row`` and ``direction``, vector j going to partial
    j mod 4 (four chains keep both FMA units busy; the sum of all lanes is the dot)."""
    partials = [builder.fmul(w, d) for w, d in zip(row[:4], direction[:4], strict=False)]
    for j in range(4, len(row)):
        partials[j % 4] = _fmuladd(builder, row[j], direction[j], partials[j % 4])
    return partials


def _column_passes(builder, n, emit_pass):
    """Calls ``emit_pass(column, vectors, lanes)`` for passes covering columns 0..n-1: at
    each column the widest of :data:`_PASS_VECTORS` whose full vectors lie inside the row, of
    its last vector the first ``lanes`` (a constant of the emitted code: :func:`_by_lanes`)."""
    column = cgutils.alloca_once_value(builder, _int(0))
    head = builder.append_basic_block("passes.head")
    choose = builder.append_basic_block("passes.choose")
    done = builder.append_basic_block("passes.done")
    builder.branch(head)
    builder.position_at_end(head)
    start = builder.load(column)
    left = builder.sub(n, start)
    builder.cbranch(builder.icmp_signed(">", left, _int(0)), choose, done)
    builder.position_at_end(choose)
    for vectors in _PASS_VECTORS:
        body = builder.append_basic_block(f"passes.{vectors}")
        if vectors == 1:
            builder.branch(body)
        else:
            following = builder.append_basic_block("passes.narrower")
            fits = builder.icmp_signed(">", left, _int(_LANES * (vectors - 1)))
            builder.cbranch(fits, body, following)
        builder.position_at_end(body)
        in_last = builder.sub(left, _int(_LANES * (vectors - 1)))
        _by_lanes(builder, in_last, lambda lanes, v=vectors: emit_pass(start, v, lanes))
        builder.store(builder.add(start, _int(_LANES * vectors)), column)
        builder.branch(head)
        if vectors != 1:
            builder.position_at_end(following)
    builder.position_at_end(done)


class _Arrays:
    """Data pointers and lengths of an intrinsic's array arguments."""

    def __init__(self, context, builder, signature, args):
        self.context, self.builder = context, builder
        self.signature, self.args = signature, args

    def data(self, index):
        array = self.context.make_array(self.signature.args[index])
        return array(self.context, self.builder, self.args[index]).data

    def length(self, index):
        array = self.context.make_array(self.signature.args[index])
        shape = array(self.context, self.builder, self.args[index]).shape
        return self.builder.extract_value(shape, 0)

    def scalar(self, index, to):
        value, given = self.args[index], self.signature.args[index]
        return self.context.cast(self.builder, value, given, to)


def _check(floats=(), indices=(), integers=(), reals=()):
    """Typing: the arrays the IR reads as float32 and int64 must be contiguous 1-d arrays of
    those types (the IR trusts the data pointer), the scalars numbers of their kind."""
    wanted = [(name, value, types.float32) for name, value in floats]
    wanted += [(name, value, types.int64) for name, value in indices]
    for name, array, dtype in wanted:
        if not (
            isinstance(array, types.Array)
            and array.ndim == 1
            and array.layout == "C"
            and array.dtype == dtype
        ):
            raise TypingError(f"rows: {name} must be a contiguous 1-d {dtype} array, got {array}")
    for name, value in integers:
        if not isinstance(value, types.Integer):
            raise TypingError(f"rows: {name} must be an integer, got {value}")
    for name, value in reals:
        if not isinstance(value, types.Number):
            raise TypingError(f"rows: {name} must be a number, got {value}")


# How many rows ahead a forward pass asks for a row's cache lines (rows of nonzero inputs lie at
# random, out of the CPU's own prefetchers' reach); updates read rows the forward pass just read.
_AHEAD = 4


def _prefetch(builder, address):
    """Asks for the cache line of ``address`` (read, kept in all levels: a hint)."""
    address = builder.bitcast(address, ir.IntType(8).as_pointer())
    function = _intrinsic_function(
        builder, "llvm.prefetch.p0i8", ir.VoidType(), [address.type, _I32, _I32, _I32]
    )
    builder.call(function, [address, _I32(0), _I32(3), _I32(1)])


def _rows_loop(builder, rows, count, body, backward=False, weights=None):
    """``body(i)`` for each row index ``i = rows[k]``, k < count; k descending if
    ``backward`` (a step's update then starts with the rows its forward pass read last, which
    are still in the first-level cache). With ``weights = (data, offset, n, first, width)``,
    the cache lines of columns ``first .. first + width - 1`` of the row :data:`_AHEAD` rows
    on are requested first."""
    with cgutils.for_range(builder, count) as loop:
        k = builder.sub(builder.sub(count, _int(1)), loop.index) if backward else loop.index
        if weights is not None:
            data, offset, n, first, width = weights
            ahead = builder.add(loop.index, _int(_AHEAD))
            with builder.if_then(builder.icmp_signed("<", ahead, count)):
                j = builder.sub(builder.sub(count, _int(1)), ahead) if backward else ahead
                row = builder.mul(builder.load(builder.gep(rows, [j])), n)
                start = builder.add(builder.add(offset, row), first)
                with cgutils.for_range_slice(builder, _int(0), width, _int(16)) as (q, _):
                    _prefetch(builder, builder.gep(data, [builder.add(start, q)]))
                last = builder.add(start, builder.sub(width, _int(1)))
                _prefetch(builder, builder.gep(data, [last]))
        body(builder.load(builder.gep(rows, [k])))


@intrinsic
def accumulate_rows(typingctx, out, weights, offset, rows, count, values):
    """``out[:n] += Σ_{i in rows[:count]} values[i] · weights[offset + i·n : … + n]``,
    ``n = len(out)``."""
    _check(
        floats=[("out", out), ("weights", weights), ("values", values)],
        indices=[("rows", rows)],
        integers=[("offset", offset), ("count", count)],
    )

    def codegen(context, builder, signature, args):
        a = _Arrays(context, builder, signature, args)
        out_data, weight_data, row_data, value_data = a.data(0), a.data(1), a.data(3), a.data(5)
        n, offset_ = a.length(0), a.scalar(2, types.int64)
        count_ = a.scalar(4, types.int64)

        def emit_pass(column, vectors, lanes):
            totals = _load_vectors(builder, out_data, column, vectors, lanes)
            slots = [cgutils.alloca_once_value(builder, total) for total in totals]

            def add_row(i):
                value = _splat(builder, builder.load(builder.gep(value_data, [i])))
                start = builder.add(builder.add(offset_, builder.mul(i, n)), column)
                row = _load_vectors(builder, weight_data, start, vectors, lanes)
                for slot, part in zip(slots, row, strict=True):
                    builder.store(_fmuladd(builder, value, part, builder.load(slot)), slot)

            weights = (weight_data, offset_, n, column, _int(_LANES * (vectors - 1) + lanes))
            _rows_loop(builder, row_data, count_, add_row, weights=weights)
            totals = [builder.load(slot) for slot in slots]
            _store_vectors(builder, totals, out_data, column, lanes)

        _column_passes(builder, n, emit_pass)
        return context.get_dummy_value()

    return types.void(out, weights, offset, rows, count, values), codegen


def _step_codegen(with_dots: bool):
    def codegen(context, builder, signature, args):
        a = _Arrays(context, builder, signature, args)
        weight_data, row_data, value_data = a.data(0), a.data(2), a.data(4)
        direction_data, n = a.data(6), a.length(6)
        offset_, count_ = a.scalar(1, types.int64), a.scalar(3, types.int64)
        scale = a.scalar(5, types.float32)
        dot_data = a.data(7) if with_dots else None

        def emit_pass(column, vectors, lanes):
            direction = _load_vectors(builder, direction_data, column, vectors, lanes)

            def step_row(i):
                value = builder.load(builder.gep(value_data, [i]))
                factor = _splat(builder, builder.fmul(scale, value))
                start = builder.add(builder.add(offset_, builder.mul(i, n)), column)
                row = _load_vectors(builder, weight_data, start, vectors, lanes)
                if with_dots:
                    dot = builder.gep(dot_data, [i])
                    total = _horizontal_sum(builder, _partial_dots(builder, row, direction))
                    builder.store(builder.fadd(builder.load(dot), total), dot)
                stepped = [
                    _fmuladd(builder, factor, d, w) for w, d in zip(row, direction, strict=True)
                ]
                _store_vectors(builder, stepped, weight_data, start, lanes)

            _rows_loop(builder, row_data, count_, step_row, backward=True)

        _column_passes(builder, n, emit_pass)
        return context.get_dummy_value()

    return codegen


@intrinsic
def update_rows(typingctx, weights, offset, rows, count, values, scale, direction):
    """``weights[offset + i·n : … + n] += (scale · values[i]) · direction`` for each ``i`` in
    ``rows[:count]``, ``n = len(direction)``."""
    _check(
        floats=[("weights", weights), ("values", values), ("direction", direction)],
        indices=[("rows", rows)],
        integers=[("offset", offset), ("count", count)],
        reals=[("scale", scale)],
    )
    signature = types.void(weights, offset, rows, count, values, scale, direction)
    return signature, _step_codegen(with_dots=False)


@intrinsic
def dot_update_rows(typingctx, weights, offset, rows, count, values, scale, direction, dots):
    """:func:`update_rows`, adding each row's dot product with ``direction`` (before its
    step) to ``dots[i]``."""
    _check(
        floats=[
            ("weights", weights),
            ("values", values),
            ("direction", direction),
            ("dots", dots),
        ],
        indices=[("rows", rows)],
        integers=[("offset", offset), ("count", count)],
        reals=[("scale", scale)],
    )
    signature = types.void(weights, offset, rows, count, values, scale, direction, dots)
    return signature, _step_codegen(with_dots=True)


@intrinsic
def prefetch(typingctx, array, index):
    """Asks for the cache line of ``array[index]`` (a hint: no effect on results)."""
    if not isinstance(array, types.Array) or not isinstance(index, types.Integer):
        raise TypingError(f"rows: prefetch takes an array and an integer, got {array}, {index}")

    def codegen(context, builder, signature, args):
        a = _Arrays(context, builder, signature, args)
        _prefetch(builder, builder.gep(a.data(0), [a.scalar(1, types.int64)]))
        return context.get_dummy_value()

    return types.void(array, index), codegen
