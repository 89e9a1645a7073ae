"""Compiled BM25 query kernels (numba): score a query's postings and select its top ``k``.

Imported only through :func:`rankstack.index.bm25._numba_kernels` (numba is the optional ``fast``
extra). The kernels compute exactly what :class:`~rankstack.index.bm25.BM25Index`'s numpy path
computes, bit for bit:

* each posting's clause score in float32, ``w - w / (1 + tf * ninv)`` (``w = float32(boost * idf)``,
  given per term; ``ninv`` per document -- Lucene norms: a 256-entry table indexed by the
  document's norm byte, the same values; no fast-math, so no reassociation or fused multiply-add);
* clause scores summed per document in float64, in the numpy path's order (query terms ascending,
  then postings in index order -- what ``np.bincount`` does), then rounded to float32;
* the top ``k`` by the numpy path's int64 key ``(float32 bits of the score) << 32 | id_rank``,
  largest first (score descending, ties by id descending), over documents whose float32 score is
  > 0: keys are distinct, so the ``k`` largest -- kept in a buffer compacted by quickselect
  whenever it fills (later keys must beat the smallest kept), then sorted -- are the same documents
  in the same order, also among ties at the cut.

Memory per call is bounded: a float64 accumulator, an int64 key buffer and an int32 list of
touched documents of ``num_docs`` entries each (allocated once per thread by the caller; the kernel
clears what it touched). Batches loop over queries inside the kernel; no (queries x documents) matrix.
"""

from __future__ import annotations

import numba
import numpy as np

_ONE = np.float32(1.0)


@numba.njit(cache=True, nogil=True)
def _select_largest(keys, n, k):  # pragma: no cover - compiled
    """Reorder ``keys[:n]`` (distinct) so that ``keys[:k]`` holds the ``k`` largest (quickselect)."""
    lo, hi, target = 0, n - 1, k - 1
    while lo < hi:
        mid = (lo + hi) >> 1
        a, b, c = keys[lo], keys[mid], keys[hi]  # median of three as the pivot
        pivot = max(min(a, b), min(max(a, b), c))
        i, j = lo, hi
        while i <= j:
            while keys[i] > pivot:
                i += 1
            while keys[j] < pivot:
                j -= 1
            if i <= j:
                keys[i], keys[j] = keys[j], keys[i]
                i += 1
                j -= 1
        if target <= j:
            hi = j
        elif target >= i:
            lo = i
        else:
            break


@numba.njit(cache=True, nogil=True)
def _one_query(offsets, post_docs, post_tfs, codes, ninv, id_rank, rank_to_doc, tids, weights, k, acc, keys,
               touched, one, one_bits, out_docs, out_scores, out_at):  # pragma: no cover - compiled
    """Score one query (``tids`` ascending, ``weights`` float32) and write its top ``k`` (``k`` >= 1)
    at ``out_docs[out_at:]``/``out_scores[out_at:]``; returns how many were written. ``acc`` must be
    all zeros on entry and is all zeros again on return."""
    # 1. clause scores, summed per document in float64; ninv per document, or per norm byte (codes).
    # A document is listed in ``touched`` when its sum turns non-zero (clause scores are >= 0, so
    # once: at most num_docs entries), branch-free: always written, kept by advancing ``nt``
    nt = 0
    if codes.shape[0] > 0:
        for t in range(tids.shape[0]):
            w = weights[t]
            for p in range(offsets[tids[t]], offsets[tids[t] + 1]):
                d = post_docs[p]
                old = acc[d]
                new = old + np.float64(w - w / (_ONE + post_tfs[p] * ninv[codes[d]]))
                acc[d] = new
                touched[nt] = d
                nt += (old == 0.0) & (new != 0.0)
    else:
        for t in range(tids.shape[0]):
            w = weights[t]
            for p in range(offsets[tids[t]], offsets[tids[t] + 1]):
                d = post_docs[p]
                old = acc[d]
                new = old + np.float64(w - w / (_ONE + post_tfs[p] * ninv[d]))
                acc[d] = new
                touched[nt] = d
                nt += (old == 0.0) & (new != 0.0)
    # 2. visit the touched documents (the first visit of a document takes its score and clears
    # it): one int64 key each, (float32 bits of the score) << 32 | id rank,
    # buffered when above the running threshold (the k-th largest key at the last compaction)
    cap = min(acc.shape[0], max(2 * k, k + 2048))
    thr = np.int64(-1)
    n = 0
    for j in range(nt):
        d = touched[j]
        a = acc[d]
        acc[d] = 0.0
        one[0] = np.float32(a)
        if not one[0] > 0:  # rounded to 0 in float32: not a match (numpy path: scores > 0)
            continue
        key = (np.int64(one_bits[0]) << 32) | np.int64(id_rank[d])
        if key > thr:
            keys[n] = key
            n += 1
            if n == cap:  # keep the k largest so far; later keys must beat the smallest of them
                _select_largest(keys, n, k)
                n = k
                thr = keys[:k].min()
    # 3. the k largest keys, largest first: score descending, ties by id rank descending
    if n > k:
        _select_largest(keys, n, k)
        n = k
    top = np.sort(keys[:n])
    for j in range(n):
        key = top[n - 1 - j]
        out_docs[out_at + j] = rank_to_doc[key & 0xFFFFFFFF]
        one_bits[0] = np.int32(key >> 32)
        out_scores[out_at + j] = one[0]
    return n


@numba.njit(cache=True, nogil=True)
def top_k_many(offsets, post_docs, post_tfs, codes, ninv, id_rank, rank_to_doc, q_ptr, tids, weights, k, acc,
               keys, touched, out_docs, out_scores, counts):  # pragma: no cover - compiled
    """Top ``k`` (>= 1) of each query ``q`` (its terms ``tids[q_ptr[q]:q_ptr[q + 1]]``, ascending,
    with float32 ``weights``; ``ninv`` per document or, when ``codes`` -- uint8, one a document --
    is not empty, per code); query ``q``'s results go to ``out_docs[q * k:]``/``out_scores[q * k:]``,
    their number to ``counts[q]``. ``acc`` (float64), ``keys`` (int64) and ``touched`` (int32):
    ``num_docs`` entries each (``touched``: one more), ``acc`` all zeros (and left so)."""
    one = np.empty(1, np.float32)
    one_bits = one.view(np.int32)
    for q in range(q_ptr.shape[0] - 1):
        lo, hi = q_ptr[q], q_ptr[q + 1]
        counts[q] = _one_query(offsets, post_docs, post_tfs, codes, ninv, id_rank, rank_to_doc, tids[lo:hi],
                               weights[lo:hi], k, acc, keys, touched, one, one_bits, out_docs, out_scores, q * k)
