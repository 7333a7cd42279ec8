"""Text columns as pandas categoricals with sorted categories: made once per distinct value,
and re-coded from one set of categories to another.

Flags, drivers and text extras are kept as dictionary codes from the hazards to the outputs
(the result store, the snapshot, the chunks of a Dask run). Categories are always sorted, so
that results put together from parts in any order have the same codes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["as_text_categorical", "used_categories", "union_categories", "code_map", "recode"]


def as_text_categorical(values) -> pd.Categorical:
    """``str`` of each value (as numpy's ``astype(str)`` gives it) as a categorical with
    sorted categories: the strings are made once per distinct value, not per site.

    >>> as_text_categorical(["b", "a", "b"]).codes.tolist()
    [1, 0, 1]
    """
    if isinstance(values, pd.Categorical):
        return values
    values = np.asarray(values, dtype=object)
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    if not all(type(u) is str for u in uniques):
        # Numbers, None or NaN: factorize may merge values whose text differs.
        codes, uniques = pd.factorize(np.array([str(v) for v in values], dtype=object))
    order = np.argsort(np.asarray(uniques, dtype=object))
    rank = np.empty(len(order), dtype=np.int32)
    rank[order] = np.arange(len(order), dtype=np.int32)
    return pd.Categorical.from_codes(rank[codes] if len(codes) else codes.astype(np.int32),
                                     categories=pd.Index(np.asarray(uniques, dtype=object)[order],
                                                         dtype=object))


def used_categories(values: pd.Categorical) -> pd.Categorical:
    """``values`` without the categories no value uses (as ``remove_unused_categories``,
    by counting codes rather than sorting them)."""
    used = np.bincount(values.codes[values.codes >= 0], minlength=len(values.categories)) > 0
    if used.all():
        return values
    remap = np.cumsum(used) - 1
    codes = np.where(values.codes >= 0, remap[np.maximum(values.codes, 0)], -1)
    return pd.Categorical.from_codes(codes, categories=values.categories[used], validate=False)


def union_categories(categories: Sequence[Sequence[str]]) -> pd.Index:
    """The sorted union of several sets of categories (the first one itself when every
    other is the same)."""
    first = categories[0]
    first = first if isinstance(first, pd.Index) else pd.Index(first, dtype=object)
    if all(c is first or (len(c) == len(first) and first.equals(pd.Index(c, dtype=object)))
           for c in categories[1:]):
        return first
    return pd.Index(sorted(set().union(*categories)), dtype=object)


def code_map(old: Sequence[str], new: pd.Index) -> np.ndarray | None:
    """The code into ``new`` (which holds each of them) of every category of ``old``, then
    -1 (where code -1, no value, goes); None when ``old`` is ``new`` (codes stay as they
    are)."""
    if old is new or (len(old) == len(new) and new.equals(pd.Index(old, dtype=object))):
        return None
    where = np.asarray(new.get_indexer(pd.Index(old, dtype=object)), dtype=np.int32)
    if len(where) == len(new) and np.array_equal(where, np.arange(len(new))):
        return None
    if (where < 0).any():
        raise ValueError(f"categories {sorted(set(old) - set(new))} are not in the new ones")
    return np.append(where, np.int32(-1))


def recode(codes: np.ndarray, old: Sequence[str], new: pd.Index) -> np.ndarray:
    """Codes into the categories ``old`` as codes into ``new`` (:func:`code_map`): the codes
    themselves when ``old`` is ``new``.

    >>> recode(np.array([0, 1, -1]), ["b", "c"], pd.Index(["a", "b", "c"])).tolist()
    [1, 2, -1]
    """
    where = code_map(old, new)
    return codes if where is None else where[codes]
