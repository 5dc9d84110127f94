"""The compiled step's row operations (ncplasticity.continual.compiled.rows) against float64
numpy, at row widths that exercise every pass and every length of the masked last vector, and
never touching memory outside the rows they are given."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit
from numba.core.errors import TypingError

from ncplasticity.continual.compiled.rows import (
    accumulate_rows,
    dot_update_rows,
    prefetch,
    update_rows,
)

WIDTHS = (1, 7, 8, 10, 25, 33, 96, 100, 104, 105, 200)
N_IN, OFFSET, GUARD, COUNT = 40, 5, 9, 17
SCALE = np.float32(-0.01)


@njit
def _accumulate(out, weights, offset, rows, count, values):
    accumulate_rows(out, weights, offset, rows, count, values)


@njit
def _update(weights, offset, rows, count, values, scale, direction):
    update_rows(weights, offset, rows, count, values, scale, direction)


@njit
def _dot_update(weights, offset, rows, count, values, scale, direction, dots):
    dot_update_rows(weights, offset, rows, count, values, scale, direction, dots)


def _case(width: int):
    """Weights with OFFSET floats before the rows and GUARD after; rows listed past ``COUNT``
    must be left alone."""
    rng = np.random.default_rng(width)
    weights = rng.standard_normal(OFFSET + N_IN * width + GUARD).astype(np.float32)
    rows = rng.permutation(N_IN).astype(np.int64)
    values = rng.standard_normal(N_IN).astype(np.float32)
    direction = rng.standard_normal(width).astype(np.float32)
    return weights, rows, values, direction


def _matrix(weights, width):
    return weights[OFFSET : OFFSET + N_IN * width].reshape(N_IN, width).astype(np.float64)


@pytest.mark.parametrize("width", WIDTHS)
def test_accumulate_rows_is_the_sum_of_the_listed_rows(width):
    weights, rows, values, _ = _case(width)
    out = np.random.default_rng(0).standard_normal(width).astype(np.float32)
    listed = rows[:COUNT]
    expected = out + values[listed].astype(np.float64) @ _matrix(weights, width)[listed]
    before = weights.copy()
    _accumulate(out, weights, OFFSET, rows, COUNT, values)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(weights, before)


@pytest.mark.parametrize("width", WIDTHS)
def test_update_rows_steps_the_listed_rows_and_nothing_else(width):
    weights, rows, values, direction = _case(width)
    matrix = _matrix(weights, width)
    listed = rows[:COUNT]
    expected = matrix.copy()
    expected[listed] += (SCALE * values[listed, None].astype(np.float64)) * direction
    stepped = weights.copy()
    _update(stepped, OFFSET, rows, COUNT, values, SCALE, direction)
    np.testing.assert_allclose(_matrix(stepped, width), expected, rtol=1e-6, atol=1e-7)
    unlisted = rows[COUNT:]
    np.testing.assert_array_equal(
        _matrix(stepped, width)[unlisted], _matrix(weights, width)[unlisted]
    )
    np.testing.assert_array_equal(stepped[:OFFSET], weights[:OFFSET])
    np.testing.assert_array_equal(stepped[-GUARD:], weights[-GUARD:])


@pytest.mark.parametrize("width", WIDTHS)
def test_dot_update_rows_adds_the_old_rows_dot_and_takes_the_same_step(width):
    weights, rows, values, direction = _case(width)
    listed = rows[:COUNT]
    dots = np.full(N_IN, 0.5, np.float32)
    expected_dots = dots.astype(np.float64)
    expected_dots[listed] += _matrix(weights, width)[listed] @ direction
    stepped, updated = weights.copy(), weights.copy()
    _dot_update(stepped, OFFSET, rows, COUNT, values, SCALE, direction, dots)
    _update(updated, OFFSET, rows, COUNT, values, SCALE, direction)
    np.testing.assert_allclose(dots, expected_dots, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(stepped, updated)


def test_row_operations_refuse_arrays_of_another_type():
    weights, rows, values, _ = _case(10)
    with pytest.raises(TypingError, match="values must be a contiguous 1-d float32 array"):
        _accumulate(np.zeros(10, np.float32), weights, OFFSET, rows, COUNT, values.astype(float))
    with pytest.raises(TypingError, match="rows must be a contiguous 1-d int64 array"):
        _accumulate(np.zeros(10, np.float32), weights, OFFSET, rows.astype(np.int32), 3, values)


@njit
def _prefetch(array, index):
    prefetch(array, index)


def test_prefetch_is_only_a_hint():
    array = np.arange(40, dtype=np.float32)
    _prefetch(array, 33)
    assert np.array_equal(array, np.arange(40, dtype=np.float32))
    with pytest.raises(TypingError, match="prefetch takes an array and an integer"):
        _prefetch(array, 1.5)
